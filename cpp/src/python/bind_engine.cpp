#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include "fastinv/runtime.hpp"
#include "python/bindings.hpp"
#ifdef FASTINV_HAVE_CUDA
#include "cuda_device.hpp"
#endif

namespace py = pybind11;

namespace fastinv::python {

void bind_engine(py::module_& m) {
  m.def("active_isa", [] { return std::string(isa_name(active_isa())); },
        "SIMD instruction set the CPU kernels use now.");
  m.def("set_active_isa", [](const std::string& name) { set_active_isa(isa_from_name(name)); },
        py::arg("name"), "Use the kernels for another (available) ISA: generic, avx2 or avx512.");
  m.def("available_isas", [] {
    std::vector<std::string> names;
    for (Isa isa : available_isas()) names.emplace_back(isa_name(isa));
    return names;
  });
  m.def("default_threads", &default_threads);
  m.def("openmp_enabled", &openmp_enabled);
  m.def("cuda_compiled", &cuda_compiled);
  m.def("cuda_device_count", [] {
#ifdef FASTINV_HAVE_CUDA
    return cuda::device_count();
#else
    return 0;
#endif
  });
}

}  // namespace fastinv::python
