// The C API's plumbing: exceptions become fastinv_status codes plus a per-thread message,
// and every pointer/size the caller hands over is checked before the C++ API sees it.
#pragma once
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <new>
#include <string>

#include "fastinv/error.hpp"
#include "fastinv/fastinv.h"
#include "fastinv/model.hpp"

// The *_init functions as programs built against API levels 1-3 call them (the header's
// fastinv_X_init macros call fastinv_X_init_sized instead): kept so that those programs run.
extern "C" {
void(fastinv_load_options_init)(fastinv_load_options* options);
void(fastinv_dem_errors_init)(fastinv_dem_errors* errors);
void(fastinv_deepem_output_init)(fastinv_deepem_output* output);
void(fastinv_bp_options_init)(fastinv_bp_options* options);
void(fastinv_bp_output_init)(fastinv_bp_output* output);
void(fastinv_me_options_init)(fastinv_me_options* options);
void(fastinv_me_input_init)(fastinv_me_input* input);
void(fastinv_me_output_init)(fastinv_me_output* output);
}

namespace fastinv::capi {

// What this CPU or build cannot do (FASTINV_UNSUPPORTED): found by the C API before the C++
// call, which reports the same as a plain fastinv::Error.
class Unsupported : public Error {
 public:
  using Error::Error;
};

void set_error(const std::string& message);
void clear_error();
const char* last_error_message() noexcept;

// Run f (returning void); map what it throws to a status. Never lets an exception out.
template <class F>
fastinv_status guard(F&& f) noexcept {
  try {
    clear_error();
    f();
    return FASTINV_OK;
  } catch (const Unsupported& e) {
    set_error(e.what());
    return FASTINV_UNSUPPORTED;
  } catch (const TypeMismatch& e) {
    set_error(e.what());
    return FASTINV_TYPE_MISMATCH;
  } catch (const InvalidArgument& e) {
    set_error(e.what());
    return FASTINV_INVALID_ARGUMENT;
  } catch (const IoError& e) {
    set_error(e.what());
    return FASTINV_IO_ERROR;
  } catch (const OutOfMemory& e) {
    set_error(e.what());
    return FASTINV_OUT_OF_MEMORY;
  } catch (const std::bad_alloc&) {
    set_error("out of memory");
    return FASTINV_OUT_OF_MEMORY;
  } catch (const std::exception& e) {
    set_error(e.what());
    return FASTINV_INTERNAL_ERROR;
  } catch (...) {
    set_error("unknown C++ exception");
    return FASTINV_INTERNAL_ERROR;
  }
}

// Throws InvalidArgument "<function>: <what> is NULL" for a null pointer.
template <class T>
T* require(T* p, const char* function, const char* what) {
  if (p == nullptr) throw InvalidArgument(std::string(function) + ": " + what + " is NULL");
  return p;
}

// Throws InvalidArgument "<function>: <what> is negative" (least 0) or "... must be >= <least>".
inline void require_at_least(int64_t value, int64_t least, const char* function, const char* what) {
  if (value >= least) return;
  throw InvalidArgument(std::string(function) + ": " + what +
                        (least == 0 ? std::string(" is negative") : " must be >= " + std::to_string(least)));
}

// A struct with a leading `size` member: set (not garbage) and at least the first version's size.
template <class S>
const S& require_struct(const S* s, std::size_t first_version_size, const char* function, const char* what) {
  require(s, function, what);
  // a local: GCC 12 reads `s->size < x || ...` as a template name (-Wmissing-template-keyword)
  const std::size_t size = s->size;
  if (size < first_version_size || size > (std::size_t(1) << 20))
    throw InvalidArgument(std::string(function) + ": " + what + "->size is " + std::to_string(size) +
                          ", expected sizeof(" + what + ") (use the *_init function)");
  return *s;
}

DType dtype_of(int32_t d, const char* function);

// The C++ LoadOptions of a fastinv_load_options (NULL: the defaults); throws Unsupported for a
// precision or device this CPU or build cannot run.
LoadOptions load_options(const fastinv_load_options* options, const char* function);

// A *_init_sized: the library's defaults d written into the caller's struct of `size` bytes
// (the sizeof of the caller's header): the fields both know, zeros in those only the caller
// knows, and size = the caller's, so nothing past the caller's struct is written. A size no
// struct has (below the size member, or over 1 MiB) writes nothing: the struct's first use
// then reports it.
template <class S>
void init_sized(S* s, std::size_t size, const S& d) noexcept {
  if (s == nullptr || size < sizeof(std::size_t) || size > (std::size_t(1) << 20)) return;
  std::memset(static_cast<void*>(s), 0, size);
  std::memcpy(static_cast<void*>(s), &d, std::min(size, sizeof(S)));
  s->size = size;
}

// Reads the appended field at `offset` (of `bytes`) only when the caller's struct has it.
template <class S>
bool has_field(const S& s, std::size_t offset, std::size_t bytes) {
  return s.size >= offset + bytes;
}

}  // namespace fastinv::capi
