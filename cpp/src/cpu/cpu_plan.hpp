// A graph compiled for the CPU: weights packed for one ISA's microkernel, conv +
// activation (+ max-pool) fused, and per-tile buffers assigned by liveness so the whole network
// runs on one tile of samples held in cache. Tiles are position-major (row l*C + c);
// flatten permutes to torch's channel-major order.
#pragma once
#include <cstdint>
#include <vector>

#include "cpu/kernels.hpp"
#include "cpu/kernels_bf16.hpp"
#include "cpu/winograd.hpp"
#include "graph.hpp"

namespace fastinv::cpu {

struct Step {
  OpKind op = OpKind::act;
  std::vector<int> in;  // buffer slots of the inputs
  std::vector<Shape> in_shape;
  int out = -1;  // buffer slot of the output
  Shape out_shape;

  // conv
  int64_t m = 0, k = 0;
  std::vector<float> a, bias;    // packed for the plan's ISA
  std::vector<int32_t> offsets;  // [out_shape.l][k] row offsets, empty when contiguous
  std::vector<int32_t> window;   // [out_shape.l]: first row (floats) of a contiguous window, -1 if not
  bool leaky = false;
  float slope = 0.f;
  Activation act;  // act step, or a conv's activation the microkernel cannot fuse
  // a max-pool fused after the conv (pool_stride 0: none): the conv writes the pooled
  // rows, positions outside every window are never computed
  int64_t pool_kernel = 0, pool_stride = 0, pool_pad = 0, pooled_l = 0;
  // Winograd F(2, r) when wino_n > 0: wino_a holds wino_n packed panels of
  // panel_floats each (G g per point); the direct fields above serve non-finite inputs
  int wino_n = 0;
  int64_t panel_floats = 0;
  std::vector<float> wino_a, wino_bt, wino_at, zero_bias;

  // pools (node's kernel / stride / pad_left / count_include_pad); pad: a Winograd conv's pad_left too
  int64_t kernel = 1, stride = 1, pad = 0;
  bool count_include_pad = true;

  std::vector<float> scale, shift;  // affine

  // conv with Plan::bf16: weight pairs and pair-row offsets (words, kernels_bf16.hpp) in
  // place of a / offsets / window
  int64_t kp = 0;
  std::vector<uint32_t> a16;
  std::vector<int32_t> offsets16, window16;
};

// Where one tile's slots are: its arena and the slots' offsets into it.
struct Slots {
  float* arena;
  const int64_t* offset;
  float* operator[](int slot) const { return arena + offset[size_t(slot)]; }
};

// Dense layers at the end of a network whose weights outgrow the cache (a 1D CNN's
// flatten -> Linear head, MUISCA's 1344 x 1344 layers) would stream their weights from
// memory once per 16-sample tile. Tiles then run in groups of kTailGroup: each runs the
// steps before the tail alone, then the group runs the tail together (execute_tail).
constexpr int kTailGroup = 8;
constexpr int64_t kTailChunk = 512;  // k per chunk: a 32 KB slice of a 16-row block
// Below ~one L2 the weights stay cached across tiles and grouping only adds work
// (measured: a 0.9 MB head ran 2-6 % slower grouped; MUISCA's 29 MB of dense weights
// 1.6x faster).
constexpr int64_t kTailWeightBytes = 1 << 20;

struct Tail {
  size_t begin = 0;                  // first step of the tail; steps.size(): none
  std::vector<int64_t> slot_offset;  // per slot: floats into a tile's tail arena, -1 if unused
  struct CopyIn {
    int slot;
    int64_t floats;
  };
  std::vector<CopyIn> copy_in;  // slots written before the tail that it may read
  int64_t floats = 0;           // one tile's tail arena
};

struct Plan {
  const Kernels* kernels = nullptr;
  Shape input_shape, output_shape;
  int input_slot = -1, output_slot = -1;
  std::vector<Step> steps;
  std::vector<int64_t> slot_offset;  // floats from the arena start
  int64_t scratch_offset = 0;        // Winograd's transformed rows, after the slots
  int64_t arena_floats = 0;
  int64_t flops_saved = 0;  // per sample, by Winograd and pool-skipped positions (bf16x2: < 0)
  Tail tail;
  // precision="bf16": every conv runs the bf16 GEMM on its input rounded into pair rows
  // at pairs_offset (floats from the arena start); no Winograd, no grouped tail.
  // bf16_terms 2 (precision="bf16x2"): each weight as two bf16 terms (kernels_bf16.hpp)
  const Bf16Kernels* bf16 = nullptr;
  int bf16_terms = 0;
  int64_t pairs_offset = 0;
  // Slots of the values compile_plan was asked to keep (TileHooks::kept_values), in that order:
  // never reused, so they hold their value when the tile is done.
  std::vector<int> kept_slot;
};

constexpr int kMaxKept = 8;

// bf16_terms 0: float32; 1 (precision="bf16") or 2 ("bf16x2": two bf16 terms per weight):
// compile for the AVX512-BF16 kernels (isa must be avx512; throws fastinv::Error where the
// CPU or build lacks them). keep: graph values (node indices) whose buffers stay live to the
// end (Plan::kept_slot); the arithmetic is the same as without.
Plan compile_plan(const Graph& graph, Isa isa, int bf16_terms = 0, const std::vector<int>& keep = {});

// Run steps [begin, end) on the tile whose input is already in the input slot.
void execute_steps(const Plan& plan, float* arena, size_t begin, size_t end);

// Run every step on two tiles, each in its own arena with its input in place: a bf16
// plan's convs load each weight tile once for both (GemmBf16Args::in2); each tile's
// results are those of execute_steps.
void execute_steps_pair(const Plan& plan, float* arena, float* arena2);

// Run the tail on `count` tiles, each with its own tail arena (Tail::slot_offset) into
// which the copy_in slots have been copied.
void execute_tail(const Plan& plan, float* const* tiles, int count);

}  // namespace fastinv::cpu
