// fastinv._core.deepem_invert: DeepEM with its pre/post-processing fused into the engine
// (cpp/src/dem/deepem_fused.hpp). Python (fastinv.dem.DeepEM.invert) handles units and shapes.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstdint>
#include <string>

#include "dem/deepem_fused.hpp"
#include "fastinv/error.hpp"
#include "fastinv/model.hpp"
#include "python/bindings.hpp"

namespace py = pybind11;

namespace fastinv::python {
namespace {

int64_t element_stride(const py::array& a, int axis, const char* what) {
  if (a.strides(axis) % a.itemsize() != 0)
    throw InvalidArgument(std::string(what) + " is not aligned to its dtype; pass numpy.ascontiguousarray(...)");
  return int64_t(a.strides(axis) / a.itemsize());
}

py::tuple deepem_invert(const Model& model, const py::array& y, const py::array_t<float, py::array::c_style>& kernel,
                        const py::object& sigma_obj, const py::object& exptime_obj, double n_sample, int threads) {
  dem::DeepEmInput in;
  if (y.dtype().is(py::dtype::of<float>()))
    in.dtype = DType::f32;
  else if (y.dtype().is(py::dtype::of<double>()))
    in.dtype = DType::f64;
  else
    throw TypeMismatch("y must be float32 or float64, got " + std::string(py::str(y.dtype())));
  if (y.ndim() != 2 || y.shape(0) != 6) throw InvalidArgument("y must have shape (6, npix) in channel order 94..335");
  in.data = y.data();
  in.npix = int64_t(y.shape(1));
  in.stride_channel = element_stride(y, 0, "y");
  in.stride_pixel = element_stride(y, 1, "y");
  if (kernel.ndim() != 2 || kernel.shape(0) != 6) throw InvalidArgument("kernel must have shape (6, nT)");
  const int64_t n_t = int64_t(kernel.shape(1));

  dem::DeepEmChi2 chi2;
  py::array_t<double> sigma;
  if (!sigma_obj.is_none()) {
    sigma = py::array_t<double>::ensure(sigma_obj);
    if (!sigma) throw TypeMismatch("sigma must be a float array");
    if (sigma.ndim() != 2 || sigma.shape(0) != 6 || sigma.shape(1) != y.shape(1))
      throw InvalidArgument("sigma must have shape (6, npix) like y (numpy.broadcast_to it)");
    chi2.mode = dem::DeepEmErrors::sigma;
    chi2.sigma = sigma.data();
    chi2.sigma_stride_channel = element_stride(sigma, 0, "sigma");
    chi2.sigma_stride_pixel = element_stride(sigma, 1, "sigma");
  } else if (!exptime_obj.is_none()) {
    auto t = py::array_t<double, py::array::c_style | py::array::forcecast>::ensure(exptime_obj);
    if (!t || t.size() != 6) throw InvalidArgument("exptime must hold 6 values (one per channel)");
    chi2.mode = dem::DeepEmErrors::aia;
    for (int c = 0; c < 6; ++c) chi2.exptime[c] = t.data()[c];
    chi2.n_sample = n_sample;
  }

  const py::ssize_t npix = y.shape(1);
  py::array_t<float> em({py::ssize_t(n_t), npix}), resynth({py::ssize_t(6), npix}), objective(npix);
  py::array_t<int8_t> status(npix);
  py::array_t<double> chi2_out(npix);
  dem::DeepEmOutput out{em.mutable_data(), resynth.mutable_data(), status.mutable_data(), chi2_out.mutable_data(),
                        objective.mutable_data()};
  {
    py::gil_scoped_release release;
    dem::deepem_invert(model, kernel.data(), n_t, in, chi2, out, threads);
  }
  return py::make_tuple(em, resynth, status, chi2_out, objective);
}

}  // namespace

void bind_deepem(py::module_& m) {
  m.def("deepem_invert", &deepem_invert, py::arg("model"), py::arg("y"), py::arg("kernel"), py::arg("sigma"),
        py::arg("exptime"), py::arg("n_sample") = 1.0, py::arg("threads") = 0,
        "DeepEM on (6, npix) DN/s with input transform, EM = 1e25 y^2, re-synthesis, status and chi2 fused "
        "into the network's tile loop. Returns (em, model, status, chi2, objective).");
}

}  // namespace fastinv::python
