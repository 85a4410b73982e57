// DeepEM's 1-sigma errors. The data's noise is propagated through the network with its exact
// Jacobian, forward mode through the three layers, J = W3 diag(act2') W2 diag(act1') W1, the six
// input directions scaled by the noise of sqrt(I) first; the model's own error comes from the
// card's tables. Chosen over Monte-Carlo copies of each pixel by a measurement
// (docs/deepem-errors.md): six copies cost as much arithmetic as the six directions, are no
// more accurate (less for the total EM) and would make the errors depend on a seed. Where the
// CPU has AVX512-BF16 (and the caller did not ask for float32) the Jacobian is formed in
// bfloat16 instead (deepem_errors_bf16.cpp); the chain rule and the model term are shared.
#include <algorithm>
#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "backend.hpp"
#include "dem/deepem_errors.hpp"
#include "fastinv/error.hpp"
#include "json.hpp"

namespace fastinv::dem {
namespace {

constexpr int kW = cpu::kTileWidth;
constexpr int kChannels = kErrorDirections;
constexpr int64_t kMaxHidden = kMaxErrorHidden;  // (~270 kB of scratch on the stack)

const json::Value& field(const json::Value& obj, const char* key) {
  const json::Value* v = obj.is_object() ? obj.find(key) : nullptr;
  if (!v) throw InvalidArgument(std::string("the DeepEM model card's errors section has no \"") + key + "\"");
  return *v;
}

std::vector<double> numbers(const json::Value& v, const char* key) {
  std::vector<double> out;
  const json::Value& a = field(v, key);
  if (!a.is_array()) throw InvalidArgument(std::string("DeepEM card errors.") + key + " must be an array");
  for (const auto& e : a.array) {
    if (e.is_number()) {
      out.push_back(e.number);
    } else if (e.is_array()) {  // a table: rows flattened
      for (const auto& x : e.array) {
        if (!x.is_number()) throw InvalidArgument(std::string("DeepEM card errors.") + key + " must hold numbers");
        out.push_back(x.number);
      }
    } else {
      throw InvalidArgument(std::string("DeepEM card errors.") + key + " must hold numbers");
    }
  }
  for (double x : out)
    if (!std::isfinite(x)) throw InvalidArgument(std::string("DeepEM card errors.") + key + " must be finite");
  return out;
}

// Index of the cell of x between interior edges (clamped to the outer cells).
int cell(const std::vector<double>& edges, double x) {
  return int(std::upper_bound(edges.begin(), edges.end(), x) - edges.begin());
}

// 16 float lanes (one tile): GCC splits it into the registers each clone has.
typedef float v16 __attribute__((vector_size(64)));
static_assert(kW == 16, "one v16 per tile row");

// Layer 2 forward and its Jacobian in one pass over W2 (the bulk of the work, four rows of W2
// at a time): acc[0] is the pre-activation, acc[1 + c] the derivative along input direction c.
// Then the output layer's Jacobian jy = W3 diag(act2') (.).
// Every sum runs over k (or i) in order for each lane: a pixel's result does not depend on its
// tile or thread.
#ifdef __SANITIZE_THREAD__
#define FASTINV_ERRORS_CLONES
#else
#define FASTINV_ERRORS_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#endif
FASTINV_ERRORS_CLONES void layers23(const DeepEmErrorModel& m, const v16 (*a)[kChannels + 1], v16 (*c)[kChannels],
                                    v16 (*jy)[kChannels]) {
  const int64_t n_h1 = m.n_h1, n_h2 = m.n_h2;
  const v16 zero = {}, one = zero + 1.f, slope = zero + m.slope2;
  int64_t i = 0;
  constexpr int kRows = 4;  // 28 accumulators: each load of a[k] feeds 28 FMAs
  for (; i + kRows <= n_h2; i += kRows) {
    v16 acc[kRows][kChannels + 1] = {};
    const float* w = m.w2.data() + i * n_h1;
    for (int64_t k = 0; k < n_h1; ++k) {
      for (int r = 0; r < kChannels + 1; ++r) {
        const v16 ak = a[k][r];
        for (int q = 0; q < kRows; ++q) acc[q][r] += w[q * n_h1 + k] * ak;
      }
    }
    for (int q = 0; q < kRows; ++q) {
      const v16 d = acc[q][0] + m.b2[size_t(i + q)] > zero ? one : slope;
      for (int r = 0; r < kChannels; ++r) c[i + q][r] = d * acc[q][r + 1];
    }
  }
  for (; i < n_h2; ++i) {
    v16 acc[kChannels + 1] = {};
    const float* w = m.w2.data() + i * n_h1;
    for (int64_t k = 0; k < n_h1; ++k)
      for (int r = 0; r < kChannels + 1; ++r) acc[r] += w[k] * a[k][r];
    const v16 d = acc[0] + m.b2[size_t(i)] > zero ? one : slope;
    for (int r = 0; r < kChannels; ++r) c[i][r] = d * acc[r + 1];
  }
  for (int64_t t = 0; t < m.n_t; ++t) {
    v16 acc[kChannels] = {};
    const float* w = m.w3.data() + t * n_h2;
    for (int64_t h = 0; h < n_h2; ++h)
      for (int r = 0; r < kChannels; ++r) acc[r] += w[h] * c[h][r];
    for (int r = 0; r < kChannels; ++r) jy[t][r] = acc[r];
  }
}

// The float32 Jacobian: layer 1 and the input directions through it (a[k][0] = activation,
// a[k][1 + c] = d1 W1 s_c), then layers 2 and 3.
void jacobian_f32(const DeepEmErrorModel& m, const float (*x)[kW], const float (*s)[kW], v16 (*jy)[kChannels]) {
  alignas(64) v16 a[kMaxHidden][kChannels + 1];
  for (int64_t k = 0; k < m.n_h1; ++k) {
    const float* w = m.w1.data() + k * kChannels;
    for (int j = 0; j < kW; ++j) {
      float h = m.b1[size_t(k)];
      for (int c = 0; c < kChannels; ++c) h += w[c] * x[c][j];
      const float d = h > 0.f ? 1.f : m.slope1;
      a[k][0][j] = d * h;
      for (int c = 0; c < kChannels; ++c) a[k][c + 1][j] = d * w[c] * s[c][j];
    }
  }
  alignas(64) v16 cdir[kMaxHidden][kChannels];
  layers23(m, a, cdir, jy);
}

}  // namespace

DeepEmErrorModel DeepEmErrorModel::from_model(const Model& model, const std::vector<double>& logt, bool bf16) {
  const Graph& g = ModelAccess::graph(model);
  std::vector<const Node*> convs, acts;
  bool chain = true;  // each node reads the one before it (the first reads the input)
  for (size_t i = 0; i < g.nodes.size(); ++i) {
    const Node& n = g.nodes[i];
    (n.op == OpKind::conv ? convs : acts).push_back(&n);
    chain = chain && n.inputs == std::vector<int>{int(i) - 1};
  }
  const auto dense = [](const Node* n) { return n->kernel == 1 && n->stride == 1 && n->pad_left == 0; };
  if (!chain || convs.size() != 3 || acts.size() != 2 || g.nodes.size() != 5 || !dense(convs[0]) || !dense(convs[1]) ||
      !dense(convs[2]) || acts[0]->act.kind != ActKind::leaky_relu || acts[1]->act.kind != ActKind::leaky_relu ||
      g.nodes[1].op != OpKind::act || g.nodes[3].op != OpKind::act || convs[0]->cin != kChannels)
    throw InvalidArgument("DeepEM errors need the network 6 -> H -> H -> nT with LeakyReLU (1x1 convolutions)");
  DeepEmErrorModel m;
  m.n_h1 = convs[0]->cout;
  m.n_h2 = convs[1]->cout;
  m.n_t = convs[2]->cout;
  if (m.n_h1 > kMaxHidden || m.n_h2 > kMaxHidden || convs[1]->cin != m.n_h1 || convs[2]->cin != m.n_h2 || m.n_t > 64 ||
      m.n_t != int64_t(logt.size()))
    throw InvalidArgument("DeepEM errors: hidden layers of at most 320 and one output per log T bin");
  m.slope1 = acts[0]->act.alpha;
  m.slope2 = acts[1]->act.alpha;
  m.w1 = convs[0]->weight;
  m.b1 = convs[0]->bias;
  m.w2 = convs[1]->weight;
  m.b2 = convs[1]->bias;
  m.w3 = convs[2]->weight;
  m.logt = logt;

  const auto& meta = model.metadata();
  const auto it = meta.find("fastinv.card");
  if (it == meta.end()) throw InvalidArgument("not a DeepEM model (no fastinv.card metadata)");
  const json::Value card = json::parse(it->second, "the DeepEM model card");
  const json::Value* e = card.is_object() ? card.find("errors") : nullptr;
  if (!e || !e->is_object())
    throw InvalidArgument(
        "this DeepEM model card has no calibrated errors (\"errors\" section); see "
        "fastinv.train.deepem_errors");
  m.total_edges = numbers(*e, "total_em_edges");
  m.logt_edges = numbers(*e, "logt_edges");
  m.em_edges = numbers(*e, "em_edges");
  m.logt_sigma = numbers(*e, "logt_sigma");
  m.total_rel_sigma = numbers(*e, "total_em_rel_sigma");
  m.em_sigma = numbers(*e, "em_sigma");
  const size_t cells = (m.total_edges.size() + 1) * (m.logt_edges.size() + 1);
  if (m.logt_sigma.size() != cells || m.total_rel_sigma.size() != cells ||
      m.em_sigma.size() != size_t(m.n_t) * (m.em_edges.size() + 1))
    throw InvalidArgument("DeepEM card errors: table sizes do not match their edges");
  for (const auto* edges : {&m.total_edges, &m.logt_edges, &m.em_edges})
    if (!std::is_sorted(edges->begin(), edges->end()))
      throw InvalidArgument("DeepEM card errors: edges must be increasing");
  for (double e : m.em_edges) m.em_edge_values.push_back(std::pow(10.0, e));
  if (bf16) m.bf16 = pack_errors_bf16(m);
  return m;
}

void deepem_tile_errors(const DeepEmErrorModel& m, const double (*y)[kW], const double (*sigma)[kW],
                        const float* out_tile, const float (*em)[kW], const bool* ok, int lanes, int64_t first,
                        int64_t npix, const DeepEmOutput& output) noexcept {
  // Noise of the network's input x = sqrt(max(I, 0)): sigma / (2 sqrt(I)), with I floored at
  // sigma, where the square root's slope is no longer a fair linearisation.
  float x[kChannels][kW], s[kChannels][kW];
  for (int c = 0; c < kChannels; ++c)
    for (int j = 0; j < kW; ++j) {
      const bool real = j < lanes && ok[j];
      const double yi = real ? std::max(y[c][j], 0.0) : 0.0, si = real ? sigma[c][j] : 0.0;
      x[c][j] = std::sqrt(float(yi));
      s[c][j] = real ? float(si / (2.0 * std::sqrt(std::max(yi, si)))) : 0.f;
    }
  alignas(64) v16 jy[64][kChannels];  // n_t <= 64 (deepem_invert validates)
  if (m.bf16)
    jacobian_bf16(m, x, s, reinterpret_cast<float (*)[kChannels][kW]>(jy));
  else
    jacobian_f32(m, x, s, jy);

  constexpr float fnan = std::numeric_limits<float>::quiet_NaN();
  const int64_t nt = m.n_t;
  const size_t nlt = m.logt_edges.size() + 1, nem = m.em_edges.size() + 1;
  for (int j = 0; j < lanes; ++j) {
    const int64_t p = first + j;
    if (!ok[j]) {
      for (int64_t t = 0; t < nt; ++t) output.em_err[t * npix + p] = fnan;
      output.logt_err[p] = fnan;
      output.total_em_err[p] = fnan;
      continue;
    }
    // The output Jacobian (J_t . s) through the chain rule to EM, total EM and log T.
    double total = 0.0, moment = 0.0;
    for (int64_t t = 0; t < nt; ++t) {
      total += double(em[t][j]);
      moment += m.logt[size_t(t)] * double(em[t][j]);
    }
    const double lt = total > 0.0 ? moment / total : std::numeric_limits<double>::quiet_NaN();
    double g_total[kChannels] = {}, g_logt[kChannels] = {};
    for (int64_t t = 0; t < nt; ++t) {
      double jt[kChannels];
      for (int c = 0; c < kChannels; ++c) jt[c] = double(jy[t][c][j]);
      const double dem_dy = 2e25 * double(out_tile[t * kW + j]);  // EM = 1e25 y^2
      double var = 0.0;
      for (int c = 0; c < kChannels; ++c) {
        const double d = dem_dy * jt[c];
        var += d * d;
        g_total[c] += d;
        if (total > 0.0) g_logt[c] += (m.logt[size_t(t)] - lt) / total * d;
      }
      // the cell of log10(EM) without a logarithm per bin: EM against 10^edge
      const double model_sigma =
          m.em_sigma[size_t(t) * nem + size_t(cell(m.em_edge_values, std::max(double(em[t][j]), 1e-300)))];
      output.em_err[t * npix + p] = float(std::sqrt(var + model_sigma * model_sigma));
    }
    double var_total = 0.0, var_logt = 0.0;
    for (int c = 0; c < kChannels; ++c) {
      var_total += g_total[c] * g_total[c];
      var_logt += g_logt[c] * g_logt[c];
    }
    const size_t k = size_t(cell(m.total_edges, std::log10(std::max(total, 1e-300)))) * nlt +
                     size_t(cell(m.logt_edges, std::isfinite(lt) ? lt : 0.0));
    const double rel = m.total_rel_sigma[k] * total, ls = m.logt_sigma[k];
    output.total_em_err[p] = float(std::sqrt(var_total + rel * rel));
    output.logt_err[p] = std::isfinite(lt) ? float(std::sqrt(var_logt + ls * ls)) : fnan;
  }
}

}  // namespace fastinv::dem
