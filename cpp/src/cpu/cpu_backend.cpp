// CPU backend: samples are cut into tiles of kTileWidth; each OpenMP thread gathers a
// tile from the caller's strided array into its own arena, runs the whole network on
// it, and scatters the result (or, for a network ending in large dense layers, runs
// them for a group of tiles together: cpu::Tail). No full-size intermediate ever
// exists, and a tile's result does not depend on which thread ran it (bitwise
// identical for any count).
#include <algorithm>
#include <cstdlib>
#include <memory>
#include <mutex>
#include <utility>
#include <vector>

#include "backend.hpp"
#include "cpu/cpu_plan.hpp"
#include "fastinv/error.hpp"
#include "fastinv/runtime.hpp"
#ifdef FASTINV_HAVE_OPENMP
#include <omp.h>
#endif

namespace fastinv {
namespace {

using cpu::kTileWidth;

struct AlignedFree {
  void operator()(float* p) const { std::free(p); }
};
using Arena = std::unique_ptr<float[], AlignedFree>;

Arena make_arena(int64_t floats) {
  const size_t bytes = (size_t(floats) * sizeof(float) + 63) / 64 * 64;
  float* p = static_cast<float*>(std::aligned_alloc(64, bytes > 0 ? bytes : 64));
  if (!p)
    throw OutOfMemory("out of memory allocating a " + std::to_string(bytes) +
                      "-byte tile arena; use fewer threads or free memory");
  std::fill(p, p + floats, 0.f);
  return Arena(p);
}

// Element offset of sample s in a strided batch.
inline int64_t sample_offset(const Strided& v, int64_t s) {
  const int64_t i2 = s % v.sample_shape[2];
  const int64_t rest = s / v.sample_shape[2];
  const int64_t i1 = rest % v.sample_shape[1];
  const int64_t i0 = rest / v.sample_shape[1];
  return i0 * v.sample_strides[0] + i1 * v.sample_strides[1] + i2 * v.sample_strides[2];
}

// The innermost sample dimension that is not of size 1: consecutive samples step along it.
inline int inner_dim(const Strided& v) {
  int d = 2;
  while (d > 0 && v.sample_shape[size_t(d)] == 1) --d;
  return d;
}

// Offset of sample first + j, for j < lanes: when the tile's samples lie in one run of the
// innermost dimension they are one stride apart (one index decomposition per tile).
struct TileOffsets {
  TileOffsets(const Strided& v, int64_t first, int lanes) : v_(v), first_(first) {
    const int d = inner_dim(v);
    const int64_t n = v.sample_shape[size_t(d)];
    one_run_ = first % n + lanes <= n;
    step_ = v.sample_strides[size_t(d)];
    off0_ = sample_offset(v, first);
  }
  int64_t operator()(int j) const { return one_run_ ? off0_ + j * step_ : sample_offset(v_, first_ + j); }

 private:
  const Strided& v_;
  int64_t first_, off0_, step_;
  bool one_run_;
};

template <typename T>
void gather(const T* data, const Strided& v, const Shape& shape, int64_t first, int lanes, float* tile) {
  const int64_t fs0 = v.feature_strides[0], fs1 = v.feature_ndim == 2 ? v.feature_strides[1] : 0;
  const TileOffsets offset(v, first, lanes);
  for (int j = 0; j < lanes; ++j) {
    const T* base = data + offset(j);
    for (int64_t c = 0; c < shape.c; ++c)
      for (int64_t l = 0; l < shape.l; ++l) tile[(l * shape.c + c) * kTileWidth + j] = float(base[c * fs0 + l * fs1]);
  }
  for (int j = lanes; j < kTileWidth; ++j)
    for (int64_t r = 0; r < shape.size(); ++r) tile[r * kTileWidth + j] = 0.f;
}

void scatter(const float* tile, const Shape& shape, int64_t first, int lanes, float* data, const Strided& v) {
  const int64_t fs0 = v.feature_strides[0], fs1 = v.feature_ndim == 2 ? v.feature_strides[1] : 0;
  const TileOffsets offset(v, first, lanes);
  for (int j = 0; j < lanes; ++j) {
    float* base = data + offset(j);
    for (int64_t c = 0; c < shape.c; ++c)
      for (int64_t l = 0; l < shape.l; ++l) base[c * fs0 + l * fs1] = tile[(l * shape.c + c) * kTileWidth + j];
  }
}

class CpuBackend final : public Backend {
 public:
  CpuBackend(std::shared_ptr<const Graph> graph, int bf16_terms) : graph_(std::move(graph)), bf16_(bf16_terms) {
    plan_for(active_isa(), {});
  }

  std::string device() const override { return "cpu"; }
  std::string isa() const override { return bf16_ ? plan_for(active_isa(), {})->bf16->name : isa_name(active_isa()); }
  int64_t flops_saved_per_sample() const override { return plan_for(active_isa(), {})->flops_saved; }

  void run(const InputView& input, const OutputView& output, int threads) const override {
    run_tiles(input, &output, nullptr, threads);
  }

  void run_fused(const InputView& input, const TileHooks& hooks, int threads) const override {
    run_tiles(input, nullptr, &hooks, threads);
  }

 private:
  // One pass over the tiles: gather, [hooks->before], network, then scatter into `output`
  // or hand the output tile to hooks->after. With a grouped tail (cpu::Tail) the unit of
  // work is a group of consecutive tiles; either way each tile's arithmetic is the same.
  void run_tiles(const InputView& input, const OutputView* output, const TileHooks* hooks, int threads) const {
    std::shared_ptr<const cpu::Plan> plan = plan_for(active_isa(), hooks ? hooks->kept_values() : std::vector<int>());
    const cpu::Tail& tail = plan->tail;
    const bool grouped = tail.begin < plan->steps.size();
    // AMX bf16: two tiles at a time, each weight tile loaded once for both (execute_steps_pair)
    const bool paired = !grouped && plan->bf16 && plan->bf16->tiles;
    const int per_unit = grouped ? cpu::kTailGroup : paired ? 2 : 1;
    const int64_t n = input.layout.samples();
    const int64_t tiles = (n + kTileWidth - 1) / kTileWidth;
    const int64_t units = (tiles + per_unit - 1) / per_unit;
    if (threads <= 0) threads = default_threads();
    if (int64_t(threads) > units) threads = int(units > 0 ? units : 1);
    const int64_t arena2 = (plan->arena_floats + 15) / 16 * 16;  // the second tile's arena, 64-byte aligned
    const int64_t arena_floats = paired ? 2 * arena2 : plan->arena_floats + (grouped ? per_unit * tail.floats : 0);

    auto start_tile = [&](int64_t t, float* arena) {
      const int64_t first = t * kTileWidth;
      const int lanes = int(std::min<int64_t>(kTileWidth, n - first));
      float* in_tile = arena + plan->slot_offset[size_t(plan->input_slot)];
      if (input.dtype == DType::f32)
        gather(static_cast<const float*>(input.data), input.layout, plan->input_shape, first, lanes, in_tile);
      else
        gather(static_cast<const double*>(input.data), input.layout, plan->input_shape, first, lanes, in_tile);
      if (hooks) hooks->before(in_tile, first, lanes);
    };
    // base, offset: the tile's arena (or tail arena) and its slots' offsets into it
    auto finish_tile = [&](int64_t t, const float* base, const int64_t* offset) {
      const int64_t first = t * kTileWidth;
      const int lanes = int(std::min<int64_t>(kTileWidth, n - first));
      const float* out_tile = base + offset[plan->output_slot];
      if (hooks) {
        const float* kept[cpu::kMaxKept];
        for (size_t i = 0; i < plan->kept_slot.size(); ++i) kept[i] = base + offset[plan->kept_slot[i]];
        hooks->after(out_tile, kept, first, lanes);
      } else {
        scatter(out_tile, plan->output_shape, first, lanes, output->data, output->layout);
      }
    };
    const int64_t* slots = plan->slot_offset.data();
    auto work = [&](int64_t unit, float* arena) {
      if (paired) {
        const int64_t t0 = 2 * unit;
        start_tile(t0, arena);
        if (t0 + 1 < tiles) {
          start_tile(t0 + 1, arena + arena2);
          cpu::execute_steps_pair(*plan, arena, arena + arena2);
        } else {
          cpu::execute_steps(*plan, arena, 0, plan->steps.size());
        }
        finish_tile(t0, arena, slots);
        if (t0 + 1 < tiles) finish_tile(t0 + 1, arena + arena2, slots);
        return;
      }
      if (!grouped) {
        start_tile(unit, arena);
        cpu::execute_steps(*plan, arena, 0, plan->steps.size());
        finish_tile(unit, arena, slots);
        return;
      }
      float* group[cpu::kTailGroup];
      const int64_t t0 = unit * per_unit, count = std::min<int64_t>(per_unit, tiles - t0);
      for (int64_t i = 0; i < count; ++i) {
        start_tile(t0 + i, arena);
        cpu::execute_steps(*plan, arena, 0, tail.begin);
        group[i] = arena + plan->arena_floats + i * tail.floats;
        for (const cpu::Tail::CopyIn& c : tail.copy_in)
          std::copy_n(arena + plan->slot_offset[size_t(c.slot)], c.floats, group[i] + tail.slot_offset[size_t(c.slot)]);
      }
      cpu::execute_tail(*plan, group, int(count));
      for (int64_t i = 0; i < count; ++i) finish_tile(t0 + i, group[i], tail.slot_offset.data());
    };
#ifdef FASTINV_HAVE_OPENMP
    if (threads > 1) {
      // Arenas are allocated before the parallel region so no exception can escape it.
      std::vector<Arena> arenas;
      for (int i = 0; i < threads; ++i) arenas.push_back(make_arena(arena_floats));
      const int chunk = grouped ? 1 : paired ? 4 : 8;
#pragma omp parallel num_threads(threads)
      {
        float* arena = arenas[size_t(omp_get_thread_num())].get();
#pragma omp for schedule(dynamic, chunk)
        for (int64_t u = 0; u < units; ++u) work(u, arena);
      }
      return;
    }
#endif
    Arena arena = make_arena(arena_floats);
    for (int64_t u = 0; u < units; ++u) work(u, arena.get());
  }

  // Weights are packed for one ISA's microkernel; a change of ISA repacks once. One plan per
  // set of kept values (the plain one: none), compiled at first use.
  std::shared_ptr<const cpu::Plan> plan_for(Isa isa, const std::vector<int>& keep) const {
    std::lock_guard<std::mutex> lock(mutex_);
    if (plans_.empty() || plan_isa_ != isa) {
      plans_.clear();
      plan_isa_ = isa;
    }
    for (const auto& [kept, plan] : plans_)
      if (kept == keep) return plan;
    plans_.emplace_back(keep, std::make_shared<const cpu::Plan>(cpu::compile_plan(*graph_, isa, bf16_, keep)));
    return plans_.back().second;
  }

  std::shared_ptr<const Graph> graph_;
  int bf16_;  // bf16_terms of compile_plan
  mutable std::mutex mutex_;
  mutable std::vector<std::pair<std::vector<int>, std::shared_ptr<const cpu::Plan>>> plans_;
  mutable Isa plan_isa_ = Isa::generic;
};

}  // namespace

std::unique_ptr<Backend> make_cpu_backend(std::shared_ptr<const Graph> graph, int bf16_terms) {
  return std::make_unique<CpuBackend>(std::move(graph), bf16_terms);
}

}  // namespace fastinv
