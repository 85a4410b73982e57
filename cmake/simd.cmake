# Per-ISA translation units for the hot microkernels. Each is compiled for its own
# target (never -march=native) and chosen at run time from the CPU's features, so one
# build runs on any x86-64 machine.
include(CheckCXXCompilerFlag)

set(FASTINV_AVX2_FLAGS -mavx2 -mfma -mf16c)
set(FASTINV_AVX512_FLAGS -mavx512f -mavx512bw -mavx512dq -mavx512vl -mavx2 -mfma)

check_cxx_compiler_flag("-mavx2 -mfma" FASTINV_COMPILER_HAS_AVX2)
check_cxx_compiler_flag("-mavx512f -mavx512bw -mavx512dq -mavx512vl" FASTINV_COMPILER_HAS_AVX512)

function(fastinv_add_isa_kernels target)
  if(CMAKE_SYSTEM_PROCESSOR MATCHES "x86_64|AMD64|amd64")
    if(FASTINV_COMPILER_HAS_AVX2)
      target_sources(${target} PRIVATE cpp/src/cpu/kernels_avx2.cpp)
      set_source_files_properties(cpp/src/cpu/kernels_avx2.cpp PROPERTIES COMPILE_OPTIONS "${FASTINV_AVX2_FLAGS}")
      target_compile_definitions(${target} PRIVATE FASTINV_HAVE_AVX2_KERNELS=1)
    endif()
    if(FASTINV_COMPILER_HAS_AVX512)
      target_sources(${target} PRIVATE cpp/src/cpu/kernels_avx512.cpp)
      set_source_files_properties(cpp/src/cpu/kernels_avx512.cpp PROPERTIES COMPILE_OPTIONS "${FASTINV_AVX512_FLAGS}")
      target_compile_definitions(${target} PRIVATE FASTINV_HAVE_AVX512_KERNELS=1)
    endif()
  endif()
endfunction()
