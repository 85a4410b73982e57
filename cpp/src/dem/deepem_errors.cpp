// DeepEM's 1-sigma errors. The data's noise is propagated through the network with its exact
// Jacobian, forward mode through the three layers, J = W3 diag(act2') W2 diag(act1') W1, the six
// input directions scaled by the noise of sqrt(I) first; the model's own error comes from the
// card's tables. Chosen over Monte-Carlo copies of each pixel by a measurement
// (docs/deepem-errors.md): six copies cost as much arithmetic as the six directions, are no
// more accurate (less for the total EM) and would make the errors depend on a seed. Where the
// card gives reference inputs the same Jacobian is formed from the units whose slopes differ
// from a reference's (deepem_errors_delta.cpp, a fraction of the arithmetic); without, where
// the CPU has AVX512-BF16, in bfloat16 (deepem_errors_bf16.cpp); the chain rule and the model
// term are shared.
#include <algorithm>
#include <cmath>
#include <cstring>
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
constexpr int kMaxReferences = 64;               // errors.reference_inputs (~50 kB each)

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

// 16 float lanes (one tile): GCC splits it into the registers each clone has.
typedef float v16 __attribute__((vector_size(64)));
typedef int32_t i16 __attribute__((vector_size(64)));
constexpr double kEmUnit = 1e25;  // EM in units of 1e25 cm^-5: EM / 1e25 = y^2 of the network
// The helpers passing these vectors by value are file-local (never cross a translation unit),
// so GCC's note that their ABI differs without AVX-512 does not apply.
#pragma GCC diagnostic ignored "-Wpsabi"
static_assert(kW == 16, "one v16 per tile row");

#ifdef __SANITIZE_THREAD__
#define FASTINV_ERRORS_CLONES
#else
#define FASTINV_ERRORS_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#endif

v16 load(const float* row) {
  v16 v;
  std::memcpy(&v, row, sizeof(v));
  return v;
}

// act'(pre) from the engine's activation: with a slope >= 0 (from_model checks) act > 0
// exactly where pre > 0, so these are the slopes of the forward pass that was run.
v16 slope_of(const float* act_row, float slope) {
  const v16 zero = {};
  return load(act_row) > zero ? zero + 1.f : zero + slope;
}

// The float32 Jacobian: layer 1's tangents a[k][c] = act1'(k) W1[k][c] s[c], then layer 2's in
// one pass over W2 (the bulk of the work, four rows of W2 at a time) times its slopes, then the
// output layer's, jy[c][t] = (W3 diag(act2') (.))[t]. Every sum runs over k (or h) in order for
// each lane: a pixel's result does not depend on its tile or thread.
FASTINV_ERRORS_CLONES void jacobian_f32(const DeepEmErrorModel& m, const float* a1, const float* a2,
                                        const float (*s)[kW], v16 (*jy)[64]) {
  const int64_t n_h1 = m.n_h1, n_h2 = m.n_h2;
  alignas(64) v16 a[kMaxHidden][kChannels];
  v16 sv[kChannels];
  for (int c = 0; c < kChannels; ++c) sv[c] = load(s[c]);
  for (int64_t k = 0; k < n_h1; ++k) {
    const float* w = m.w1.data() + k * kChannels;
    const v16 d = slope_of(a1 + k * kW, m.slope1);
    for (int c = 0; c < kChannels; ++c) a[k][c] = d * w[c] * sv[c];
  }
  alignas(64) v16 t2[kMaxHidden][kChannels];
  int64_t i = 0;
  constexpr int kRows = 4;  // 24 accumulators: each load of a[k] feeds 24 FMAs
  for (; i + kRows <= n_h2; i += kRows) {
    v16 acc[kRows][kChannels] = {};
    const float* w = m.w2.data() + i * n_h1;
    for (int64_t k = 0; k < n_h1; ++k) {
      for (int r = 0; r < kChannels; ++r) {
        const v16 ak = a[k][r];
        for (int q = 0; q < kRows; ++q) acc[q][r] += w[q * n_h1 + k] * ak;
      }
    }
    for (int q = 0; q < kRows; ++q) {
      const v16 d = slope_of(a2 + (i + q) * kW, m.slope2);
      for (int r = 0; r < kChannels; ++r) t2[i + q][r] = d * acc[q][r];
    }
  }
  for (; i < n_h2; ++i) {
    v16 acc[kChannels] = {};
    const float* w = m.w2.data() + i * n_h1;
    for (int64_t k = 0; k < n_h1; ++k)
      for (int r = 0; r < kChannels; ++r) acc[r] += w[k] * a[k][r];
    const v16 d = slope_of(a2 + i * kW, m.slope2);
    for (int r = 0; r < kChannels; ++r) t2[i][r] = d * acc[r];
  }
  for (int64_t t = 0; t < m.n_t; ++t) {
    v16 acc[kChannels] = {};
    const float* w = m.w3.data() + t * n_h2;
    for (int64_t h = 0; h < n_h2; ++h)
      for (int r = 0; r < kChannels; ++r) acc[r] += w[h] * t2[h][r];
    for (int r = 0; r < kChannels; ++r) jy[r][t] = acc[r];
  }
}

// Number of edges <= x: the cell upper_bound finds, for the few edges of the card's tables.
inline int cell(const std::vector<double>& edges, double x) {
  int n = 0;
  for (double e : edges) n += e <= x;
  return n;
}

// The output Jacobian (J_t . s, jy[c][t]) through the chain rule to EM, total EM and log T,
// with the model's own error in quadrature; NaN where !ok. Total EM, mean log T and their table
// cell in float64 (a cell must not flip on rounding), EM_t's cell exactly by its float edges
// (DeepEmErrorModel::em_edge_floats); the per-bin sums over the six noise
// directions in float32 vectors of the tile's 16 lanes, in units of 1e25 cm^-5 (EM / 1e25 =
// y^2, so d(EM / 1e25) = 2 y dy; the squares of EM itself would overflow float32), rounded to
// ~1e-7 per sum (more for sigma(log T) where its moment's terms cancel; the tests against
// PyTorch's float64 hold). Each lane's sums run in the same order whatever its neighbours.
FASTINV_ERRORS_CLONES void tile_sigmas(const DeepEmErrorModel& m, const float* out_tile, const float (*em)[kW],
                                       const float (*jy)[64][kW], const bool* ok, float (*em_err)[kW], float* logt_err,
                                       float* total_err) {
  constexpr float fnan = std::numeric_limits<float>::quiet_NaN();
  const int64_t nt = m.n_t;
  const size_t nlt = m.logt_edges.size() + 1, nem = m.em_edges.size() + 1;
  double total[kW] = {}, moment[kW] = {};
  for (int64_t t = 0; t < nt; ++t)
    for (int j = 0; j < kW; ++j) {
      total[j] += double(em[t][j]);
      moment[j] += m.logt[size_t(t)] * double(em[t][j]);
    }
  double lt[kW], unit_over_total[kW];
  for (int j = 0; j < kW; ++j) {
    lt[j] = total[j] > 0.0 ? moment[j] / total[j] : std::numeric_limits<double>::quiet_NaN();
    unit_over_total[j] = total[j] > 0.0 ? kEmUnit / total[j] : 0.0;
  }
  const v16 nanv = v16{} + fnan;
  i16 okm = {};  // -1 where ok
  for (int j = 0; j < kW; ++j) okm[j] = ok[j] ? -1 : 0;
  v16 g_total[kChannels] = {}, g_logt[kChannels] = {};
  for (int64_t t = 0; t < nt; ++t) {
    // d(log T mean) / d(EM_t / 1e25) and the model's own variance in EM_t's cell of the card
    alignas(64) float lw[kW], ms2[kW];
    for (int j = 0; j < kW; ++j) lw[j] = float((m.logt[size_t(t)] - lt[j]) * unit_over_total[j]);
    const v16 emv = load(em[t]);
    i16 cells = {};
    for (float e : m.em_edge_floats) cells -= emv >= e;  // a true comparison is -1
    const float* var_t = m.em_var.data() + size_t(t) * nem;
    for (int j = 0; j < kW; ++j) ms2[j] = var_t[cells[j]];
    const v16 dem_dy = 2.f * load(out_tile + t * kW), lwv = load(lw);
    v16 var = {};
    for (int c = 0; c < kChannels; ++c) {
      const v16 d = dem_dy * load(jy[c][t]);
      var += d * d;
      g_total[c] += d;
      g_logt[c] += lwv * d;
    }
    alignas(64) float sum[kW];
    std::memcpy(sum, &var, sizeof(sum));
    for (int j = 0; j < kW; ++j) sum[j] = std::sqrt(sum[j] + ms2[j]);
    const v16 err = float(kEmUnit) * load(sum);
    const v16 masked = okm ? err : nanv;
    std::memcpy(em_err[t], &masked, sizeof(masked));
  }
  v16 var_total = {}, var_logt = {};
  for (int c = 0; c < kChannels; ++c) {
    var_total += g_total[c] * g_total[c];
    var_logt += g_logt[c] * g_logt[c];
  }
  for (int j = 0; j < kW; ++j) {
    const size_t k = size_t(cell(m.total_edges, std::log10(std::max(total[j], 1e-300)))) * nlt +
                     size_t(cell(m.logt_edges, std::isfinite(lt[j]) ? lt[j] : 0.0));
    const double rel = m.total_rel_sigma[k] * total[j] / kEmUnit, ls = m.logt_sigma[k];
    total_err[j] = ok[j] ? float(kEmUnit * std::sqrt(double(var_total[j]) + rel * rel)) : fnan;
    logt_err[j] = ok[j] && std::isfinite(lt[j]) ? float(std::sqrt(double(var_logt[j]) + ls * ls)) : fnan;
  }
}

}  // namespace

DeepEmErrorModel DeepEmErrorModel::from_model(const Model& model, const std::vector<double>& logt,
                                              DeepEmErrorsPrecision precision) {
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
  // the slopes are read from the engine's activations' signs, which a negative slope flips
  if (!(m.slope1 >= 0.f) || !(m.slope2 >= 0.f))
    throw InvalidArgument("DeepEM errors need LeakyReLU negative slopes >= 0");
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
  for (double e : m.em_edges) {
    const double value = std::pow(10.0, e);
    float f = float(value);
    if (double(f) < value) f = std::nextafter(f, std::numeric_limits<float>::infinity());
    m.em_edge_floats.push_back(f);
  }
  for (double sigma : m.em_sigma) {
    const float ms = float(sigma / kEmUnit);
    m.em_var.push_back(ms * ms);
  }
  if (e->find("reference_inputs")) {
    const std::vector<double> refs = numbers(*e, "reference_inputs");
    if (refs.empty() || refs.size() % kChannels != 0 || refs.size() > size_t(kMaxReferences * kChannels))
      throw InvalidArgument("DeepEM card errors.reference_inputs must hold 1 to " + std::to_string(kMaxReferences) +
                            " inputs of six channels' count rates");
    m.delta = pack_errors_delta(m, refs.data(), int(refs.size() / kChannels));
  }
  if (precision == DeepEmErrorsPrecision::bf16 || (precision == DeepEmErrorsPrecision::automatic && !m.delta))
    m.bf16 = pack_errors_bf16(m);
  return m;
}

void deepem_tile_errors(const DeepEmErrorModel& m, const double (*y)[kW], const double (*sigma)[kW],
                        const float* out_tile, const float* a1, const float* a2, const float (*em)[kW], const bool* ok,
                        int lanes, int64_t first, int64_t npix, const DeepEmOutput& output) noexcept {
  // Noise of the network's input x = sqrt(max(I, 0)): sigma / (2 sqrt(I)), with I floored at
  // sigma, where the square root's slope is no longer a fair linearisation.
  alignas(64) float s[kChannels][kW];
  bool real[kW];
  for (int j = 0; j < kW; ++j) real[j] = j < lanes && ok[j];
  for (int c = 0; c < kChannels; ++c)
    for (int j = 0; j < kW; ++j) {
      const double yi = real[j] ? std::max(y[c][j], 0.0) : 0.0, si = real[j] ? sigma[c][j] : 0.0;
      s[c][j] = real[j] ? float(si / (2.0 * std::sqrt(std::max(yi, si)))) : 0.f;
    }
  alignas(64) float jy[kChannels][64][kW];  // n_t <= 64 (deepem_invert validates)
  if (m.bf16)
    jacobian_bf16(m, a1, a2, s, jy);
  else if (m.delta)
    jacobian_delta(m, a1, a2, s, jy);
  else
    jacobian_f32(m, a1, a2, s, reinterpret_cast<v16(*)[64]>(jy));
  alignas(64) float em_err[64][kW];
  float logt_err[kW], total_err[kW];
  tile_sigmas(m, out_tile, em, jy, real, em_err, logt_err, total_err);
  // a full tile's rows with a constant size: vector stores, not a library call per row
  const size_t bytes = size_t(lanes) * sizeof(float);
  if (lanes == kW)
    for (int64_t t = 0; t < m.n_t; ++t) std::memcpy(output.em_err + t * npix + first, em_err[t], sizeof(em_err[t]));
  else
    for (int64_t t = 0; t < m.n_t; ++t) std::memcpy(output.em_err + t * npix + first, em_err[t], bytes);
  std::memcpy(output.logt_err + first, logt_err, bytes);
  std::memcpy(output.total_em_err + first, total_err, bytes);
}

}  // namespace fastinv::dem
