# Per-ISA translation units for the hot microkernels. Each is compiled for its own
# target (never -march=native) and chosen at run time from the CPU's features, so one
# build runs on any x86-64 machine.
include(CheckCXXCompilerFlag)

set(FASTINV_AVX2_FLAGS -mavx2 -mfma)
set(FASTINV_AVX512_FLAGS -mavx512f -mavx512bw -mavx512dq -mavx512vl -mavx2 -mfma)
set(FASTINV_AVX512BF16_FLAGS ${FASTINV_AVX512_FLAGS} -mavx512bf16)
set(FASTINV_AMXBF16_FLAGS ${FASTINV_AVX512BF16_FLAGS} -mamx-tile -mamx-bf16)

check_cxx_compiler_flag("-mavx2 -mfma" FASTINV_COMPILER_HAS_AVX2)
check_cxx_compiler_flag("-mavx512f -mavx512bw -mavx512dq -mavx512vl" FASTINV_COMPILER_HAS_AVX512)
check_cxx_compiler_flag("-mavx512f -mavx512bw -mavx512dq -mavx512vl -mavx512bf16" FASTINV_COMPILER_HAS_AVX512BF16)
check_cxx_compiler_flag("-mavx512f -mavx512bf16 -mamx-tile -mamx-bf16" FASTINV_COMPILER_HAS_AMXBF16)

# fastinv_isa_sources(<target> <avx2|avx512|avx512bf16|amxbf16> <DEFINITION> <sources>...): compile the
# sources for that ISA only and define DEFINITION=1 for the target, when the compiler
# can and the target is x86-64; otherwise add nothing (the portable kernels serve).
function(fastinv_isa_sources target isa definition)
  if(NOT CMAKE_SYSTEM_PROCESSOR MATCHES "x86_64|AMD64|amd64")
    return()
  endif()
  if(isa STREQUAL "avx2")
    set(supported ${FASTINV_COMPILER_HAS_AVX2})
    set(flags ${FASTINV_AVX2_FLAGS})
  elseif(isa STREQUAL "avx512")
    set(supported ${FASTINV_COMPILER_HAS_AVX512})
    set(flags ${FASTINV_AVX512_FLAGS})
  elseif(isa STREQUAL "avx512bf16")
    set(supported ${FASTINV_COMPILER_HAS_AVX512BF16})
    set(flags ${FASTINV_AVX512BF16_FLAGS})
  elseif(isa STREQUAL "amxbf16")
    set(supported ${FASTINV_COMPILER_HAS_AMXBF16})
    set(flags ${FASTINV_AMXBF16_FLAGS})
  else()
    message(FATAL_ERROR "fastinv_isa_sources: unknown ISA '${isa}'")
  endif()
  if(supported)
    target_sources(${target} PRIVATE ${ARGN})
    set_source_files_properties(${ARGN} PROPERTIES COMPILE_OPTIONS "${flags}")
    target_compile_definitions(${target} PRIVATE ${definition}=1)
  endif()
endfunction()
