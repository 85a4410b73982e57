// The validated layer graph of a model file (docs/model-format.md), independent of
// any backend. Backends compile it into their own plans.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "safetensors.hpp"

namespace fastinv {

// Per-sample shape: rank 1 is (c), rank 2 is (c, l).
struct Shape {
  int rank = 1;
  int64_t c = 0;
  int64_t l = 1;
  int64_t size() const { return c * l; }
  std::vector<int64_t> dims() const { return rank == 1 ? std::vector<int64_t>{c} : std::vector<int64_t>{c, l}; }
};

enum class ActKind { identity, relu, leaky_relu, elu, silu, gelu, gelu_tanh, tanh, sigmoid, softplus };

struct Activation {
  ActKind kind = ActKind::identity;
  float alpha = 0.f;       // leaky_relu slope, elu alpha
  float beta = 1.f;        // softplus
  float threshold = 20.f;  // softplus
};

const char* act_name(ActKind kind);
// The activation as PyTorch defines it (float32); every backend and emulator uses this formula.
float apply_activation(const Activation& act, float x);

enum class OpKind { conv, act, maxpool, avgpool, flatten, concat, add, affine };

struct Node {
  std::string name;
  OpKind op = OpKind::act;
  std::vector<int> inputs;  // value ids: -1 is the graph input, i >= 0 is nodes[i]
  Shape shape;              // output shape per sample

  // conv (a `linear` node is a conv with k = 1 on a rank-1 value)
  bool linear = false;
  int64_t cin = 0, cout = 0, kernel = 1, stride = 1, pad_left = 0, pad_right = 0, dilation = 1;
  std::vector<float> weight;  // [cout][cin][kernel]
  std::vector<float> bias;    // [cout], zeros when the file has none

  Activation act;  // act

  bool count_include_pad = true;  // avgpool; maxpool/avgpool use kernel, stride, pad_left

  std::vector<float> scale, shift;  // affine, [c]

  // Names and sizes of the file tensors this node uses: a block shared by several
  // nodes (MUISCA's multi-scale branches) counts its parameters once.
  std::vector<std::pair<std::string, int64_t>> tensors;
};

struct Graph {
  std::string input_name;
  std::string layout;  // "nchw", "nc" or "ncl"
  Shape input;
  std::vector<Node> nodes;
  int output = -1;

  const Shape& shape_of(int value) const { return value < 0 ? input : nodes[size_t(value)].shape; }
};

// A conv's weights in tap-major reduction order [cout][kernel][cin], so each tap of a
// window reads cin consecutive rows of a position-major (row l*C + c) activation; every
// backend's GEMM reduces in this order.
std::vector<float> tap_major_weights(const Node& conv);

// The im2col of a 1D conv for the tap-major order: for output position lo and reduction
// index t*cin + ci, the input row pos*cin + ci it reads, or -1 for a padding tap.
// [out length][kernel * cin].
std::vector<int32_t> conv_input_rows(const Node& conv, const Shape& in);

// Build and validate the graph stored in a model file. Throws InvalidArgument.
Graph parse_graph(const SafeTensors& file);

}  // namespace fastinv
