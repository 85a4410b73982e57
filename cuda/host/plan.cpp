#include "host/plan.hpp"

#include <algorithm>

#include "fastinv/error.hpp"
#include "slot_allocator.hpp"

namespace fastinv::cuda {

GeneralPlan compile_general(const Graph& g) {
  const size_t n = g.nodes.size();
  std::vector<int> consumers(n, 0);
  for (const Node& node : g.nodes)
    for (int in : node.inputs)
      if (in >= 0) ++consumers[size_t(in)];
  // As the CPU plan: a flatten that keeps the row order is a view; an activation that
  // is its convolution's only consumer runs in the convolution's epilogue.
  std::vector<int> root(n);
  std::vector<bool> fused(n, false);
  for (size_t i = 0; i < n; ++i) {
    const Node& node = g.nodes[i];
    root[i] = int(i);
    const int src = node.inputs[0];
    const Shape& in = g.shape_of(src);
    if (node.op == OpKind::flatten && (in.l == 1 || in.c == 1)) {
      root[i] = src < 0 ? -1 : root[size_t(src)];
    } else if (node.op == OpKind::act && src >= 0 && g.nodes[size_t(src)].op == OpKind::conv &&
               consumers[size_t(src)] == 1 && src != g.output && !fused[size_t(src)]) {
      fused[i] = true;
      root[i] = root[size_t(src)];
    }
  }
  auto root_of = [&](int v) { return v < 0 ? -1 : root[size_t(v)]; };
  std::vector<int> last_use(n + 1, -1);
  for (size_t i = 0; i < n; ++i)
    for (int in : g.nodes[i].inputs) last_use[size_t(root_of(in) + 1)] = int(i);
  last_use[size_t(root_of(g.output) + 1)] = int(n);

  // Greedy slot reuse by liveness: the arena (per stream) stays a few values deep.
  GeneralPlan plan;
  SlotAllocator slots;
  std::vector<int> slot_of_root(n + 1, -1);
  auto allocate = [&](int r, int64_t rows) { slot_of_root[size_t(r + 1)] = slots.allocate(rows); };
  allocate(-1, g.input.size());
  plan.input_slot = slot_of_root[0];
  std::vector<size_t> step_of_node(n, 0);
  for (size_t i = 0; i < n; ++i) {
    const Node& node = g.nodes[i];
    if (root[i] == int(i)) allocate(int(i), node.shape.size());
    const int out_slot = slot_of_root[size_t(root[i] + 1)];
    if (node.op == OpKind::flatten && root[i] != int(i)) {
      // a view
    } else if (fused[i]) {
      plan.steps[step_of_node[size_t(node.inputs[0])]].act = node.act;
    } else {
      Step s;
      s.op = node.op;
      for (int in : node.inputs) {
        s.in.push_back(slot_of_root[size_t(root_of(in) + 1)]);
        s.in_shape.push_back(g.shape_of(in));
      }
      s.out = out_slot;
      s.out_shape = node.shape;
      if (node.op == OpKind::conv) {
        s.m = int(node.cout);
        s.kdim = int(node.cin * node.kernel);
        s.w = tap_major_weights(node);
        s.bias = node.bias;
        if (!node.linear) s.rows = conv_input_rows(node, s.in_shape[0]);
      } else if (node.op == OpKind::maxpool || node.op == OpKind::avgpool) {
        s.kernel = int(node.kernel);
        s.stride = int(node.stride);
        s.pad = int(node.pad_left);
        s.count_include_pad = node.count_include_pad;
      } else if (node.op == OpKind::act) {
        s.act = node.act;
      } else if (node.op == OpKind::affine) {
        s.scale = node.scale;
        s.shift = node.shift;
      } else if (node.op == OpKind::flatten) {  // rows (l, c) -> torch's channel-major c * L + l
        const int64_t nc = s.in_shape[0].c, nl = s.in_shape[0].l;
        std::vector<int32_t> map(size_t(nc * nl));
        for (int64_t l = 0; l < nl; ++l)
          for (int64_t c = 0; c < nc; ++c) map[size_t(l * nc + c)] = int32_t(c * nl + l);
        s.maps.push_back(std::move(map));
      } else if (node.op == OpKind::concat) {  // per position, the inputs' channel blocks in turn
        const int64_t nl = s.out_shape.l, ctot = s.out_shape.c;
        int64_t c0 = 0;
        for (const Shape& in : s.in_shape) {
          std::vector<int32_t> map(size_t(in.size()));
          for (int64_t l = 0; l < nl; ++l)
            for (int64_t c = 0; c < in.c; ++c) map[size_t(l * in.c + c)] = int32_t(l * ctot + c0 + c);
          s.maps.push_back(std::move(map));
          c0 += in.c;
        }
      }
      step_of_node[i] = plan.steps.size();
      plan.steps.push_back(std::move(s));
    }
    for (int in : node.inputs) {
      const int r = root_of(in);
      if (last_use[size_t(r + 1)] == int(i)) slots.release(slot_of_root[size_t(r + 1)]);
    }
  }
  plan.output_slot = slot_of_root[size_t(root_of(g.output) + 1)];
  for (int64_t rows : slots.sizes()) {
    plan.slot_row.push_back(plan.arena_rows);
    plan.arena_rows += rows;
  }
  return plan;
}

FusedPlan compile_fused(const Graph& g, Precision p) {
  FusedPlan f;
  if (g.input.l != 1 || g.input.rank != 1) return f;
  std::vector<const Node*> convs;
  std::vector<Activation> acts;
  int prev = -1;
  bool open = false;  // the last conv has no activation yet
  for (size_t i = 0; i < g.nodes.size(); ++i) {
    const Node& node = g.nodes[i];
    if (node.inputs.size() != 1 || node.inputs[0] != prev) return f;  // not a chain
    if (node.op == OpKind::conv) {
      if (node.kernel != 1 || node.shape.l != 1 || node.cin > kMaxFusedWidth || node.cout > kMaxFusedWidth) return f;
      convs.push_back(&node);
      acts.emplace_back();
      open = true;
    } else if (node.op == OpKind::act) {
      if (!open) return f;  // one activation per layer, in its epilogue
      acts.back() = node.act;
      open = false;
    } else if (node.op == OpKind::flatten && node.shape.l == 1 && g.shape_of(prev).l == 1) {
      // a no-op on rank-1 values
    } else {
      return f;
    }
    prev = int(i);
  }
  if (convs.empty() || int(convs.size()) > kMaxFusedLayers || prev != g.output) return f;
  for (size_t i = 0; i < convs.size(); ++i) {
    const Node& n = *convs[i];
    FusedLayer L;
    L.m = int(n.cout);
    L.k = int(n.cin);
    L.mpad = int(round_up(n.cout, kChunkRows));
    L.kpad = int(round_up(n.cin, kChunkDepth));
    L.act = acts[i];
    L.w_offset = f.words.size();
    const std::vector<uint32_t> packed = pack_fused_weights(n.weight.data(), n.cout, n.cin, p);
    f.words.insert(f.words.end(), packed.begin(), packed.end());
    f.words.resize(size_t(round_up(int64_t(f.words.size()), 64)), 0u);
    L.bias_offset = f.biases.size();
    std::vector<float> b(size_t(L.mpad), 0.f);
    std::copy(n.bias.begin(), n.bias.end(), b.begin());
    f.biases.insert(f.biases.end(), b.begin(), b.end());
    f.rows = std::max(f.rows, L.mpad);
    f.layers.push_back(L);
  }
  f.rows = std::max(f.rows, f.layers[0].kpad);
  f.ok = true;
  return f;
}

FusedArgs fused_args(const FusedPlan& plan, const uint32_t* words, const float* biases) {
  FusedArgs a;
  a.nlayers = int(plan.layers.size());
  a.rows = plan.rows;
  for (size_t i = 0; i < plan.layers.size(); ++i) {
    const FusedLayer& h = plan.layers[i];
    FusedLayerArgs& L = a.layers[i];
    L.m = h.m;
    L.k = h.k;
    L.mpad = h.mpad;
    L.kpad = h.kpad;
    L.w = words + h.w_offset;
    L.bias = biases + h.bias_offset;
    L.act = dev_act(h.act);
  }
  return a;
}

DevAct dev_act(const Activation& a) { return DevAct{int(a.kind), a.alpha, a.beta, a.threshold}; }

Activation host_act(const DevAct& a) {
  Activation h;
  h.kind = ActKind(a.kind);
  h.alpha = a.alpha;
  h.beta = a.beta;
  h.threshold = a.threshold;
  return h;
}

FusedKernel fused_kernel_from_name(const std::string& name) {
  if (name == "mma") return FusedKernel::mma;
  if (name == "ldmatrix") return FusedKernel::ldmatrix;
  if (name == "pipeline") return FusedKernel::pipeline;
  throw InvalidArgument("unknown fused kernel '" + name + "'; expected 'mma' (the default), 'ldmatrix' or 'pipeline'");
}

}  // namespace fastinv::cuda
