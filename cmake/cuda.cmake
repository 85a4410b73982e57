# CUDA backend: FASTINV_CUDA=AUTO compiles cuda/ when a CUDA compiler is found,
# ON requires one, OFF skips it.
set(FASTINV_WITH_CUDA OFF)
if(NOT FASTINV_CUDA STREQUAL "OFF")
  include(CheckLanguage)
  check_language(CUDA)
  if(CMAKE_CUDA_COMPILER)
    set(FASTINV_WITH_CUDA ON)
  elseif(FASTINV_CUDA STREQUAL "ON")
    message(FATAL_ERROR "FASTINV_CUDA=ON but no CUDA compiler was found (set CMAKE_CUDA_COMPILER or put nvcc on PATH)")
  else()
    message(STATUS "fastinv: no CUDA compiler found, building the CPU backend only")
  endif()
endif()

if(FASTINV_WITH_CUDA)
  if(NOT DEFINED CMAKE_CUDA_ARCHITECTURES)
    # Ampere (A100, consumer), Ada and Hopper; 'native' would need a GPU at configure time.
    # Machine code for each; PTX only for the newest (JIT-compiled on later GPUs), which
    # keeps the CI compile short.
    set(CMAKE_CUDA_ARCHITECTURES 80-real 86-real 89-real 90)
  endif()
  enable_language(CUDA)
  find_package(CUDAToolkit REQUIRED)
  add_subdirectory(cuda)
  target_link_libraries(fastinv PUBLIC fastinv_cuda)
  # The backend's host side (cuda/host/: plan compilation, scheduling, data movement) is
  # plain C++ in the core library; it reaches the GPU only through cuda/gpu_runtime.hpp
  # and cuda/gpu_kernels.hpp.
  target_sources(fastinv PRIVATE ${PROJECT_SOURCE_DIR}/cuda/host/cuda_backend.cpp)
  target_compile_definitions(fastinv PUBLIC FASTINV_HAVE_CUDA=1)
  message(STATUS "fastinv: CUDA backend enabled for architectures ${CMAKE_CUDA_ARCHITECTURES}")
endif()
