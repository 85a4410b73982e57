// One binding function per component of fastinv._core.
#pragma once
#include <pybind11/pybind11.h>

namespace fastinv::python {

// Each binds into the submodule of its domain (fastinv._core, ._core.dem, ._core.stokes);
// hooks that only tests use go into fastinv._core._testing.
void bind_engine(pybind11::module_& m);                             // runtime info + Model (bind_engine.cpp)
void bind_dem(pybind11::module_& dem, pybind11::module_& testing);  // Basis Pursuit (bind_dem.cpp)
void bind_stokes(pybind11::module_& stokes);                        // Faddeeva, lines, Zeeman (bind_stokes.cpp)
void bind_stokes_me(pybind11::module_& stokes);  // Milne-Eddington, instrument operator (bind_stokes_me.cpp)
void bind_stokes_lte(pybind11::module_& stokes, pybind11::module_& testing);  // LTE synthesis (bind_stokes_lte.cpp)
void bind_cuda(pybind11::module_& m,
               pybind11::module_& testing);  // CUDA backend test hooks: weight packing, device facts (bind_cuda.cpp)
void bind_deepem(pybind11::module_& dem);    // DeepEM with fused pre/post-processing (bind_deepem.cpp)

}  // namespace fastinv::python
