// fastinv._core.deepem_invert: DeepEM with its pre/post-processing fused into the engine
// (cpp/src/dem/deepem_fused.hpp). Python (fastinv.dem.DeepEM.invert) handles units and shapes.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "fastinv/dem/deepem.hpp"
#include "fastinv/error.hpp"
#include "fastinv/model.hpp"
#include "python/array_overlap.hpp"
#include "python/bindings.hpp"

namespace py = pybind11;

namespace fastinv::python {
namespace {

int64_t element_stride(const py::array& a, int axis, const char* what) {
  if (a.strides(axis) % a.itemsize() != 0)
    throw InvalidArgument(std::string(what) + " is not aligned to its dtype; pass numpy.ascontiguousarray(...)");
  return int64_t(a.strides(axis) / a.itemsize());
}

// A fresh output array, or the caller's (out=): exactly this dtype and shape, C-contiguous,
// writeable, not overlapping the inputs (they are read while outputs are written).
template <typename T>
py::array_t<T> output(const py::object& given, std::vector<py::ssize_t> shape, const char* name,
                      const std::vector<py::array>& inputs) {
  if (given.is_none()) return py::array_t<T>(shape);
  if (!py::isinstance<py::array>(given)) throw TypeMismatch(std::string("out.") + name + " must be a numpy.ndarray");
  py::array a = py::reinterpret_borrow<py::array>(given);
  if (!a.dtype().equal(py::dtype::of<T>()))
    throw TypeMismatch(std::string("out.") + name + " must have dtype " + std::string(py::str(py::dtype::of<T>())) +
                       ", got " + std::string(py::str(a.dtype())));
  if (std::vector<py::ssize_t>(a.shape(), a.shape() + a.ndim()) != shape)
    throw InvalidArgument(std::string("out.") + name + " has the wrong shape for this input");
  if (!(a.flags() & py::array::c_style)) throw InvalidArgument(std::string("out.") + name + " must be C-contiguous");
  if (!a.writeable()) throw InvalidArgument(std::string("out.") + name + " is read-only");
  for (const py::array& in : inputs)
    if (byte_extents_overlap(a, in))
      throw InvalidArgument(std::string("out.") + name + " must not share memory with the input");
  return py::reinterpret_borrow<py::array_t<T>>(a);
}

// An (npix) int32 C-contiguous array for the refinement's iteration counts, or null for None.
int32_t* iteration_output(const py::object& obj, int64_t npix) {
  if (obj.is_none()) return nullptr;
  auto a = py::reinterpret_borrow<py::array>(obj);
  if (!py::isinstance<py::array_t<int32_t>>(obj) || a.ndim() != 1 || a.shape(0) != npix ||
      !(a.flags() & py::array::c_style) || !a.writeable())
    throw InvalidArgument("refine_iterations must be a writeable C-contiguous int32 array of npix values");
  return static_cast<int32_t*>(a.mutable_data());
}

// An error model with the network it was built from: deepem_invert refuses it for any other
// (a retrained network of the same shape would pass every shape check and give wrong sigmas).
// The constructor keeps that Model alive (py::keep_alive), so the address stays its identity.
struct BoundErrorModel {
  dem::DeepEmErrorModel errors;
  const Model* model = nullptr;
};

py::tuple deepem_invert(const Model& model, const py::array& y, const py::array_t<float, py::array::c_style>& kernel,
                        const py::object& sigma_obj, const py::object& exptime_obj, double n_sample, int threads,
                        const py::object& out_obj, bool refine_on, const py::object& refine_iterations,
                        const BoundErrorModel* bound) {
  if (bound && bound->model != &model)
    throw InvalidArgument("errors: this DeepEmErrorModel was built for another network; build one from this model");
  const dem::DeepEmErrorModel* errors = bound ? &bound->errors : nullptr;
  dem::DeepEmInput in;
  if (y.dtype().equal(py::dtype::of<float>()))
    in.dtype = DType::f32;
  else if (y.dtype().equal(py::dtype::of<double>()))
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
  std::vector<py::object> given(9, py::none());
  if (!out_obj.is_none()) {
    auto t = py::reinterpret_borrow<py::tuple>(out_obj);
    if (t.size() != 6 && t.size() != 9)
      throw InvalidArgument(
          "out must be (em, model, status, chi2, objective, tolfac[, em_err, logt_err, total_em_err])");
    for (size_t i = 0; i < t.size(); ++i) given[i] = t[i];
  }
  std::vector<py::array> inputs{y};
  if (sigma) inputs.push_back(sigma);
  auto em = output<float>(given[0], {py::ssize_t(n_t), npix}, "em", inputs);
  auto resynth = output<float>(given[1], {6, npix}, "model", inputs);
  auto status = output<int8_t>(given[2], {npix}, "status", inputs);
  auto chi2_out = output<double>(given[3], {npix}, "chi2", inputs);
  auto objective = output<float>(given[4], {npix}, "objective", inputs);
  auto tolfac = output<double>(given[5], {npix}, "tolfac", inputs);
  std::vector<py::array> outs{em, resynth, status, chi2_out, objective, tolfac};
  py::array_t<float> em_err, logt_err, total_err;
  if (errors) {
    em_err = output<float>(given[6], {py::ssize_t(n_t), npix}, "em_err", inputs);
    logt_err = output<float>(given[7], {npix}, "logt_err", inputs);
    total_err = output<float>(given[8], {npix}, "total_em_err", inputs);
    outs.insert(outs.end(), {em_err, logt_err, total_err});
  }
  for (size_t i = 0; i < outs.size(); ++i)
    for (size_t j = i + 1; j < outs.size(); ++j)
      if (byte_extents_overlap(outs[i], outs[j]))
        throw InvalidArgument("out arrays must not share memory with each other");
  dem::DeepEmOutput out{em.mutable_data(),       resynth.mutable_data(),   status.mutable_data(),
                        chi2_out.mutable_data(), objective.mutable_data(), tolfac.mutable_data()};
  dem::DeepEmRefine refine;
  refine.enabled = refine_on;
  refine.iterations = iteration_output(refine_iterations, npix);
  if (!errors) {
    {
      py::gil_scoped_release release;
      dem::deepem_invert(model, kernel.data(), n_t, in, chi2, out, threads, refine);
    }
    return py::make_tuple(em, resynth, status, chi2_out, objective, tolfac);
  }
  out.em_err = em_err.mutable_data();
  out.logt_err = logt_err.mutable_data();
  out.total_em_err = total_err.mutable_data();
  {
    py::gil_scoped_release release;
    dem::deepem_invert(model, kernel.data(), n_t, in, chi2, out, threads, refine, errors);
  }
  return py::make_tuple(em, resynth, status, chi2_out, objective, tolfac, em_err, logt_err, total_err);
}

// The error model of a DeepEM network: its weights, the card's tables and the Jacobian's packed
// form (reference products or bf16 weights), built once per loaded model and precision: ~6 ms,
// which a per-frame pipeline would otherwise pay on every call.
std::unique_ptr<BoundErrorModel> deepem_error_model(const Model& model, const py::object& logt_obj,
                                                    const std::string& precision_name) {
  const auto lt = py::array_t<double, py::array::c_style | py::array::forcecast>::ensure(logt_obj);
  if (!lt || lt.ndim() != 1) throw InvalidArgument("errors: logt must be a 1-d array of bin centres");
  if (precision_name != "auto" && precision_name != "fp32" && precision_name != "bf16")
    throw InvalidArgument("errors precision must be 'auto', 'fp32' or 'bf16', got '" + precision_name + "'");
  const auto precision = precision_name == "fp32"   ? dem::DeepEmErrorsPrecision::fp32
                         : precision_name == "bf16" ? dem::DeepEmErrorsPrecision::bf16
                                                    : dem::DeepEmErrorsPrecision::automatic;
  auto bound = std::make_unique<BoundErrorModel>(BoundErrorModel{
      dem::DeepEmErrorModel::from_model(model, std::vector<double>(lt.data(), lt.data() + lt.shape(0)), precision),
      &model});
  if (precision_name == "bf16" && !bound->errors.bf16)
    throw Error("errors='bf16' needs AVX512-BF16 (the CPU or this build lacks it); use errors=True or 'fp32'");
  return bound;
}

// The refinement alone on an EM from elsewhere (em is refined in place).
py::tuple deepem_refine(const py::array_t<float, py::array::c_style>& kernel, py::array_t<float> em,
                        const py::array_t<double, py::array::c_style | py::array::forcecast>& y,
                        const py::object& sigma_obj, const py::object& exptime_obj, double n_sample, int threads) {
  if (kernel.ndim() != 2 || kernel.shape(0) != 6) throw InvalidArgument("kernel must have shape (6, nT)");
  if (y.ndim() != 2 || y.shape(0) != 6) throw InvalidArgument("y must have shape (6, npix) in channel order 94..335");
  const int64_t n_t = kernel.shape(1), npix = y.shape(1);
  if (em.ndim() != 2 || em.shape(0) != n_t || em.shape(1) != npix || !(em.flags() & py::array::c_style) ||
      !em.writeable())
    throw InvalidArgument("em must be a writeable C-contiguous float32 array of shape (nT, npix)");
  dem::DeepEmInput in{y.data(), DType::f64, npix, npix, 1};
  dem::DeepEmChi2 errors;
  py::array_t<double, py::array::c_style | py::array::forcecast> sigma;
  if (!sigma_obj.is_none()) {
    sigma = py::array_t<double, py::array::c_style | py::array::forcecast>::ensure(sigma_obj);
    if (!sigma || sigma.ndim() != 2 || sigma.shape(0) != 6 || sigma.shape(1) != npix)
      throw InvalidArgument("sigma must have shape (6, npix) like y");
    errors.mode = dem::DeepEmErrors::sigma;
    errors.sigma = sigma.data();
    errors.sigma_stride_channel = npix;
    errors.sigma_stride_pixel = 1;
  } else if (!exptime_obj.is_none()) {
    auto t = py::array_t<double, py::array::c_style | py::array::forcecast>::ensure(exptime_obj);
    if (!t || t.size() != 6) throw InvalidArgument("exptime must hold 6 values (one per channel)");
    errors.mode = dem::DeepEmErrors::aia;
    for (int c = 0; c < 6; ++c) errors.exptime[c] = t.data()[c];
    errors.n_sample = n_sample;
  }
  py::array_t<int8_t> status(npix);
  py::array_t<double> tolfac(npix);
  py::array_t<int32_t> iterations(npix);
  dem::DeepEmRefine refine;
  refine.enabled = true;
  refine.iterations = iterations.mutable_data();
  {
    py::gil_scoped_release release;
    dem::deepem_refine(kernel.data(), n_t, in, errors, refine, em.mutable_data(), status.mutable_data(),
                       tolfac.mutable_data(), threads);
  }
  return py::make_tuple(status, tolfac, iterations);
}

}  // namespace

void bind_deepem(py::module_& m) {
  py::class_<BoundErrorModel>(
      m, "DeepEmErrorModel",
      "A DeepEM model's calibrated error model (the card's errors section and the network's Jacobian in "
      "packed form), for that model only. Immutable: one may serve any number of concurrent deepem_invert "
      "calls.")
      .def(py::init(&deepem_error_model), py::keep_alive<1, 2>(), py::arg("model"), py::arg("logt"),
           py::arg("precision") = "auto",
           "Build it from a loaded DeepEM network and its bin centres; precision 'auto', 'fp32' or 'bf16' "
           "(DeepEmErrorsPrecision).")
      .def_property_readonly(
          "precision", [](const BoundErrorModel& b) { return b.errors.bf16 ? "bf16" : "fp32"; },
          "The Jacobian's arithmetic: 'bf16' or 'fp32'.");
  m.def("deepem_invert", &deepem_invert, py::arg("model"), py::arg("y"), py::arg("kernel"), py::arg("sigma"),
        py::arg("exptime"), py::arg("n_sample") = 1.0, py::arg("threads") = 0, py::arg("out") = py::none(),
        py::arg("refine") = false, py::arg("refine_iterations") = py::none(), py::arg("errors") = nullptr,
        "DeepEM on (6, npix) DN/s with input transform, EM = 1e25 y^2, re-synthesis, status and chi2 fused "
        "into the network's tile loop. Returns (em, model, status, chi2, objective, tolfac); out= reuses "
        "such a tuple of arrays (with errors, the three error arrays after them may be given too). "
        "refine=True: the EM closest to the network's that fits the data within Basis Pursuit's band "
        "(DeepEmRefine); refine_iterations: optional int32 (npix) output. errors "
        "(a DeepEmErrorModel of this model): also the calibrated 1-sigma errors from the card, returned as "
        "em_err, logt_err, total_em_err after the six.");
  m.def("deepem_refine", &deepem_refine, py::arg("kernel"), py::arg("em"), py::arg("y"), py::arg("sigma"),
        py::arg("exptime"), py::arg("n_sample") = 1.0, py::arg("threads") = 0,
        "DeepEM's refinement alone: em (nT, npix) float32 is replaced in place by the EM closest to it that fits "
        "y (6, npix) DN/s within Basis Pursuit's band (NaN where status != 0). Returns (status, tolfac, "
        "iterations).");
}

}  // namespace fastinv::python
