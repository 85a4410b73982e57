// Version, errors and data directory of the C API.
#include <cstring>
#include <string>

#include "capi_common.hpp"
#include "fastinv/data.hpp"
#include "fastinv/runtime.hpp"

namespace fastinv::capi {

namespace {
thread_local std::string last_error;
}

void set_error(const std::string& message) {
  try {
    last_error = message;
  } catch (...) {  // no memory for the message: keep a fixed one
    last_error.clear();
  }
}

void clear_error() { last_error.clear(); }

const char* last_error_message() noexcept { return last_error.c_str(); }

DType dtype_of(int32_t d, const char* function) {
  if (d == FASTINV_FLOAT32) return DType::f32;
  if (d == FASTINV_FLOAT64) return DType::f64;
  throw TypeMismatch(std::string(function) + ": dtype must be FASTINV_FLOAT32 or FASTINV_FLOAT64, got " +
                     std::to_string(int(d)));
}

LoadOptions load_options(const fastinv_load_options* options, const char* function) {
  LoadOptions lo;
  if (options == nullptr) return lo;
  const fastinv_load_options& o = require_struct(options, sizeof(fastinv_load_options), function, "options");
  if (o.device) lo.device = o.device;
  if (o.precision) lo.precision = o.precision;
  const bool cuda = lo.device.rfind("cuda", 0) == 0;
  const bool bf16 = lo.precision == "bf16" || lo.precision == "bf16x2";
  if (cuda && !cuda_compiled())
    throw Unsupported(std::string(function) + ": device '" + lo.device +
                      "': this fastinv was built without the CUDA backend; use device \"cpu\"");
  if (!cuda && bf16 && !bf16_available())
    throw Unsupported(std::string(function) + ": precision \"" + lo.precision +
                      "\" on the CPU needs AVX512-BF16 (vdpbf16ps: Intel Cooper Lake, Sapphire "
                      "Rapids or later, AMD Zen 4 or later), which this CPU or build lacks; use \"fp32\"");
  if (!cuda && bf16 && active_isa() != Isa::avx512)
    throw Unsupported(std::string(function) + ": precision \"" + lo.precision +
                      "\" runs on the AVX-512 kernels, but the active ISA is '" + isa_name(active_isa()) +
                      "' (FASTINV_ISA lowered it); use \"fp32\"");
  return lo;
}

}  // namespace fastinv::capi

using namespace fastinv::capi;

extern "C" {

const char* fastinv_version(void) { return fastinv::version(); }

int fastinv_api_version(void) { return FASTINV_API_VERSION; }

fastinv_status fastinv_check_api(int header_api_version) {
  clear_error();
  if (header_api_version >= 1 && header_api_version <= FASTINV_API_VERSION) return FASTINV_OK;
  try {
    set_error("fastinv: the program was built with fastinv.h API version " + std::to_string(header_api_version) +
              " but the library (fastinv " + fastinv::version() + ") provides API version " +
              std::to_string(FASTINV_API_VERSION) +
              ": link the library that matches the header, or rebuild against this one");
  } catch (...) {  // no memory for the message; the status still says it
  }
  return FASTINV_VERSION_MISMATCH;
}

const char* fastinv_last_error(void) { return last_error_message(); }

void fastinv_load_options_init_sized(fastinv_load_options* options, size_t size) {
  init_sized(options, size, fastinv_load_options{});
}

void(fastinv_load_options_init)(fastinv_load_options* options) {
  fastinv_load_options_init_sized(options, sizeof(fastinv_load_options));
}

int fastinv_bf16_available(void) {
  try {
    return fastinv::bf16_available() && fastinv::active_isa() == fastinv::Isa::avx512 ? 1 : 0;
  } catch (...) {  // FASTINV_ISA names an ISA this CPU lacks: nothing runs, bf16 neither
    return 0;
  }
}

fastinv_status fastinv_data_dir(char* buf, size_t capacity) {
  return guard([&] {
    require(buf, "fastinv_data_dir", "buf");
    const std::string dir = fastinv::data_dir();
    if (dir.size() + 1 > capacity)
      throw fastinv::InvalidArgument("fastinv_data_dir: the path needs " + std::to_string(dir.size() + 1) +
                                     " bytes, buf has " + std::to_string(capacity));
    std::memcpy(buf, dir.c_str(), dir.size() + 1);
  });
}

}  // extern "C"
