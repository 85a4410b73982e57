// Plain C++ (no CUDA headers) RAII handles over the CUDA runtime, so the backend in
// cuda/host/cuda_backend.cpp compiles with the host compiler. Every failure becomes a
// fastinv exception whose message says what to do: OutOfMemory for allocations
// (-> MemoryError), Error for everything else (-> RuntimeError).
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>

namespace fastinv::cuda {

struct DeviceProps {
  int ordinal = 0;
  std::string name;
  int major = 0, minor = 0;
  int multiprocessors = 0;
  int64_t shared_per_block_optin = 0;  // bytes a block may use after opting in
  int64_t total_memory = 0;
};

// Make `ordinal` the current device after checking that a driver and the device are
// there and that it is sm_80 or newer (what the kernels are compiled for). Throws
// fastinv::Error with a message naming the cause (no driver, driver too old, no
// device, unsupported architecture) and the fix.
DeviceProps open_device(int ordinal);
void set_device(int ordinal);

using StreamHandle = void*;  // a cudaStream_t

class DeviceMemory {
 public:
  DeviceMemory() = default;
  explicit DeviceMemory(size_t bytes);  // throws OutOfMemory
  DeviceMemory(DeviceMemory&& o) noexcept;
  DeviceMemory& operator=(DeviceMemory&& o) noexcept;
  DeviceMemory(const DeviceMemory&) = delete;
  DeviceMemory& operator=(const DeviceMemory&) = delete;
  ~DeviceMemory();
  void* get() const { return ptr_; }
  size_t bytes() const { return bytes_; }

 private:
  void* ptr_ = nullptr;
  size_t bytes_ = 0;
};

// Stream-ordered scratch (cudaMallocAsync / cudaFreeAsync on one stream), for calls on
// a caller's stream: safe against concurrent calls on other streams.
class StreamMemory {
 public:
  StreamMemory(size_t bytes, StreamHandle stream);
  StreamMemory(const StreamMemory&) = delete;
  StreamMemory& operator=(const StreamMemory&) = delete;
  ~StreamMemory();
  void* get() const { return ptr_; }

 private:
  void* ptr_ = nullptr;
  StreamHandle stream_ = nullptr;
};

class PinnedMemory {
 public:
  PinnedMemory() = default;
  explicit PinnedMemory(size_t bytes);  // page-locked host memory; throws OutOfMemory
  PinnedMemory(PinnedMemory&& o) noexcept;
  PinnedMemory& operator=(PinnedMemory&& o) noexcept;
  PinnedMemory(const PinnedMemory&) = delete;
  PinnedMemory& operator=(const PinnedMemory&) = delete;
  ~PinnedMemory();
  void* get() const { return ptr_; }

 private:
  void* ptr_ = nullptr;
};

class Stream {
 public:
  Stream();  // non-blocking with respect to the legacy default stream
  Stream(const Stream&) = delete;
  Stream& operator=(const Stream&) = delete;
  ~Stream();
  StreamHandle get() const { return s_; }
  void synchronize() const;

 private:
  StreamHandle s_ = nullptr;
};

void synchronize(StreamHandle stream);
// Wait for all work on the current device (the end of a backend's construction: its
// synchronous weight uploads from pageable memory must be complete before kernels run on
// non-blocking or caller streams).
void synchronize_device();
void copy_to_device_async(void* dst, const void* src, size_t bytes, StreamHandle stream);
void copy_to_host_async(void* dst, const void* src, size_t bytes, StreamHandle stream);
void copy_async(void* dst, const void* src, size_t bytes, StreamHandle stream);  // device to device
void copy_to_device(void* dst, const void* src, size_t bytes);                   // synchronous
// Throw InvalidArgument unless `p` is device (or managed) memory of the current device:
// a host pointer handed to a kernel would fault and poison the context.
void check_device_pointer(const void* p, const char* what);
// Raise the error (if any) left by the last kernel launch; `what` names the kernel. With
// FASTINV_CUDA_SYNC=1 in the environment (read once) it also synchronises the device and
// raises a fault of the kernel itself, so it is reported at its launch and not by the
// caller's next CUDA call (slow: for debugging and bench/gpu_check.sh).
void check_launch(const char* what);

}  // namespace fastinv::cuda
