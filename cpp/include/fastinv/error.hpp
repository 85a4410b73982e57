// Exceptions thrown by the fastinv C++ API. The Python bindings translate them:
// InvalidArgument -> ValueError, TypeMismatch -> TypeError, IoError -> OSError,
// OutOfMemory -> MemoryError, any other Error -> RuntimeError.
#pragma once
#include <stdexcept>
#include <string>

namespace fastinv {

class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// A value the caller passed (or a file's content) is invalid.
class InvalidArgument : public Error {
 public:
  using Error::Error;
};

// The caller passed something of the wrong kind (dtype, rank).
class TypeMismatch : public Error {
 public:
  using Error::Error;
};

// A file could not be opened, read or written.
class IoError : public Error {
 public:
  using Error::Error;
};

// An allocation failed (host, pinned host or device); the message says how much and what
// to do (smaller batches, fewer threads, free memory held by other processes).
class OutOfMemory : public Error {
 public:
  using Error::Error;
};

}  // namespace fastinv
