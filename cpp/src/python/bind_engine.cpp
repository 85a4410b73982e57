#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstdint>
#include <utility>

#include "fastinv/error.hpp"
#include "fastinv/model.hpp"
#include "fastinv/runtime.hpp"
#include "python/array_overlap.hpp"
#include "python/bindings.hpp"

namespace py = pybind11;

namespace fastinv::python {
namespace {

// Describe the axes of `shape`/`strides` (bytes) as a Strided view without copying.
Strided make_view(const std::vector<int64_t>& shape, const std::vector<int64_t>& byte_strides, int64_t itemsize,
                  const std::vector<int>& sample_axes, const std::vector<int>& feature_axes, const char* what) {
  const int ndim = int(shape.size());
  if (sample_axes.empty() || sample_axes.size() > 3 || feature_axes.empty() || feature_axes.size() > 2 ||
      int(sample_axes.size() + feature_axes.size()) != ndim)
    throw InvalidArgument(std::string(what) + ": axes do not describe a " + std::to_string(ndim) + "-d array");
  std::vector<bool> seen(size_t(ndim), false);
  auto stride_of = [&](int axis) {
    if (axis < 0 || axis >= ndim || seen[size_t(axis)]) throw InvalidArgument(std::string(what) + ": bad axis list");
    seen[size_t(axis)] = true;
    if (byte_strides[size_t(axis)] % itemsize != 0)
      throw InvalidArgument(std::string(what) + " is not aligned to its dtype; pass numpy.ascontiguousarray(x)");
    return byte_strides[size_t(axis)] / itemsize;
  };
  Strided v;
  v.sample_ndim = int(sample_axes.size());
  for (size_t i = 0; i < sample_axes.size(); ++i) {
    v.sample_shape[i] = shape[size_t(sample_axes[i])];
    v.sample_strides[i] = stride_of(sample_axes[i]);
  }
  v.feature_ndim = int(feature_axes.size());
  for (size_t i = 0; i < feature_axes.size(); ++i) {
    v.feature_shape[i] = shape[size_t(feature_axes[i])];
    v.feature_strides[i] = stride_of(feature_axes[i]);
  }
  return v;
}

py::dict info_dict(const ModelInfo& info) {
  py::list layers;
  for (const LayerInfo& l : info.layers) {
    py::dict d;
    d["name"] = l.name;
    d["op"] = l.op;
    d["output_shape"] = py::tuple(py::cast(l.output_shape));
    d["parameters"] = l.parameters;
    d["flops"] = l.flops;
    layers.append(d);
  }
  py::dict d;
  d["layers"] = layers;
  d["parameters"] = info.parameters;
  d["flops_per_sample"] = info.flops_per_sample;
  d["executed_flops_per_sample"] = info.executed_flops_per_sample;
  d["input_shape"] = py::tuple(py::cast(info.input_shape));
  d["output_shape"] = py::tuple(py::cast(info.output_shape));
  d["input_layout"] = info.input_layout;
  d["device"] = info.device;
  d["isa"] = info.isa;
  return d;
}

py::array_t<float> run(const Model& model, const py::array& x, const std::vector<int>& sample_axes,
                       const std::vector<int>& feature_axes, const std::vector<int64_t>& out_shape,
                       const std::vector<int>& out_sample_axes, const std::vector<int>& out_feature_axes, int threads,
                       const py::object& out_obj) {
  InputView in;
  if (x.dtype().equal(py::dtype::of<float>()))
    in.dtype = DType::f32;
  else if (x.dtype().equal(py::dtype::of<double>()))
    in.dtype = DType::f64;
  else
    throw TypeMismatch("input must be float32 or float64, got " + std::string(py::str(x.dtype())));
  std::vector<int64_t> shape(x.shape(), x.shape() + x.ndim()), strides(x.strides(), x.strides() + x.ndim());
  in.data = x.data();
  in.layout = make_view(shape, strides, int64_t(x.itemsize()), sample_axes, feature_axes, "input");
  // A caller-supplied output (out=) lets frame-by-frame callers reuse one buffer: it must be
  // float32, writeable, shaped exactly as the result and not overlap the input (the kernels
  // read the input while writing the output).
  py::array_t<float> y;
  if (out_obj.is_none()) {
    y = py::array_t<float>(out_shape);
  } else {
    if (!py::isinstance<py::array>(out_obj)) throw TypeMismatch("out must be a numpy.ndarray");
    py::array o = py::reinterpret_borrow<py::array>(out_obj);
    if (!o.dtype().equal(py::dtype::of<float>()))
      throw TypeMismatch("out must be float32, got " + std::string(py::str(o.dtype())));
    if (!o.writeable()) throw InvalidArgument("out is read-only");
    if (std::vector<int64_t>(o.shape(), o.shape() + o.ndim()) != out_shape)
      throw InvalidArgument("out has the wrong shape for this input");
    if (byte_extents_overlap(o, x)) throw InvalidArgument("out must not share memory with the input");
    y = py::reinterpret_borrow<py::array_t<float>>(o);
  }
  std::vector<int64_t> yshape(y.shape(), y.shape() + y.ndim()), ystrides(y.strides(), y.strides() + y.ndim());
  OutputView out{y.mutable_data(), make_view(yshape, ystrides, 4, out_sample_axes, out_feature_axes, "output")};
  {
    py::gil_scoped_release release;
    model.run(in, out, threads);
  }
  return y;
}

// Device arrays (__cuda_array_interface__): pointers, shapes and byte strides come from
// the Python layer, which also allocates the output with the caller's array library.
void run_device(const Model& model, std::uintptr_t x_ptr, const std::string& x_dtype,
                const std::vector<int64_t>& x_shape, const std::vector<int64_t>& x_strides,
                const std::vector<int>& sample_axes, const std::vector<int>& feature_axes, std::uintptr_t y_ptr,
                const std::vector<int64_t>& y_shape, const std::vector<int64_t>& y_strides,
                const std::vector<int>& out_sample_axes, const std::vector<int>& out_feature_axes,
                std::uintptr_t stream) {
  InputView in;
  int64_t itemsize = 4;
  if (x_dtype == "float32") {
    in.dtype = DType::f32;
  } else if (x_dtype == "float64") {
    in.dtype = DType::f64;
    itemsize = 8;
  } else {
    throw TypeMismatch("input must be float32 or float64, got " + x_dtype);
  }
  if (x_shape.size() != x_strides.size() || y_shape.size() != y_strides.size())
    throw InvalidArgument("shape and strides differ in length");
  in.data = reinterpret_cast<const void*>(x_ptr);
  in.layout = make_view(x_shape, x_strides, itemsize, sample_axes, feature_axes, "input");
  OutputView out{reinterpret_cast<float*>(y_ptr),
                 make_view(y_shape, y_strides, 4, out_sample_axes, out_feature_axes, "output")};
  py::gil_scoped_release release;
  model.run_device(in, out, stream);
}

}  // namespace

void bind_engine(py::module_& m) {
  m.def(
      "active_isa", [] { return std::string(isa_name(active_isa())); },
      "SIMD instruction set the CPU kernels use now.");
  m.def(
      "set_active_isa", [](const std::string& name) { set_active_isa(isa_from_name(name)); }, py::arg("name"),
      "Use the kernels for another (available) ISA: generic, avx2 or avx512.");
  m.def("available_isas", [] {
    std::vector<std::string> names;
    for (Isa isa : available_isas()) names.emplace_back(isa_name(isa));
    return names;
  });
  m.def(
      "measure_fma_peak",
      [](const std::string& isa, int threads, double seconds) {
        py::gil_scoped_release release;
        return measure_fma_peak(isa_from_name(isa), threads, seconds);
      },
      py::arg("isa"), py::arg("threads") = 1, py::arg("seconds") = 0.5,
      "Measured float32 FMA peak in GFLOP/s with the given ISA's instructions (the benchmarks' hardware limit).");
  m.def("bf16_available", &bf16_available, "Whether precision='bf16' runs here (AVX512-BF16 CPU and kernels).");
  m.def(
      "measure_bf16_peak",
      [](int threads, double seconds) {
        py::gil_scoped_release release;
        return measure_bf16_peak(threads, seconds);
      },
      py::arg("threads") = 1, py::arg("seconds") = 0.5,
      "Measured bf16 dot-product peak (vdpbf16ps) in GFLOP/s (the bf16 benchmarks' hardware limit).");
  m.def("default_threads", &default_threads);
  m.def("max_threads", &max_threads, "The most threads any call accepts (4 x the hardware threads).");
  m.def("openmp_enabled", &openmp_enabled);
  m.def("cuda_compiled", &cuda_compiled);
  m.def("cuda_device_count", &cuda_device_count);

  py::class_<Model>(m, "Model", "A network loaded from a fastinv model file (see fastinv.load).")
      .def_static(
          "load",
          [](const std::string& path, const std::string& device, const std::string& precision) {
            py::gil_scoped_release release;
            return Model::load(path, LoadOptions{device, precision});
          },
          py::arg("path"), py::arg("device") = "cpu", py::arg("precision") = "fp32")
      .def_static(
          "from_bytes",
          [](const py::bytes& data, const std::string& device, const std::string& precision) {
            std::string s = data;
            return Model::from_memory(reinterpret_cast<const uint8_t*>(s.data()), s.size(),
                                      LoadOptions{device, precision});
          },
          py::arg("data"), py::arg("device") = "cpu", py::arg("precision") = "fp32")
      .def_property_readonly("input_shape", [](const Model& m) { return py::tuple(py::cast(m.input_shape())); })
      .def_property_readonly("output_shape", [](const Model& m) { return py::tuple(py::cast(m.output_shape())); })
      .def_property_readonly("input_layout", &Model::input_layout)
      .def_property_readonly("metadata", &Model::metadata)
      .def("info", [](const Model& m) { return info_dict(m.info()); })
      .def("run", &run, py::arg("x"), py::arg("sample_axes"), py::arg("feature_axes"), py::arg("out_shape"),
           py::arg("out_sample_axes"), py::arg("out_feature_axes"), py::arg("threads") = 0, py::arg("out") = py::none())
      .def("run_device", &run_device, py::arg("x_ptr"), py::arg("x_dtype"), py::arg("x_shape"), py::arg("x_strides"),
           py::arg("sample_axes"), py::arg("feature_axes"), py::arg("y_ptr"), py::arg("y_shape"), py::arg("y_strides"),
           py::arg("out_sample_axes"), py::arg("out_feature_axes"), py::arg("stream") = 0);
}

}  // namespace fastinv::python
