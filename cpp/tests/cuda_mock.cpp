// A CPU stand-in for the CUDA runtime wrappers and kernel launchers (cuda/gpu_runtime.hpp,
// cuda/gpu_kernels.hpp), so that test_cuda_backend can run the real CUDA backend
// (cuda/host/cuda_backend.cpp: plan upload, chunking over three "streams", pinned staging,
// slot arithmetic, strided gather/scatter, the planar zero-copy device path) on a machine
// without a GPU, under ASan/UBSan. "Device" memory is host memory filled with NaN, so a
// value the backend forgets to compute or copy shows up. Each launcher is the formula
// its kernel implements, written as plain loops; the fused one is the emulation that
// executes the kernel's own index math (host/emulate_fused.cpp). What this cannot test is
// the device itself: synchronisation, cp.async timing, the compiler.
#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <stdexcept>
#include <string>
#include <vector>

#include "fastinv/error.hpp"
#include "host/emulate.hpp"
#include "gpu_kernels.hpp"
#include "gpu_runtime.hpp"

namespace fastinv::cuda {
namespace {

void* poisoned(size_t bytes) {
  if (bytes == 0) return nullptr;
  void* p = std::malloc(bytes);
  if (!p) throw OutOfMemory("mock: out of memory");
  std::memset(p, 0xFF, bytes);  // all-ones words: NaN as float
  return p;
}

int64_t launches = 0;
int64_t stream_allocations = 0;

}  // namespace

namespace mock {
int64_t launch_count() { return launches; }
int64_t stream_allocation_count() { return stream_allocations; }
}  // namespace mock

DeviceProps open_device(int ordinal) {
  if (ordinal != 0) throw InvalidArgument("mock: one device");
  DeviceProps p;
  p.name = "mock";
  p.major = 9;
  p.multiprocessors = 4;
  const char* smem = std::getenv("FASTINV_MOCK_SMEM");
  p.shared_per_block_optin = smem ? std::atoll(smem) : 232448;
  p.total_memory = int64_t(1) << 34;
  return p;
}
void set_device(int) {}

DeviceMemory::DeviceMemory(size_t bytes) : ptr_(poisoned(bytes)), bytes_(bytes) {}
DeviceMemory::DeviceMemory(DeviceMemory&& o) noexcept : ptr_(o.ptr_), bytes_(o.bytes_) {
  o.ptr_ = nullptr;
  o.bytes_ = 0;
}
DeviceMemory& DeviceMemory::operator=(DeviceMemory&& o) noexcept {
  if (this != &o) {
    std::free(ptr_);
    ptr_ = o.ptr_;
    bytes_ = o.bytes_;
    o.ptr_ = nullptr;
    o.bytes_ = 0;
  }
  return *this;
}
DeviceMemory::~DeviceMemory() { std::free(ptr_); }

StreamMemory::StreamMemory(size_t bytes, StreamHandle stream) : ptr_(poisoned(bytes)), stream_(stream) {
  ++stream_allocations;
}
StreamMemory::~StreamMemory() { std::free(ptr_); }

PinnedMemory::PinnedMemory(size_t bytes) : ptr_(poisoned(bytes)) {}
PinnedMemory::PinnedMemory(PinnedMemory&& o) noexcept : ptr_(o.ptr_) { o.ptr_ = nullptr; }
PinnedMemory& PinnedMemory::operator=(PinnedMemory&& o) noexcept {
  if (this != &o) {
    std::free(ptr_);
    ptr_ = o.ptr_;
    o.ptr_ = nullptr;
  }
  return *this;
}
PinnedMemory::~PinnedMemory() { std::free(ptr_); }

Stream::Stream() {
  static uintptr_t next = 16;
  s_ = reinterpret_cast<StreamHandle>(next++);
}
Stream::~Stream() = default;
void Stream::synchronize() const {}
void synchronize(StreamHandle) {}
void synchronize_device() {}
void copy_to_device_async(void* dst, const void* src, size_t bytes, StreamHandle) { std::memcpy(dst, src, bytes); }
void copy_to_host_async(void* dst, const void* src, size_t bytes, StreamHandle) { std::memcpy(dst, src, bytes); }
void copy_async(void* dst, const void* src, size_t bytes, StreamHandle) { std::memcpy(dst, src, bytes); }
void copy_to_device(void* dst, const void* src, size_t bytes) { std::memcpy(dst, src, bytes); }
void check_device_pointer(const void* p, const char* what) {
  if (!p) throw InvalidArgument(std::string(what) + ": null");
}
void check_launch(const char*) { ++launches; }

// ---- kernels as formulas
int fused_prepare(cuda::Precision, int tile, int64_t smem, int sms, FusedKernel) {
  if (tile != 32 && tile != 64 && tile != 128) throw Error("mock: bad tile");
  if (smem <= 0) throw Error("mock: bad shared memory size");
  return 2 * sms;
}

void launch_fused(const FusedArgs& a, cuda::Precision p, int tile, int grid, int64_t smem, FusedKernel kernel,
                  StreamHandle) {
  if (a.nlayers < 1 || a.nlayers > cuda::kMaxFusedLayers || grid < 1) throw Error("mock fused: bad launch");
  if (smem != cuda::fused_smem_bytes(p, tile, a.rows, kernel)) throw Error("mock fused: shared memory size mismatch");
  if (a.rows < a.layers[0].kpad) throw Error("mock fused: buffer rows < first layer depth");
  for (int l = 0; l < a.nlayers; ++l) {
    const FusedLayerArgs& L = a.layers[l];
    if (L.mpad > a.rows || L.kpad % cuda::kChunkDepth || L.mpad % cuda::kChunkRows || L.m > L.mpad || L.k > L.kpad)
      throw Error("mock fused: bad layer geometry");
    if (l > 0 && (L.k != a.layers[l - 1].m || L.kpad > a.layers[l - 1].mpad))
      throw Error("mock fused: layers do not chain");
    if (reinterpret_cast<uintptr_t>(L.w) % 16) throw Error("mock fused: weights not 16-byte aligned (cp.async)");
  }
  emulate_fused_launch(a, p, tile, grid, smem, -1, -1, kernel);
  check_launch("fused");
}

void launch_conv(const float* w, const float* bias, const int32_t* rows, int m, int kdim, int lout, const float* in,
                 float* out, int64_t ld, int64_t n, DevAct act, StreamHandle) {
  if (!rows && lout != 1) throw Error("mock conv: no row table but lout != 1");
  const Activation h = host_act(act);
  for (int lo = 0; lo < lout; ++lo)
    for (int o = 0; o < m; ++o)
      for (int64_t p = 0; p < n; ++p) {
        float acc = 0.f;
        for (int j = 0; j < kdim; ++j) {
          const int64_t r = rows ? rows[int64_t(lo) * kdim + j] : j;
          if (r >= 0) acc = std::fma(w[int64_t(o) * kdim + j], in[r * ld + p], acc);
        }
        out[(int64_t(lo) * m + o) * ld + p] = apply_activation(h, acc + bias[o]);
      }
  check_launch("conv");
}

void launch_act(const float* in, float* out, int64_t nrows, int64_t ld, int64_t n, DevAct act, StreamHandle) {
  const Activation h = host_act(act);
  for (int64_t r = 0; r < nrows; ++r)
    for (int64_t p = 0; p < n; ++p) out[r * ld + p] = apply_activation(h, in[r * ld + p]);
  check_launch("act");
}

void launch_pool(bool is_max, const float* in, float* out, int c, int lin, int lout, int kernel, int stride, int pad,
                 bool count_include_pad, int64_t ld, int64_t n, StreamHandle) {
  for (int64_t r = 0; r < int64_t(lout) * c; ++r) {
    const int lo = int(r / c), ch = int(r % c), start = lo * stride - pad;
    const int lo_valid = std::max(start, 0), hi_valid = std::min(start + kernel, lin);
    for (int64_t p = 0; p < n; ++p) {
      float acc = is_max ? -std::numeric_limits<float>::infinity() : 0.f;
      for (int q = lo_valid; q < hi_valid; ++q) {
        const float v = in[(int64_t(q) * c + ch) * ld + p];
        if (is_max) {
          if (v > acc || std::isnan(v)) acc = v;
        } else {
          acc += v;
        }
      }
      if (!is_max) acc /= float(count_include_pad ? std::min(start + kernel, lin + pad) - start : hi_valid - lo_valid);
      out[r * ld + p] = acc;
    }
  }
  check_launch("pool");
}

void launch_affine(const float* in, float* out, const float* scale, const float* shift, int c, int64_t nrows,
                   int64_t ld, int64_t n, StreamHandle) {
  for (int64_t r = 0; r < nrows; ++r)
    for (int64_t p = 0; p < n; ++p) out[r * ld + p] = in[r * ld + p] * scale[r % c] + shift[r % c];
  check_launch("affine");
}

void launch_add(const float* a, const float* b, float* out, int64_t nrows, int64_t ld, int64_t n, StreamHandle) {
  // the device kernel's pointers are __restrict__: an aliased output is undefined behaviour there
  if (n > 0 && nrows > 0 && (out == a || out == b)) throw std::logic_error("launch_add: out aliases an operand");
  for (int64_t r = 0; r < nrows; ++r)
    for (int64_t p = 0; p < n; ++p) out[r * ld + p] = a[r * ld + p] + b[r * ld + p];
  check_launch("add");
}

void launch_accumulate(float* acc, const float* b, int64_t nrows, int64_t ld, int64_t n, StreamHandle) {
  if (n > 0 && nrows > 0 && acc == b) throw std::logic_error("launch_accumulate: acc aliases b");
  for (int64_t r = 0; r < nrows; ++r)
    for (int64_t p = 0; p < n; ++p) acc[r * ld + p] += b[r * ld + p];
  check_launch("accumulate");
}

void launch_copy_rows(const float* in, float* out, const int32_t* dst_rows, int64_t nrows, int64_t ld, int64_t n,
                      StreamHandle) {
  for (int64_t r = 0; r < nrows; ++r)
    for (int64_t p = 0; p < n; ++p) out[int64_t(dst_rows[r]) * ld + p] = in[r * ld + p];
  check_launch("copy_rows");
}

namespace {
int64_t offset_of(const StridedDesc& d, int64_t s) {
  const int64_t i2 = s % d.sample_shape[2], rest = s / d.sample_shape[2];
  const int64_t i1 = rest % d.sample_shape[1], i0 = rest / d.sample_shape[1];
  return i0 * d.sample_strides[0] + i1 * d.sample_strides[1] + i2 * d.sample_strides[2];
}
}  // namespace

void launch_gather(const void* src, bool f64, const StridedDesc& d, int64_t c, int64_t l, int64_t first, int64_t n,
                   float* dst, int64_t ld, StreamHandle) {
  for (int64_t j = 0; j < n; ++j) {
    const int64_t base = offset_of(d, first + j);
    for (int64_t r = 0; r < c * l; ++r) {
      const int64_t e = base + (r % c) * d.feature_strides[0] + (r / c) * d.feature_strides[1];
      dst[r * ld + j] = f64 ? float(static_cast<const double*>(src)[e]) : static_cast<const float*>(src)[e];
    }
  }
  check_launch("gather");
}

void launch_scatter(const float* src, int64_t ld, int64_t c, int64_t l, int64_t first, int64_t n, float* dst,
                    const StridedDesc& d, StreamHandle) {
  for (int64_t j = 0; j < n; ++j) {
    const int64_t base = offset_of(d, first + j);
    for (int64_t r = 0; r < c * l; ++r)
      dst[base + (r % c) * d.feature_strides[0] + (r / c) * d.feature_strides[1]] = src[r * ld + j];
  }
  check_launch("scatter");
}

}  // namespace fastinv::cuda
