// The CUDA backend's plans in plain host data (compiled in every build): what the
// device kernels will be asked to do, before any upload. Keeping them host-side lets
// tests run a plan through a CPU emulation of the kernels' definitions (emulate.cpp)
// on any machine: the row tables, concat/flatten maps, buffer liveness, activation
// fusion, padding and the fragment-order weights are all checked against torch
// without a GPU. The kernels themselves still need a GPU to be verified.
#pragma once
#include <cstdint>
#include <vector>

#include "gpu_kernels.hpp"
#include "graph.hpp"
#include "host/pack.hpp"

namespace fastinv::cuda {

// ---- general graphs: one step per op on planar slots ([rows][ld], row l*C + c)
struct Step {
  OpKind op = OpKind::act;
  std::vector<int> in;  // slots
  std::vector<Shape> in_shape;
  int out = -1;
  Shape out_shape;
  // conv: out[lo*m + o] = act(bias[o] + sum_j w[o*kdim + j] * in[rows[lo*kdim + j]]), rows < 0 read 0;
  // rows empty: in[j] (a linear layer, lout = 1)
  int m = 0, kdim = 0;
  std::vector<float> w, bias;
  std::vector<int32_t> rows;
  Activation act;  // conv epilogue or act step
  int kernel = 1, stride = 1, pad = 0;
  bool count_include_pad = true;
  std::vector<float> scale, shift;         // affine
  std::vector<std::vector<int32_t>> maps;  // flatten / concat: destination row of each input row
};

struct GeneralPlan {
  std::vector<Step> steps;
  std::vector<int64_t> slot_row;  // first row of each slot in the arena
  int64_t arena_rows = 0;
  int input_slot = -1, output_slot = -1;
};

GeneralPlan compile_general(const Graph& g);

// ---- per-pixel chains for the fused kernel
struct FusedLayer {
  int m = 0, k = 0, mpad = 0, kpad = 0;
  size_t w_offset = 0;     // words into FusedPlan::words (256-byte aligned)
  size_t bias_offset = 0;  // floats into FusedPlan::biases ([mpad], zero padded)
  Activation act;
};

struct FusedPlan {
  bool ok = false;  // false: not a chain of 1x1/Linear layers (+ one activation each) of width <= 512
  std::vector<FusedLayer> layers;
  std::vector<uint32_t> words;
  std::vector<float> biases;
  int rows = 0;  // activation buffer rows: max(first kpad, every mpad)
};

FusedPlan compile_fused(const Graph& g, Precision p);

// The fused kernel's launch arguments for a plan whose packed words and biases live at
// `words` / `biases` (device copies for a launch, the plan's own vectors for the emulation);
// in, out and npix are left for the caller.
FusedArgs fused_args(const FusedPlan& plan, const uint32_t* words, const float* biases);
DevAct dev_act(const Activation& a);
Activation host_act(const DevAct& a);

}  // namespace fastinv::cuda
