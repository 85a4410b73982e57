// CUDA backend (compiled only with FASTINV_HAVE_CUDA). The graph is compiled once at
// load: a chain of 1x1 / Linear layers (+ activations) of width <= 512 becomes ONE
// fused persistent kernel (cuda/fused_mlp.cu) in the requested precision; any other
// graph runs op by op (cuda/ops.cu, exact fp32), scheduled like the CPU plan (an
// activation folded into its convolution, a flatten that keeps the row order is a view,
// buffers reused by liveness).
//
// Data movement. Host (NumPy) batches are cut into chunks of at most `chunk_` samples;
// chunks go round-robin over kLanes streams, each with its own pinned staging buffers
// and device arena, so the gather of chunk i+1 on the CPU overlaps the copies and
// kernels of chunk i and the GPU working set is bounded (kLanes arenas) whatever the
// frame size. Device arrays (__cuda_array_interface__) are processed on the caller's
// stream with stream-ordered scratch, read and written in place when already planar.
#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <type_traits>

#include "backend.hpp"
#include "cuda_device.hpp"
#include "fastinv/error.hpp"
#include "fastinv/runtime.hpp"
#include "host/pack.hpp"
#include "host/plan.hpp"
#include "gpu_kernels.hpp"
#include "gpu_runtime.hpp"
#ifdef FASTINV_HAVE_OPENMP
#include <omp.h>
#endif

namespace fastinv {
namespace {

using cuda::DevAct;
using cuda::DeviceMemory;
using cuda::Precision;

constexpr int kLanes = 3;
constexpr int64_t kLaneBudget = int64_t(256) << 20;  // device bytes per lane's arena
constexpr int64_t kMaxChunk = int64_t(1) << 19;      // samples per chunk

template <typename T>
DeviceMemory upload(const std::vector<T>& v) {
  DeviceMemory d(std::max<size_t>(v.size(), 1) * sizeof(T));
  if (!v.empty()) cuda::copy_to_device(d.get(), v.data(), v.size() * sizeof(T));
  return d;
}

// A positive integer from the environment variable `name`, or 0 when it is unset or empty.
int64_t env_positive(const char* name) {
  const char* env = std::getenv(name);
  if (env == nullptr || *env == '\0') return 0;
  char* end = nullptr;
  const long long v = std::strtoll(env, &end, 10);
  if (*end != '\0' || v < 1) throw InvalidArgument(std::string(name) + "=" + env + ": expected a positive integer");
  return v;
}

inline int64_t sample_offset(const Strided& v, int64_t s) {
  const int64_t i2 = s % v.sample_shape[2], rest = s / v.sample_shape[2];
  const int64_t i1 = rest % v.sample_shape[1], i0 = rest / v.sample_shape[1];
  return i0 * v.sample_strides[0] + i1 * v.sample_strides[1] + i2 * v.sample_strides[2];
}

cuda::StridedDesc desc_of(const Strided& v) {
  cuda::StridedDesc d;
  for (int i = 0; i < 3; ++i) {
    d.sample_shape[i] = v.sample_shape[size_t(i)];
    d.sample_strides[i] = v.sample_strides[size_t(i)];
  }
  d.feature_strides[0] = v.feature_strides[0];
  d.feature_strides[1] = v.feature_ndim == 2 ? v.feature_strides[1] : 0;
  return d;
}

// Row stride when the samples of `v` form one run of stride 1 and the feature
// stride is the row stride (a (C, H, W) plane stack): the array is already planar.
int64_t planar_ld(const Strided& v, int64_t rows) {
  int64_t expect = 1;
  for (int i = 2; i >= 0; --i) {
    if (v.sample_shape[size_t(i)] == 1) continue;
    if (v.sample_strides[size_t(i)] != expect) return -1;
    expect *= v.sample_shape[size_t(i)];
  }
  if (v.feature_ndim != 1 && v.feature_shape[1] != 1) return -1;
  if (rows > 1 && v.feature_strides[0] < v.samples()) return -1;
  return rows > 1 ? v.feature_strides[0] : std::max<int64_t>(v.samples(), 1);
}

// ---------------------------------------------------------------------------------
// General graphs: cuda::compile_general's steps with their tables uploaded.
struct DevStep {  // device copies of plan.steps[i]'s tables
  DeviceMemory w, bias, rows, scale, shift;
  std::vector<DeviceMemory> maps;
};

struct DevGeneral {
  cuda::GeneralPlan plan;
  std::vector<DevStep> steps;
};

DevGeneral upload_general(const Graph& g) {
  DevGeneral d;
  d.plan = cuda::compile_general(g);
  for (const cuda::Step& st : d.plan.steps) {
    DevStep s;
    if (st.op == OpKind::conv) {
      s.w = upload(st.w);
      s.bias = upload(st.bias);
      if (!st.rows.empty()) s.rows = upload(st.rows);
    } else if (st.op == OpKind::affine) {
      s.scale = upload(st.scale);
      s.shift = upload(st.shift);
    }
    for (const auto& m : st.maps) s.maps.push_back(upload(m));
    d.steps.push_back(std::move(s));
  }
  return d;
}

void run_general(const DevGeneral& d, float* arena, int64_t ld, int64_t n, cuda::StreamHandle s) {
  auto slot = [&](int k) { return arena + d.plan.slot_row[size_t(k)] * ld; };
  for (size_t i = 0; i < d.steps.size(); ++i) {
    const DevStep& ds = d.steps[i];
    const cuda::Step& st = d.plan.steps[i];
    float* out = slot(st.out);
    const int64_t rows = st.out_shape.size();
    const DevAct act = cuda::dev_act(st.act);
    switch (st.op) {
      case OpKind::conv:
        cuda::launch_conv(static_cast<const float*>(ds.w.get()), static_cast<const float*>(ds.bias.get()),
                          st.rows.empty() ? nullptr : static_cast<const int32_t*>(ds.rows.get()), st.m, st.kdim,
                          int(st.out_shape.l), slot(st.in[0]), out, ld, n, act, s);
        break;
      case OpKind::act:
        cuda::launch_act(slot(st.in[0]), out, rows, ld, n, act, s);
        break;
      case OpKind::maxpool:
      case OpKind::avgpool:
        cuda::launch_pool(st.op == OpKind::maxpool, slot(st.in[0]), out, int(st.out_shape.c), int(st.in_shape[0].l),
                          int(st.out_shape.l), st.kernel, st.stride, st.pad, st.count_include_pad, ld, n, s);
        break;
      case OpKind::affine:
        cuda::launch_affine(slot(st.in[0]), out, static_cast<const float*>(ds.scale.get()),
                            static_cast<const float*>(ds.shift.get()), int(st.out_shape.c), rows, ld, n, s);
        break;
      case OpKind::add:
        // The kernels' pointers are __restrict__: an output that reuses an operand's slot
        // accumulates the other operand into it (a + b == b + a exactly).
        if (out == slot(st.in[0]) || out == slot(st.in[1]))
          cuda::launch_accumulate(out, out == slot(st.in[0]) ? slot(st.in[1]) : slot(st.in[0]), rows, ld, n, s);
        else
          cuda::launch_add(slot(st.in[0]), slot(st.in[1]), out, rows, ld, n, s);
        for (size_t k = 2; k < st.in.size(); ++k) cuda::launch_accumulate(out, slot(st.in[k]), rows, ld, n, s);
        break;
      case OpKind::flatten:
      case OpKind::concat:
        for (size_t k = 0; k < st.in.size(); ++k)
          cuda::launch_copy_rows(slot(st.in[k]), out, static_cast<const int32_t*>(ds.maps[k].get()),
                                 st.in_shape[k].size(), ld, n, s);
        break;
    }
  }
}

// ---------------------------------------------------------------------------------
// Per-pixel chains: cuda::compile_fused's packed weights uploaded, tile fitted to the device.
struct DevFused {
  bool ok = false;
  DeviceMemory weights, biases;
  cuda::FusedArgs args;  // pointers into weights/biases; in/out/npix set per launch
  int tile = 0, grid = 0;
  int64_t smem = 0;
  cuda::FusedKernel kernel = cuda::FusedKernel::mma;
};

DevFused upload_fused(const Graph& g, Precision p, const cuda::DeviceProps& dev) {
  DevFused f;
  const cuda::FusedPlan host = cuda::compile_fused(g, p);
  if (!host.ok) return f;
  // FASTINV_CUDA_KERNEL=ldmatrix / pipeline opts into a variant (tf32/bf16; docs/cuda.md)
  if (const char* k = std::getenv("FASTINV_CUDA_KERNEL"); k != nullptr && *k != '\0')
    f.kernel = cuda::fused_kernel_from_name(k);
  if (p == Precision::fp32) f.kernel = cuda::FusedKernel::mma;  // fp32 is SIMT in every variant
  f.tile = cuda::fused_pick_tile(p, host.rows, dev.shared_per_block_optin, f.kernel);
  if (f.tile == 0) return f;  // does not fit this device's shared memory: run op by op
  f.smem = cuda::fused_smem_bytes(p, f.tile, host.rows, f.kernel);
  f.grid = cuda::fused_prepare(p, f.tile, f.smem, dev.multiprocessors, f.kernel);
  // FASTINV_CUDA_FUSED_GRID=<blocks> caps the persistent grid, so a small frame still loops
  // over several tiles per block (the sanitizer runs of bench/gpu_check.sh)
  if (const int64_t cap = env_positive("FASTINV_CUDA_FUSED_GRID")) f.grid = int(std::min<int64_t>(f.grid, cap));
  f.weights = upload(host.words);
  f.biases = upload(host.biases);
  f.args =
      cuda::fused_args(host, static_cast<const uint32_t*>(f.weights.get()), static_cast<const float*>(f.biases.get()));
  f.ok = true;
  return f;
}

// ---------------------------------------------------------------------------------
struct Lane {
  cuda::Stream stream;
  DeviceMemory arena;
  cuda::PinnedMemory in_host, out_host;
  int64_t pending_first = -1, pending_n = 0;
};

template <typename T>
void gather_host(const T* data, const Strided& v, const Shape& shape, int64_t first, int64_t n, float* dst,
                 int threads) {
  if constexpr (std::is_same<T, float>::value) {
    if (const int64_t ld = planar_ld(v, shape.size()); ld > 0) {  // (C, H, W)-like planes: a copy per row
#ifdef FASTINV_HAVE_OPENMP
#pragma omp parallel for num_threads(threads) schedule(static) if (threads > 1 && n * shape.size() >= 65536)
#endif
      for (int64_t r = 0; r < shape.size(); ++r)
        std::memcpy(dst + r * n, data + r * ld + first, size_t(n) * sizeof(float));
      return;
    }
  }
  const int64_t fs0 = v.feature_strides[0], fs1 = v.feature_ndim == 2 ? v.feature_strides[1] : 0;
  const int64_t nblocks = (n + 63) / 64;
#ifdef FASTINV_HAVE_OPENMP
#pragma omp parallel for num_threads(threads) schedule(static) if (threads > 1 && n >= 4096)
#endif
  for (int64_t b = 0; b < nblocks; ++b) {
    const int64_t j1 = std::min<int64_t>(n, (b + 1) * 64);
    for (int64_t j = b * 64; j < j1; ++j) {
      const T* base = data + sample_offset(v, first + j);
      for (int64_t l = 0; l < shape.l; ++l)
        for (int64_t c = 0; c < shape.c; ++c) dst[(l * shape.c + c) * n + j] = float(base[c * fs0 + l * fs1]);
    }
  }
  (void)threads;
}

void scatter_host(const float* src, const Shape& shape, int64_t first, int64_t n, float* data, const Strided& v,
                  int threads) {
  if (const int64_t ld = planar_ld(v, shape.size()); ld > 0) {
#ifdef FASTINV_HAVE_OPENMP
#pragma omp parallel for num_threads(threads) schedule(static) if (threads > 1 && n * shape.size() >= 65536)
#endif
    for (int64_t r = 0; r < shape.size(); ++r)
      std::memcpy(data + r * ld + first, src + r * n, size_t(n) * sizeof(float));
    return;
  }
  const int64_t fs0 = v.feature_strides[0], fs1 = v.feature_ndim == 2 ? v.feature_strides[1] : 0;
  const int64_t nblocks = (n + 63) / 64;
#ifdef FASTINV_HAVE_OPENMP
#pragma omp parallel for num_threads(threads) schedule(static) if (threads > 1 && n >= 4096)
#endif
  for (int64_t b = 0; b < nblocks; ++b) {
    const int64_t j1 = std::min<int64_t>(n, (b + 1) * 64);
    for (int64_t j = b * 64; j < j1; ++j) {
      float* base = data + sample_offset(v, first + j);
      for (int64_t l = 0; l < shape.l; ++l)
        for (int64_t c = 0; c < shape.c; ++c) base[c * fs0 + l * fs1] = src[(l * shape.c + c) * n + j];
    }
  }
  (void)threads;
}

class CudaBackend final : public Backend {
 public:
  CudaBackend(std::shared_ptr<const Graph> graph, Precision precision, int ordinal)
      : graph_(std::move(graph)), precision_(precision), dev_(cuda::open_device(ordinal)) {
    in_shape_ = graph_->input;
    out_shape_ = graph_->shape_of(graph_->output);
    fused_ = upload_fused(*graph_, precision_, dev_);
    if (!fused_.ok) general_ = upload_general(*graph_);
    const int64_t rows = fused_.ok ? in_shape_.size() + out_shape_.size() : general_.plan.arena_rows;
    chunk_ = std::clamp<int64_t>(kLaneBudget / (4 * std::max<int64_t>(rows, 1)) / 256 * 256, 256, kMaxChunk);
    // FASTINV_CUDA_CHUNK=<samples> caps the chunk (tests force many chunks; tuning)
    if (const int64_t cap = env_positive("FASTINV_CUDA_CHUNK")) chunk_ = std::min<int64_t>(chunk_, cap);
    // The weights went up with synchronous copies from pageable memory, which do not order
    // against the non-blocking lanes or a caller's stream: wait for them once here.
    cuda::synchronize_device();
  }

  std::string device() const override { return "cuda:" + std::to_string(dev_.ordinal); }

  std::string isa() const override {
    std::string s = "sm_" + std::to_string(dev_.major) + std::to_string(dev_.minor) + " (" + dev_.name + "), ";
    if (fused_.ok)
      return s + "fused per-pixel kernel" +
             (fused_.kernel == cuda::FusedKernel::ldmatrix   ? " (ldmatrix)"
              : fused_.kernel == cuda::FusedKernel::pipeline ? " (pipeline)"
                                                             : "") +
             ", " + cuda::precision_name(precision_) + ", " + std::to_string(fused_.tile) + "-pixel tiles";
    return s + "per-op kernels, fp32";
  }

  void run(const InputView& input, const OutputView& output, int threads) const override {
    std::lock_guard<std::mutex> lock(mutex_);
    cuda::set_device(dev_.ordinal);
    if (threads <= 0) threads = default_threads();
    const int64_t in_rows = in_shape_.size(), out_rows = out_shape_.size();
    if (lanes_.empty()) {  // all lanes or none (an allocation may fail half way)
      std::vector<std::unique_ptr<Lane>> lanes;
      for (int i = 0; i < kLanes; ++i) {
        auto lane = std::make_unique<Lane>();
        lane->arena = DeviceMemory(size_t(arena_rows() * chunk_ * 4));
        lane->in_host = cuda::PinnedMemory(size_t(in_rows * chunk_ * 4));
        lane->out_host = cuda::PinnedMemory(size_t(out_rows * chunk_ * 4));
        lanes.push_back(std::move(lane));
      }
      lanes_ = std::move(lanes);
    }
    const int64_t n = input.layout.samples();
    auto finish = [&](Lane& lane) {
      if (lane.pending_first < 0) return;
      lane.stream.synchronize();
      scatter_host(static_cast<const float*>(lane.out_host.get()), out_shape_, lane.pending_first, lane.pending_n,
                   output.data, output.layout, threads);
      lane.pending_first = -1;
    };
    try {
      int64_t c = 0;
      for (int64_t first = 0; first < n; first += chunk_, ++c) {
        Lane& lane = *lanes_[size_t(c % kLanes)];
        finish(lane);
        const int64_t cnt = std::min<int64_t>(chunk_, n - first);
        float* stage = static_cast<float*>(lane.in_host.get());
        if (input.dtype == DType::f32)
          gather_host(static_cast<const float*>(input.data), input.layout, in_shape_, first, cnt, stage, threads);
        else
          gather_host(static_cast<const double*>(input.data), input.layout, in_shape_, first, cnt, stage, threads);
        float* arena = static_cast<float*>(lane.arena.get());
        const cuda::StreamHandle s = lane.stream.get();
        float* d_in = fused_.ok ? arena : arena + general_.plan.slot_row[size_t(general_.plan.input_slot)] * cnt;
        float* d_out =
            fused_.ok ? arena + in_rows * cnt : arena + general_.plan.slot_row[size_t(general_.plan.output_slot)] * cnt;
        cuda::copy_to_device_async(d_in, stage, size_t(in_rows * cnt * 4), s);
        compute(arena, d_in, cnt, d_out, cnt, cnt, cnt, s);
        cuda::copy_to_host_async(lane.out_host.get(), d_out, size_t(out_rows * cnt * 4), s);
        lane.pending_first = first;
        lane.pending_n = cnt;
      }
      for (int64_t k = 0; k < kLanes; ++k) finish(*lanes_[size_t((c + k) % kLanes)]);
    } catch (...) {
      for (auto& lane : lanes_) {  // leave no copy in flight into buffers we no longer track
        try {
          lane->stream.synchronize();
        } catch (...) {
        }
        lane->pending_first = -1;
      }
      throw;
    }
  }

  void run_device(const InputView& input, const OutputView& output, std::uintptr_t stream) const override {
    cuda::set_device(dev_.ordinal);
    cuda::check_device_pointer(input.data, "input");
    cuda::check_device_pointer(output.data, "output");
    const cuda::StreamHandle s = reinterpret_cast<cuda::StreamHandle>(stream);
    const int64_t n = input.layout.samples();
    const int64_t in_rows = in_shape_.size(), out_rows = out_shape_.size();
    const int64_t in_ld = input.dtype == DType::f32 ? planar_ld(input.layout, in_rows) : -1;
    const int64_t out_ld = planar_ld(output.layout, out_rows);
    if (fused_.ok && in_ld > 0 && out_ld > 0) {  // planar in and out: one launch on the caller's planes, no scratch
      compute(nullptr, static_cast<const float*>(input.data), in_ld, output.data, out_ld, n, n, s);
      return;
    }
    const int64_t cap = std::min<int64_t>(chunk_, n);
    cuda::StreamMemory scratch(size_t(arena_rows() * cap * 4), s);
    float* arena = static_cast<float*>(scratch.get());
    for (int64_t first = 0; first < n; first += cap) {
      const int64_t cnt = std::min<int64_t>(cap, n - first);
      float* d_in = fused_.ok ? arena : arena + general_.plan.slot_row[size_t(general_.plan.input_slot)] * cnt;
      float* d_out =
          fused_.ok ? arena + in_rows * cnt : arena + general_.plan.slot_row[size_t(general_.plan.output_slot)] * cnt;
      int64_t ld_in = cnt, ld_out = cnt;
      if (fused_.ok && in_ld > 0) {  // read the caller's planes directly
        d_in = const_cast<float*>(static_cast<const float*>(input.data)) + first;
        ld_in = in_ld;
      } else {
        cuda::launch_gather(input.data, input.dtype == DType::f64, desc_of(input.layout), in_shape_.c, in_shape_.l,
                            first, cnt, d_in, cnt, s);
      }
      const bool direct_out = fused_.ok && out_ld > 0;
      if (direct_out) {
        d_out = output.data + first;
        ld_out = out_ld;
      }
      compute(arena, d_in, ld_in, d_out, ld_out, cnt, cnt, s);
      if (!direct_out)
        cuda::launch_scatter(d_out, cnt, out_shape_.c, out_shape_.l, first, cnt, output.data, desc_of(output.layout),
                             s);
    }
  }

 private:
  int64_t arena_rows() const { return fused_.ok ? in_shape_.size() + out_shape_.size() : general_.plan.arena_rows; }

  // The network on n samples: fused from (d_in, ld_in) to (d_out, ld_out); the general
  // plan on the arena slots with row stride ld (its input/output are slots already).
  void compute(float* arena, const float* d_in, int64_t ld_in, float* d_out, int64_t ld_out, int64_t ld, int64_t n,
               cuda::StreamHandle s) const {
    if (fused_.ok) {
      cuda::FusedArgs a = fused_.args;
      a.in = d_in;
      a.in_ld = ld_in;
      a.out = d_out;
      a.out_ld = ld_out;
      a.npix = n;
      cuda::launch_fused(a, precision_, fused_.tile, fused_.grid, fused_.smem, fused_.kernel, s);
    } else {
      run_general(general_, arena, ld, n, s);
    }
  }

  std::shared_ptr<const Graph> graph_;
  Precision precision_;
  cuda::DeviceProps dev_;
  Shape in_shape_, out_shape_;
  DevFused fused_;
  DevGeneral general_;
  int64_t chunk_ = 0;
  mutable std::mutex mutex_;
  mutable std::vector<std::unique_ptr<Lane>> lanes_;
};

}  // namespace

std::unique_ptr<Backend> make_cuda_backend(std::shared_ptr<const Graph> graph, cuda::Precision precision, int ordinal) {
  return std::make_unique<CudaBackend>(std::move(graph), precision, ordinal);
}

}  // namespace fastinv
