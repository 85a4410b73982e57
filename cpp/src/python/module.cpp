// The pybind11 module fastinv._core. Each component binds itself in its own file;
// this file only wires them together and maps C++ exceptions to Python ones.
#include <pybind11/pybind11.h>

#include "fastinv/error.hpp"
#include "python/bindings.hpp"

namespace py = pybind11;

PYBIND11_MODULE(_core, m) {
  m.doc() = "fastinv's compiled core: CPU (and CUDA) kernels, model loader, solvers";
  py::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const fastinv::TypeMismatch& e) {
      PyErr_SetString(PyExc_TypeError, e.what());
    } catch (const fastinv::IoError& e) {
      PyErr_SetString(PyExc_OSError, e.what());
    } catch (const fastinv::OutOfMemory& e) {
      PyErr_SetString(PyExc_MemoryError, e.what());
    } catch (const fastinv::InvalidArgument& e) {
      PyErr_SetString(PyExc_ValueError, e.what());
    } catch (const fastinv::Error& e) {
      PyErr_SetString(PyExc_RuntimeError, e.what());
    }
  });
  py::module_ dem = m.def_submodule("dem", "DEM solvers: Basis Pursuit, DeepEM (fastinv/dem/*.hpp)");
  py::module_ stokes = m.def_submodule("stokes", "Stokes synthesis (fastinv/stokes/*.hpp)");
  py::module_ testing = m.def_submodule("_testing", "Hooks for fastinv's tests only; not an API");
  fastinv::python::bind_engine(m);
  fastinv::python::bind_dem(dem, testing);
  fastinv::python::bind_deepem(dem);
  fastinv::python::bind_stokes(stokes);
  fastinv::python::bind_stokes_me(stokes);
  fastinv::python::bind_stokes_lte(stokes, testing);
  fastinv::python::bind_cuda(m, testing);
}
