#include <cstdlib>
#include <cstring>

#include "cuda_check.cuh"
#include "gpu_runtime.hpp"

namespace fastinv::cuda {
namespace {

[[noreturn]] void throw_oom(size_t bytes, const char* what, cudaError_t err) {
  cudaGetLastError();  // clear the sticky-free allocation error
  size_t free_b = 0, total_b = 0;
  cudaMemGetInfo(&free_b, &total_b);
  throw OutOfMemory(std::string("CUDA out of memory allocating ") + std::to_string(bytes >> 20) + " MiB of " + what +
                    " (" + cudaGetErrorString(err) + "; " + std::to_string(free_b >> 20) + " of " +
                    std::to_string(total_b >> 20) +
                    " MiB free): pass smaller batches, free GPU memory held by other arrays or processes, or use "
                    "device='cpu'");
}

}  // namespace

DeviceProps open_device(int ordinal) {
  int count = 0;
  const cudaError_t err = cudaGetDeviceCount(&count);
  if (err != cudaSuccess) {
    cudaGetLastError();
    int driver = 0;
    cudaDriverGetVersion(&driver);
    if (err == cudaErrorInsufficientDriver && driver == 0)
      throw Error(
          "device='cuda': no NVIDIA driver found (libcuda.so.1 could not be loaded), so no CUDA device "
          "can be used; install the NVIDIA driver on a machine with a GPU, or use device='cpu'");
    if (err == cudaErrorInsufficientDriver)
      throw Error("device='cuda': the NVIDIA driver (CUDA " + std::to_string(driver / 1000) + "." +
                  std::to_string(driver % 1000 / 10) + ") is older than the CUDA " +
                  std::to_string(CUDART_VERSION / 1000) + "." + std::to_string(CUDART_VERSION % 1000 / 10) +
                  " runtime fastinv was built with; update the driver, or use device='cpu'");
    if (err == cudaErrorNoDevice)
      throw Error(
          "device='cuda': no CUDA device found (the driver sees no GPU; check CUDA_VISIBLE_DEVICES); "
          "use device='cpu'");
    throw Error(std::string("device='cuda': CUDA could not be initialised (") + cudaGetErrorName(err) + ": " +
                cudaGetErrorString(err) + "); use device='cpu'");
  }
  if (count == 0) throw Error("device='cuda': no CUDA device found; use device='cpu'");
  if (ordinal < 0 || ordinal >= count)
    throw InvalidArgument("device='cuda:" + std::to_string(ordinal) + "': there are " + std::to_string(count) +
                          " CUDA device(s), numbered 0 to " + std::to_string(count - 1));
  cudaDeviceProp prop{};
  FASTINV_CUDA_CHECK(cudaGetDeviceProperties(&prop, ordinal));
  if (prop.major < 8)
    throw Error(std::string("device='cuda': ") + prop.name + " is compute capability " + std::to_string(prop.major) +
                "." + std::to_string(prop.minor) +
                "; fastinv's CUDA kernels need 8.0 or newer (Ampere, Ada, Hopper); use device='cpu'");
  FASTINV_CUDA_CHECK(cudaSetDevice(ordinal));
  DeviceProps p;
  p.ordinal = ordinal;
  p.name = prop.name;
  p.major = prop.major;
  p.minor = prop.minor;
  p.multiprocessors = prop.multiProcessorCount;
  p.shared_per_block_optin = int64_t(prop.sharedMemPerBlockOptin);
  p.total_memory = int64_t(prop.totalGlobalMem);
  return p;
}

void set_device(int ordinal) { FASTINV_CUDA_CHECK(cudaSetDevice(ordinal)); }

DeviceMemory::DeviceMemory(size_t bytes) : bytes_(bytes) {
  if (bytes == 0) return;
  const cudaError_t err = cudaMalloc(&ptr_, bytes);
  if (err == cudaErrorMemoryAllocation) throw_oom(bytes, "device memory", err);
  FASTINV_CUDA_CHECK(err);
}
DeviceMemory::DeviceMemory(DeviceMemory&& o) noexcept : ptr_(o.ptr_), bytes_(o.bytes_) {
  o.ptr_ = nullptr;
  o.bytes_ = 0;
}
DeviceMemory& DeviceMemory::operator=(DeviceMemory&& o) noexcept {
  if (this != &o) {
    if (ptr_) cudaFree(ptr_);
    ptr_ = o.ptr_;
    bytes_ = o.bytes_;
    o.ptr_ = nullptr;
    o.bytes_ = 0;
  }
  return *this;
}
DeviceMemory::~DeviceMemory() {
  if (ptr_) cudaFree(ptr_);
}

StreamMemory::StreamMemory(size_t bytes, StreamHandle stream) : stream_(stream) {
  if (bytes == 0) return;
  const cudaError_t err = cudaMallocAsync(&ptr_, bytes, static_cast<cudaStream_t>(stream));
  if (err == cudaErrorMemoryAllocation) throw_oom(bytes, "stream-ordered scratch", err);
  FASTINV_CUDA_CHECK(err);
}
StreamMemory::~StreamMemory() {
  if (ptr_) cudaFreeAsync(ptr_, static_cast<cudaStream_t>(stream_));
}

PinnedMemory::PinnedMemory(size_t bytes) {
  if (bytes == 0) return;
  const cudaError_t err = cudaMallocHost(&ptr_, bytes);
  if (err == cudaErrorMemoryAllocation) throw_oom(bytes, "pinned host memory", err);
  FASTINV_CUDA_CHECK(err);
}
PinnedMemory::PinnedMemory(PinnedMemory&& o) noexcept : ptr_(o.ptr_) { o.ptr_ = nullptr; }
PinnedMemory& PinnedMemory::operator=(PinnedMemory&& o) noexcept {
  if (this != &o) {
    if (ptr_) cudaFreeHost(ptr_);
    ptr_ = o.ptr_;
    o.ptr_ = nullptr;
  }
  return *this;
}
PinnedMemory::~PinnedMemory() {
  if (ptr_) cudaFreeHost(ptr_);
}

Stream::Stream() {
  cudaStream_t s = nullptr;
  FASTINV_CUDA_CHECK(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
  s_ = s;
}
Stream::~Stream() {
  if (s_) cudaStreamDestroy(static_cast<cudaStream_t>(s_));
}
void Stream::synchronize() const { cuda::synchronize(s_); }

void synchronize(StreamHandle stream) { FASTINV_CUDA_CHECK(cudaStreamSynchronize(static_cast<cudaStream_t>(stream))); }
void synchronize_device() { FASTINV_CUDA_CHECK(cudaDeviceSynchronize()); }

void copy_to_device_async(void* dst, const void* src, size_t bytes, StreamHandle stream) {
  FASTINV_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, static_cast<cudaStream_t>(stream)));
}
void copy_to_host_async(void* dst, const void* src, size_t bytes, StreamHandle stream) {
  FASTINV_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, static_cast<cudaStream_t>(stream)));
}
void copy_async(void* dst, const void* src, size_t bytes, StreamHandle stream) {
  FASTINV_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, static_cast<cudaStream_t>(stream)));
}
void copy_to_device(void* dst, const void* src, size_t bytes) {
  FASTINV_CUDA_CHECK(cudaMemcpy(dst, src, bytes, cudaMemcpyHostToDevice));
}

void check_device_pointer(const void* p, const char* what) {
  cudaPointerAttributes attr{};
  const cudaError_t err = cudaPointerGetAttributes(&attr, p);
  if (err != cudaSuccess) {
    cudaGetLastError();
    throw InvalidArgument(std::string(what) + ": not a CUDA device pointer (" + cudaGetErrorString(err) + ")");
  }
  int current = 0;
  FASTINV_CUDA_CHECK(cudaGetDevice(&current));
  if (attr.type != cudaMemoryTypeDevice && attr.type != cudaMemoryTypeManaged)
    throw InvalidArgument(std::string(what) + " is not in device memory; pass a NumPy array for host data");
  if (attr.type == cudaMemoryTypeDevice && attr.device != current)
    throw InvalidArgument(std::string(what) + " is on cuda:" + std::to_string(attr.device) +
                          " but the model is on cuda:" + std::to_string(current) +
                          "; load the model with device='cuda:" + std::to_string(attr.device) + "'");
}

void check_launch(const char* what) {
  const cudaError_t err = cudaGetLastError();
  if (err != cudaSuccess)
    throw Error(std::string("CUDA kernel launch failed (") + what + "): " + cudaGetErrorString(err));
  static const bool sync_each = [] {
    const char* v = std::getenv("FASTINV_CUDA_SYNC");
    return v != nullptr && std::strcmp(v, "1") == 0;
  }();
  if (!sync_each) return;
  const cudaError_t run = cudaDeviceSynchronize();
  if (run != cudaSuccess)
    throw Error(std::string("CUDA kernel failed (") + what + ", FASTINV_CUDA_SYNC=1): " + cudaGetErrorString(run));
}

}  // namespace fastinv::cuda
