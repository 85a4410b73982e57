#include "cpu/cpu_plan.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <string>

#include "fastinv/error.hpp"
#include "slot_allocator.hpp"

namespace fastinv::cpu {
namespace {

constexpr int NR = kTileWidth;

int64_t slot_floats(const Shape& s) { return (s.size() + 1) * NR; }  // + the zero row

// Which value each value's storage really is: a flatten that keeps the row order, an
// activation fused into its conv's epilogue and a max-pool fused after it all reuse
// one buffer (for a fused pool: the pool's, which the conv writes into directly).
struct Storage {
  std::vector<int> root;      // per node: the value id that owns the buffer
  std::vector<int> producer;  // per fused node: the conv it is folded into, else -1
};

// The conv whose epilogue a max-pool can be folded into, or -1. The pool's windows must
// not overlap (each conv position feeds at most one of them), and the conv's activation,
// if any, must be one its epilogue applies (else the pool would see pre-activation values).
int poolable_conv(const Graph& g, const Storage& st, const std::vector<int>& consumers, int src) {
  if (src < 0 || src == g.output || consumers[size_t(src)] != 1) return -1;
  const Node& n = g.nodes[size_t(src)];
  if (n.op == OpKind::conv) return src;
  const bool epilogue_act = n.act.kind == ActKind::relu || n.act.kind == ActKind::leaky_relu;
  return n.op == OpKind::act && epilogue_act && st.producer[size_t(src)] >= 0 ? st.producer[size_t(src)] : -1;
}

Storage plan_storage(const Graph& g) {
  const size_t n = g.nodes.size();
  std::vector<int> consumers(n, 0);
  for (const Node& node : g.nodes)
    for (int in : node.inputs)
      if (in >= 0) ++consumers[size_t(in)];
  Storage st{std::vector<int>(n), std::vector<int>(n, -1)};
  for (size_t i = 0; i < n; ++i) {
    const Node& node = g.nodes[i];
    st.root[i] = int(i);
    const int src = node.inputs[0];
    const Shape& in = g.shape_of(src);
    if (node.op == OpKind::flatten && (in.l == 1 || in.c == 1)) {
      // position-major and channel-major orders coincide: a view
      st.root[i] = src < 0 ? -1 : st.root[size_t(src)];
    } else if (node.op == OpKind::act && src >= 0 && g.nodes[size_t(src)].op == OpKind::conv &&
               consumers[size_t(src)] == 1 && src != g.output) {
      // the conv's only consumer: apply it in the conv's epilogue
      st.producer[i] = src;
      st.root[i] = st.root[size_t(src)];
    } else if (node.op == OpKind::maxpool && node.kernel <= node.stride) {
      const int conv = poolable_conv(g, st, consumers, src);
      if (conv >= 0) {
        st.producer[i] = conv;
        st.root[size_t(conv)] = int(i);
        if (src != conv) st.root[size_t(src)] = int(i);
      }
    }
  }
  return st;
}

void activate_rows(const Activation& act, float* rows, int64_t nrows, int64_t stride) {
  for (int64_t r = 0; r < nrows; ++r)
    for (int j = 0; j < NR; ++j) rows[r * stride + j] = apply_activation(act, rows[r * stride + j]);
}

// Where conv output position lo is stored: its own row block, or with a fused max-pool
// the block of the window it falls in (false: in none), and whether it is maxed into
// what an earlier position of that window stored.
bool output_position(const Step& s, int64_t lo, int64_t& dst, bool& combine) {
  dst = lo;
  combine = false;
  if (s.pool_stride == 0) return true;
  const int64_t q = lo + s.pool_pad;
  dst = q / s.pool_stride;
  combine = q % s.pool_stride > 0 && lo > 0;  // not the window's first valid position
  return q % s.pool_stride < s.pool_kernel && dst < s.pooled_l;
}

GemmArgs conv_args(const Step& s, const float* in) {
  GemmArgs g;
  g.m = s.m;
  g.k = s.k;
  g.a = s.a.data();
  g.bias = s.bias.data();
  g.in = in;
  g.out_stride = NR;  // the m outputs of one position are consecutive rows
  g.leaky = s.leaky;
  g.slope = s.slope;
  return g;
}

// The direct convolution of output position lo, stored at row block dst.
void conv_position(const Plan& plan, const Step& s, const float* in, float* out, int64_t lo, int64_t dst, GemmArgs& g) {
  // Windows away from the padding are one block of rows: the direct-load kernel path.
  const bool direct = s.offsets.empty() || s.window[size_t(lo)] >= 0;
  g.in = direct && !s.offsets.empty() ? in + s.window[size_t(lo)] : in;
  g.offsets = direct ? nullptr : s.offsets.data() + lo * s.k;
  g.out = out + dst * s.m * NR;
  plan.kernels->gemm(g);
  if (s.act.kind != ActKind::identity) activate_rows(s.act, g.out, s.m, g.out_stride);
}

// The bf16 convolution: the input rounded into pair rows once, then one bf16 GEMM per
// output position, as conv_position does in float32; with `at2`, a second tile's arena
// runs through the same GEMMs (GemmBf16Args::in2).
void run_conv_bf16(const Plan& plan, const Step& s, const Slots& at, const Slots* at2 = nullptr) {
  const Shape& shape = s.in_shape[0];
  // The pair rows are only ever accessed through the kernels' vector loads and stores.
  uint32_t* pairs = reinterpret_cast<uint32_t*>(at.arena + plan.pairs_offset);
  uint32_t* pairs2 = at2 ? reinterpret_cast<uint32_t*>(at2->arena + plan.pairs_offset) : nullptr;
  plan.bf16->to_pair_rows(at[s.in[0]], shape.l, shape.c, pairs);
  if (at2) plan.bf16->to_pair_rows((*at2)[s.in[0]], shape.l, shape.c, pairs2);
  float* out = at[s.out];
  float* out2 = at2 ? (*at2)[s.out] : nullptr;
  GemmBf16Args g;
  g.m = s.m;
  g.kp = s.kp;
  g.a = s.a16.data();
  g.bias = s.bias.data();
  g.out_stride = NR;
  g.leaky = s.leaky;
  g.slope = s.slope;
  g.terms = plan.bf16_terms;
  for (int64_t lo = 0; lo < s.out_shape.l; ++lo) {
    int64_t dst;
    if (!output_position(s, lo, dst, g.max_into_out)) continue;
    const bool direct = s.offsets16.empty() || s.window16[size_t(lo)] >= 0;
    const int64_t shift = direct && !s.offsets16.empty() ? s.window16[size_t(lo)] : 0;
    g.in = pairs + shift;
    g.offsets = direct ? nullptr : s.offsets16.data() + lo * s.kp;
    g.out = out + dst * s.m * NR;
    if (at2) {
      g.in2 = pairs2 + shift;
      g.out2 = out2 + dst * s.m * NR;
    }
    plan.bf16->gemm(g);
    if (s.act.kind != ActKind::identity) {
      activate_rows(s.act, g.out, s.m, NR);
      if (at2) activate_rows(s.act, g.out2, s.m, NR);
    }
  }
}

void run_conv(const Plan& plan, const Step& s, const Slots& at) {
  if (plan.bf16) return run_conv_bf16(plan, s, at);
  float* in = at[s.in[0]];
  float* out = at[s.out];
  // The zero row that padding taps read; the slot may hold stale data there.
  std::memset(in + s.in_shape[0].size() * NR, 0, NR * sizeof(float));
  GemmArgs g = conv_args(s, in);
  for (int64_t lo = 0; lo < s.out_shape.l; ++lo) {
    int64_t dst;
    if (output_position(s, lo, dst, g.max_into_out)) conv_position(plan, s, in, out, lo, dst, g);
  }
}

// F(2, r) over output pairs (2q, 2q + 1): input transform of the n positions under
// the pair, one GEMM over cin per point, then the output transform with bias and
// activation writes both positions in place (or maxes them into a fused pool's window).
// A pair whose inputs hold NaN or inf is computed directly instead: the transforms
// would spread it (inf - inf) to outputs torch keeps finite.
void run_winograd(const Plan& plan, const Step& s, const Slots& at) {
  float* in = at[s.in[0]];
  float* out = at[s.out];
  std::memset(in + s.in_shape[0].size() * NR, 0, NR * sizeof(float));  // the direct path's zero row
  const int n = s.wino_n;
  const int64_t cin = s.in_shape[0].c, lin = s.in_shape[0].l, cout = s.m, lout = s.out_shape.l;
  float* v = at.arena + plan.scratch_offset;  // [n][cin] transformed input rows
  float* prod = v + n * cin * NR;             // [n][cout] per-point products
  float* zeros = prod + n * cout * NR;        // [cin] rows read for padding positions
  std::memset(zeros, 0, size_t(cin * NR) * sizeof(float));

  MixArgs to_points;
  to_points.nout = to_points.nin = n;
  to_points.coef = s.wino_bt.data();
  to_points.groups = cin;
  for (int a = 0; a < n; ++a) to_points.out[a] = v + a * cin * NR;
  MixArgs to_outputs;
  to_outputs.nout = 2;
  to_outputs.nin = n;
  to_outputs.coef = s.wino_at.data();
  to_outputs.groups = cout;
  to_outputs.bias = s.bias.data();
  to_outputs.leaky = s.leaky;
  to_outputs.slope = s.slope;
  for (int a = 0; a < n; ++a) to_outputs.in[a] = prod + a * cout * NR;
  GemmArgs point;
  point.m = cout;
  point.k = cin;
  point.bias = s.zero_bias.data();
  point.out_stride = NR;
  GemmArgs direct = conv_args(s, in);

  for (int64_t first = 0; first < lout; first += 2) {
    for (int i = 0; i < n; ++i) {
      const int64_t pos = first - s.pad + i;
      to_points.in[i] = pos >= 0 && pos < lin ? in + pos * cin * NR : zeros;
    }
    int64_t dst[2];
    for (int j = 0; j < 2; ++j) {
      const bool stored = first + j < lout && output_position(s, first + j, dst[j], to_outputs.max_into[j]);
      to_outputs.out[j] = stored ? out + dst[j] * cout * NR : nullptr;
    }
    if (!plan.kernels->mix_rows(to_points)) {
      for (int j = 0; j < 2; ++j) {
        direct.max_into_out = to_outputs.max_into[j];
        if (to_outputs.out[j]) conv_position(plan, s, in, out, first + j, dst[j], direct);
      }
      continue;
    }
    for (int a = 0; a < n; ++a) {
      point.a = s.wino_a.data() + a * s.panel_floats;
      point.in = v + a * cin * NR;
      point.out = prod + a * cout * NR;
      plan.kernels->gemm(point);
    }
    plan.kernels->mix_rows(to_outputs);
    if (s.act.kind != ActKind::identity)  // (never with a fused pool)
      for (int j = 0; j < 2; ++j)
        if (to_outputs.out[j]) activate_rows(s.act, to_outputs.out[j], cout, NR);
  }
}

void run_pool(const Step& s, const Slots& at) {
  const float* in = at[s.in[0]];
  float* out = at[s.out];
  const int64_t lin = s.in_shape[0].l, lout = s.out_shape.l, nc = s.out_shape.c;
  for (int64_t lo = 0; lo < lout; ++lo) {
    const int64_t start = lo * s.stride - s.pad;
    const int64_t lo_valid = std::max<int64_t>(start, 0);
    const int64_t hi_valid = std::min<int64_t>(start + s.kernel, lin);
    for (int64_t c = 0; c < nc; ++c) {
      float* o = out + (lo * nc + c) * NR;
      float acc[NR];
      if (s.op == OpKind::maxpool) {
        for (int j = 0; j < NR; ++j) acc[j] = -std::numeric_limits<float>::infinity();
        for (int64_t p = lo_valid; p < hi_valid; ++p) {
          const float* row = in + (p * nc + c) * NR;
          for (int j = 0; j < NR; ++j)
            if (row[j] > acc[j] || std::isnan(row[j])) acc[j] = row[j];  // NaN wins, as in torch
        }
        std::memcpy(o, acc, sizeof(acc));
      } else {
        for (int j = 0; j < NR; ++j) acc[j] = 0.f;
        for (int64_t p = lo_valid; p < hi_valid; ++p) {
          const float* row = in + (p * nc + c) * NR;
          for (int j = 0; j < NR; ++j) acc[j] += row[j];
        }
        const int64_t padded_end = std::min<int64_t>(start + s.kernel, lin + s.pad);
        const float divisor = float(s.count_include_pad ? padded_end - start : hi_valid - lo_valid);
        for (int j = 0; j < NR; ++j) o[j] = acc[j] / divisor;
      }
    }
  }
}

// Row offsets of every tap of every output position (padding taps read the zero row),
// and which positions' windows are one contiguous block of rows.
void conv_offsets(const Node& node, Step& s) {
  const Shape& in = s.in_shape[0];
  const std::vector<int32_t> rows = conv_input_rows(node, in);
  s.offsets.resize(rows.size());
  for (size_t i = 0; i < rows.size(); ++i) s.offsets[i] = int32_t((rows[i] < 0 ? in.size() : rows[i]) * NR);
  s.window.assign(size_t(node.shape.l), -1);
  for (int64_t lo = 0; lo < node.shape.l; ++lo) {
    const int32_t* off = s.offsets.data() + lo * s.k;
    bool contiguous = true;
    for (int64_t kk = 1; kk < s.k && contiguous; ++kk) contiguous = off[kk] == off[0] + kk * NR;
    if (contiguous && off[0] != int32_t(in.size() * NR)) s.window[size_t(lo)] = off[0];
  }
}

// The bf16 form of a conv: weight pairs, and per output position the pair-row offsets
// of its taps (a padding tap reads the zero pair row after the input's rows).
// Returns the words of the input's pair rows.
int64_t compile_bf16(const Node& node, const Bf16Kernels& kernels, int mr, int terms, Step& s) {
  const Shape& in = s.in_shape[0];
  const int64_t pairs = (node.cin + 1) / 2;
  const std::vector<float> w = tap_major_weights(node);
  if (kernels.tiles)
    pack_weights_bf16_tiles(w.data(), node.bias.data(), s.m, node.kernel, node.cin, s.a16, s.bias, terms);
  else
    pack_weights_bf16(w.data(), node.bias.data(), s.m, node.kernel, node.cin, mr, s.a16, s.bias, terms);
  s.kp = node.kernel * pairs;
  const int64_t words = (in.l * pairs + 1) * NR;
  if (node.linear) return words;
  const std::vector<int32_t> rows = conv_input_rows(node, in);
  const int32_t zero_row = int32_t(in.l * pairs * NR);
  s.offsets16.resize(size_t(node.shape.l * s.kp));
  s.window16.assign(size_t(node.shape.l), -1);
  for (int64_t lo = 0; lo < node.shape.l; ++lo) {
    int32_t* off = s.offsets16.data() + lo * s.kp;
    for (int64_t t = 0; t < node.kernel; ++t)
      for (int64_t p = 0; p < pairs; ++p) {
        const int32_t row = rows[size_t(lo * s.k + t * node.cin + 2 * p)];
        off[t * pairs + p] = row < 0 ? zero_row : int32_t((row / node.cin * pairs + p) * NR);
      }
    bool contiguous = off[0] != zero_row;
    for (int64_t kk = 1; kk < s.kp && contiguous; ++kk) contiguous = off[kk] == off[0] + kk * NR;
    if (contiguous) s.window16[size_t(lo)] = off[0];
  }
  return words;
}

// One packed [cout][cin] panel per Winograd point: (G g)[a] = sum_t G[a][t] w[:, :, t]
// (the direct weights stay for pairs with non-finite inputs).
void compile_winograd(const Node& node, int mr, Step& s) {
  const WinogradMatrices wm = winograd_matrices(int(node.kernel));
  const int n = wm.n, r = wm.r;
  s.wino_n = n;
  s.pad = node.pad_left;
  std::vector<float> unused_bias;
  std::vector<float> panel(size_t(node.cout * node.cin));
  std::vector<float> packed;
  for (int a = 0; a < n; ++a) {
    for (int64_t co = 0; co < node.cout; ++co)
      for (int64_t ci = 0; ci < node.cin; ++ci) {
        double sum = 0;
        for (int t = 0; t < r; ++t) sum += wm.g[size_t(a * r + t)] * node.weight[size_t((co * node.cin + ci) * r + t)];
        panel[size_t(co * node.cin + ci)] = float(sum);
      }
    pack_weights(panel.data(), node.bias.data(), node.cout, node.cin, mr, packed, unused_bias);
    s.panel_floats = int64_t(packed.size());
    s.wino_a.insert(s.wino_a.end(), packed.begin(), packed.end());
  }
  s.zero_bias.assign(s.bias.size(), 0.f);
  s.wino_bt.assign(wm.bt.begin(), wm.bt.end());
  s.wino_at.assign(wm.at.begin(), wm.at.end());
}

void run_step(const Plan& plan, const Step& s, const Slots& at) {
  float* out = at[s.out];
  const int64_t rows = s.out_shape.size();
  switch (s.op) {
    case OpKind::conv:
      if (s.wino_n > 0)
        run_winograd(plan, s, at);
      else
        run_conv(plan, s, at);
      break;
    case OpKind::maxpool:
    case OpKind::avgpool:
      run_pool(s, at);
      break;
    case OpKind::act: {
      const float* in = at[s.in[0]];
      if (in != out) std::memcpy(out, in, size_t(rows * NR) * sizeof(float));
      activate_rows(s.act, out, rows, NR);
      break;
    }
    case OpKind::affine: {
      const float* in = at[s.in[0]];
      const int64_t nc = s.out_shape.c;
      for (int64_t r = 0; r < rows; ++r) {
        const float a = s.scale[size_t(r % nc)], b = s.shift[size_t(r % nc)];
        for (int j = 0; j < NR; ++j) out[r * NR + j] = in[r * NR + j] * a + b;
      }
      break;
    }
    case OpKind::concat: {  // per position: the inputs' channel blocks one after another
      float* dst = out;
      for (int64_t l = 0; l < s.out_shape.l; ++l)
        for (size_t i = 0; i < s.in.size(); ++i) {
          const size_t n = size_t(s.in_shape[i].c * NR);
          std::memcpy(dst, at[s.in[i]] + l * s.in_shape[i].c * NR, n * sizeof(float));
          dst += n;
        }
      break;
    }
    case OpKind::flatten: {  // position-major (l, c) rows to torch's channel-major c*L + l
      const float* in = at[s.in[0]];
      const int64_t nc = s.in_shape[0].c, nl = s.in_shape[0].l;
      for (int64_t c = 0; c < nc; ++c)
        for (int64_t l = 0; l < nl; ++l)
          std::memcpy(out + (c * nl + l) * NR, in + (l * nc + c) * NR, NR * sizeof(float));
      break;
    }
    case OpKind::add: {
      const float* first = at[s.in[0]];
      for (int64_t e = 0; e < rows * NR; ++e) out[e] = first[e];
      for (size_t i = 1; i < s.in.size(); ++i) {
        const float* other = at[s.in[i]];
        for (int64_t e = 0; e < rows * NR; ++e) out[e] += other[e];
      }
      break;
    }
  }
}

// One dense (rank-1) step for a group of tiles, k in chunks of kTailChunk: each chunk of
// each weight block is used by every tile of the group while it is in cache, so the
// weights stream from memory once per group. Every tile sees the same chunked sums
// whatever the group, so results do not depend on grouping or threads.
void run_dense_group(const Plan& plan, const Step& s, float* const* tiles, int count) {
  const int mr = plan.kernels->mr;
  for (int64_t k0 = 0; k0 < s.k; k0 += kTailChunk) {
    const int64_t kc = std::min<int64_t>(kTailChunk, s.k - k0);
    const bool last = k0 + kc == s.k;
    for (int64_t blk = 0; blk * mr < s.m; ++blk)
      for (int t = 0; t < count; ++t) {
        const Slots at{tiles[t], plan.tail.slot_offset.data()};
        GemmArgs g;
        g.m = std::min<int64_t>(mr, s.m - blk * mr);
        g.k = kc;
        g.a = s.a.data() + (blk * s.k + k0) * mr;
        g.bias = s.bias.data() + blk * mr;
        g.in = at[s.in[0]] + k0 * NR;
        g.out = at[s.out] + blk * mr * NR;
        g.out_stride = NR;
        g.accumulate = k0 > 0;
        g.leaky = last && s.leaky;
        g.slope = s.slope;
        plan.kernels->gemm(g);
        if (last && s.act.kind != ActKind::identity) activate_rows(s.act, g.out, g.m, NR);
      }
  }
}

// Whether a step can run in the grouped tail: rank-1 values only (l = 1), and convs that
// are plain matrix products (no padding taps, Winograd or fused pool).
bool tail_step(const Step& s) {
  for (const Shape& in : s.in_shape)
    if (in.l != 1) return false;
  if (s.out_shape.l != 1) return false;
  return s.op != OpKind::conv || (s.offsets.empty() && s.wino_n == 0 && s.pool_stride == 0);
}

// The grouped tail (Plan::tail) when its weights outgrow the cache: its slots laid out
// compactly for one tile, and the slots it needs from the steps before it.
void plan_tail(Plan& plan, const std::vector<int64_t>& slot_size) {
  size_t begin = plan.steps.size();
  while (begin > 0 && tail_step(plan.steps[begin - 1])) --begin;
  int64_t weight_bytes = 0;
  for (size_t i = begin; i < plan.steps.size(); ++i)
    if (plan.steps[i].op == OpKind::conv) weight_bytes += int64_t(plan.steps[i].a.size() * sizeof(float));
  plan.tail.begin = plan.steps.size();
  if (weight_bytes < kTailWeightBytes) return;
  plan.tail.begin = begin;
  std::vector<bool> used(slot_size.size(), false), written_before(slot_size.size(), false);
  used[size_t(plan.output_slot)] = true;
  for (int slot : plan.kept_slot) used[size_t(slot)] = true;  // copied in if written before the tail
  for (size_t i = begin; i < plan.steps.size(); ++i) {
    for (int in : plan.steps[i].in) used[size_t(in)] = true;
    used[size_t(plan.steps[i].out)] = true;
  }
  written_before[size_t(plan.input_slot)] = true;
  for (size_t i = 0; i < begin; ++i) written_before[size_t(plan.steps[i].out)] = true;
  plan.tail.slot_offset.assign(slot_size.size(), -1);
  for (size_t slot = 0; slot < slot_size.size(); ++slot) {
    if (!used[slot]) continue;
    plan.tail.slot_offset[slot] = plan.tail.floats;
    plan.tail.floats += (slot_size[slot] + 15) / 16 * 16;
    if (written_before[slot]) plan.tail.copy_in.push_back({int(slot), slot_size[slot]});
  }
}

// FLOPs a conv step avoids against the layer as written (Model::info's 2 m k per
// position): positions outside every fused-pool window, or Winograd's cheaper products
// (counted with its dense transforms, as executed).
// (negative with bf16x2, whose two weight terms execute every product twice)
int64_t conv_flops_saved(const Step& s, int terms) {
  const int64_t lout = s.out_shape.l, per_position = 2 * s.m * s.k;
  int64_t executed = 0;
  if (s.wino_n > 0) {
    const int64_t n = s.wino_n, cin = s.in_shape[0].c;
    executed = (lout + 1) / 2 * (2 * n * cin * s.m + 2 * n * n * cin + 2 * 2 * n * s.m);
  } else {
    int64_t dst;
    bool combine;
    for (int64_t lo = 0; lo < lout; ++lo)
      if (output_position(s, lo, dst, combine)) executed += per_position * terms;
  }
  return lout * per_position - executed;
}

}  // namespace

Plan compile_plan(const Graph& g, Isa isa, int bf16_terms, const std::vector<int>& keep) {
  Plan plan;
  plan.kernels = &kernels_for(isa);
  if (bf16_terms < 0 || bf16_terms > 2) throw InvalidArgument("compile_plan: bf16_terms must be 0, 1 or 2");
  if (bf16_terms > 0) {
    plan.bf16 = &bf16_kernels();
    plan.bf16_terms = bf16_terms;
    if (isa != Isa::avx512)
      throw Error(std::string("precision='bf16' / 'bf16x2' runs on the AVX512-BF16 kernels, but the active ISA is '") +
                  isa_name(isa) + "' (FASTINV_ISA or set_active_isa lowered it); load with precision='fp32'");
  }
  plan.input_shape = g.input;
  plan.output_shape = g.shape_of(g.output);
  const Storage st = plan_storage(g);
  const int n = int(g.nodes.size());
  auto root_of = [&](int v) { return v < 0 ? -1 : st.root[size_t(v)]; };

  // Last step that reads each root buffer (the output's buffer lives to the end).
  std::vector<int> last_use(size_t(n) + 1, -1);  // index root+1 (input is -1)
  for (int i = 0; i < n; ++i)
    for (int in : g.nodes[size_t(i)].inputs) last_use[size_t(root_of(in) + 1)] = i;
  last_use[size_t(root_of(g.output) + 1)] = n;
  if (keep.size() > size_t(kMaxKept)) throw InvalidArgument("compile_plan: at most 8 kept values");
  for (int v : keep) {
    // the buffer holds v's value at the end only if no later node writes into it (a fused
    // activation or pool); a flatten view of it reads the same rows
    bool last_writer = v >= 0 && v < n;
    for (int j = v + 1; last_writer && j < n; ++j)
      last_writer = st.root[size_t(j)] != st.root[size_t(v)] || g.nodes[size_t(j)].op == OpKind::flatten;
    if (!last_writer) throw InvalidArgument("compile_plan: value " + std::to_string(v) + " cannot be kept");
    last_use[size_t(root_of(v) + 1)] = n;
  }

  SlotAllocator slots;
  std::vector<int> slot_of_root(size_t(n) + 1, -1);
  auto allocate = [&](int root, int64_t floats) { slot_of_root[size_t(root + 1)] = slots.allocate(floats); };
  allocate(-1, slot_floats(g.input));
  plan.input_slot = slot_of_root[0];

  std::vector<size_t> step_of_node(size_t(n), 0);
  int64_t scratch = 0, pairs_words = 0;
  for (int i = 0; i < n; ++i) {
    const Node& node = g.nodes[size_t(i)];
    // A buffer is allocated at its first writer (a conv, for a pool fused after it).
    const int root = st.root[size_t(i)];
    if (slot_of_root[size_t(root + 1)] < 0) allocate(root, slot_floats(g.nodes[size_t(root)].shape));
    const int out_slot = slot_of_root[size_t(root + 1)];
    if (node.op == OpKind::flatten && root != i) {
      // a view: nothing to run
    } else if (node.op == OpKind::maxpool && st.producer[size_t(i)] >= 0) {
      Step& conv = plan.steps[step_of_node[size_t(st.producer[size_t(i)])]];
      conv.pool_kernel = node.kernel;
      conv.pool_stride = node.stride;
      conv.pool_pad = node.pad_left;
      conv.pooled_l = node.shape.l;
    } else if (st.producer[size_t(i)] >= 0) {
      Step& conv = plan.steps[step_of_node[size_t(st.producer[size_t(i)])]];
      if (node.act.kind == ActKind::relu || node.act.kind == ActKind::leaky_relu) {
        conv.leaky = true;
        conv.slope = node.act.kind == ActKind::relu ? 0.f : node.act.alpha;
      } else {
        conv.act = node.act;
      }
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
        s.m = node.cout;
        s.k = node.cin * node.kernel;
        if (plan.bf16) {
          pairs_words = std::max(pairs_words, compile_bf16(node, *plan.bf16, plan.kernels->mr, plan.bf16_terms, s));
        } else {
          const std::vector<float> w = tap_major_weights(node);
          pack_weights(w.data(), node.bias.data(), s.m, s.k, plan.kernels->mr, s.a, s.bias);
          if (!node.linear) conv_offsets(node, s);
        }
        if (!plan.bf16 && winograd_applies(node)) {
          compile_winograd(node, plan.kernels->mr, s);
          scratch = std::max(scratch, (s.wino_n * (node.cin + node.cout) + node.cin) * NR);
        }
      } else if (node.op == OpKind::maxpool || node.op == OpKind::avgpool) {
        s.kernel = node.kernel;
        s.stride = node.stride;
        s.pad = node.pad_left;
        s.count_include_pad = node.count_include_pad;
      } else if (node.op == OpKind::act) {
        s.act = node.act;
      } else if (node.op == OpKind::affine) {
        s.scale = node.scale;
        s.shift = node.shift;
      }
      step_of_node[size_t(i)] = plan.steps.size();
      plan.steps.push_back(std::move(s));
    }
    // Free the buffers whose last reader was this node.
    for (int in : node.inputs) {
      const int r = root_of(in);
      if (last_use[size_t(r + 1)] == i) slots.release(slot_of_root[size_t(r + 1)]);
    }
  }
  plan.output_slot = slot_of_root[size_t(root_of(g.output) + 1)];
  for (int v : keep) plan.kept_slot.push_back(slot_of_root[size_t(root_of(v) + 1)]);

  int64_t offset = 0;
  for (int64_t size : slots.sizes()) {
    plan.slot_offset.push_back(offset);
    offset += (size + 15) / 16 * 16;  // 64-byte aligned slots
  }
  plan.scratch_offset = offset;
  plan.pairs_offset = offset + (scratch + 15) / 16 * 16;
  plan.arena_floats = plan.pairs_offset + pairs_words;
  for (const Step& s : plan.steps)
    if (s.op == OpKind::conv) plan.flops_saved += conv_flops_saved(s, std::max(plan.bf16_terms, 1));
  if (plan.bf16)
    plan.tail.begin = plan.steps.size();  // (its weights are half the size; not implemented for bf16)
  else
    plan_tail(plan, slots.sizes());
  return plan;
}

void execute_steps(const Plan& plan, float* arena, size_t begin, size_t end) {
  const Slots at{arena, plan.slot_offset.data()};
  for (size_t i = begin; i < end; ++i) run_step(plan, plan.steps[i], at);
}

void execute_steps_pair(const Plan& plan, float* arena, float* arena2) {
  const Slots at{arena, plan.slot_offset.data()}, at2{arena2, plan.slot_offset.data()};
  for (const Step& s : plan.steps) {
    if (s.op == OpKind::conv && plan.bf16) {
      run_conv_bf16(plan, s, at, &at2);
    } else {
      run_step(plan, s, at);
      run_step(plan, s, at2);
    }
  }
}

void execute_tail(const Plan& plan, float* const* tiles, int count) {
  for (size_t i = plan.tail.begin; i < plan.steps.size(); ++i) {
    const Step& s = plan.steps[i];
    if (s.op == OpKind::conv) {
      run_dense_group(plan, s, tiles, count);
    } else {
      for (int t = 0; t < count; ++t) run_step(plan, s, Slots{tiles[t], plan.tail.slot_offset.data()});
    }
  }
}

}  // namespace fastinv::cpu
