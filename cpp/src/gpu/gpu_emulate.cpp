// CPU emulation of the CUDA kernels' definitions, for tests on machines without a GPU
// (see gpu_plan.hpp). Deliberately plain loops: each mirrors the formula its kernel
// implements (cuda/ops.cu, cuda/fused_mlp.cu), not the kernel's schedule.
#include <cmath>
#include <cstring>
#include <limits>

#include "fastinv/error.hpp"
#include "gpu/gpu_plan.hpp"

namespace fastinv::gpu {


namespace {

float from_bits(uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

}  // namespace

float bf16_value(uint16_t h) { return from_bits(uint32_t(h) << 16); }

void emulate_general(const GeneralPlan& plan, const float* in, int64_t in_rows, float* out, int64_t out_rows,
                     int64_t n) {
  std::vector<float> arena(size_t(plan.arena_rows * n), std::numeric_limits<float>::quiet_NaN());
  auto slot = [&](int k) { return arena.data() + plan.slot_row[size_t(k)] * n; };
  std::memcpy(slot(plan.input_slot), in, size_t(in_rows * n) * sizeof(float));
  for (const Step& st : plan.steps) {
    float* o = slot(st.out);
    const int64_t rows = st.out_shape.size();
    std::vector<float> result(size_t(rows * n));  // kernels never read what they write in one launch
    switch (st.op) {
      case OpKind::conv: {
        const float* x = slot(st.in[0]);
        const int64_t lout = st.out_shape.l;
        for (int64_t lo = 0; lo < lout; ++lo)
          for (int oc = 0; oc < st.m; ++oc)
            for (int64_t p = 0; p < n; ++p) {
              float acc = 0.f;
              for (int j = 0; j < st.kdim; ++j) {
                const int64_t r = st.rows.empty() ? j : st.rows[size_t(lo * st.kdim + j)];
                if (r >= 0) acc = std::fma(st.w[size_t(oc) * st.kdim + j], x[r * n + p], acc);
              }
              result[size_t((lo * st.m + oc) * n + p)] = apply_activation(st.act, acc + st.bias[size_t(oc)]);
            }
        break;
      }
      case OpKind::act: {
        const float* x = slot(st.in[0]);
        for (int64_t e = 0; e < rows * n; ++e) result[size_t(e)] = apply_activation(st.act, x[e]);
        break;
      }
      case OpKind::maxpool:
      case OpKind::avgpool: {
        const float* x = slot(st.in[0]);
        const int c = int(st.out_shape.c), lin = int(st.in_shape[0].l);
        for (int64_t r = 0; r < rows; ++r) {
          const int lo = int(r / c), ch = int(r % c), start = lo * st.stride - st.pad;
          const int lo_valid = std::max(start, 0), hi_valid = std::min(start + st.kernel, lin);
          for (int64_t p = 0; p < n; ++p) {
            float acc;
            if (st.op == OpKind::maxpool) {
              acc = -std::numeric_limits<float>::infinity();
              for (int q = lo_valid; q < hi_valid; ++q) {
                const float v = x[(int64_t(q) * c + ch) * n + p];
                if (v > acc || std::isnan(v)) acc = v;
              }
            } else {
              acc = 0.f;
              for (int q = lo_valid; q < hi_valid; ++q) acc += x[(int64_t(q) * c + ch) * n + p];
              const int padded_end = std::min(start + st.kernel, lin + st.pad);
              acc /= float(st.count_include_pad ? padded_end - start : hi_valid - lo_valid);
            }
            result[size_t(r * n + p)] = acc;
          }
        }
        break;
      }
      case OpKind::affine: {
        const float* x = slot(st.in[0]);
        const int64_t c = st.out_shape.c;
        for (int64_t r = 0; r < rows; ++r)
          for (int64_t p = 0; p < n; ++p)
            result[size_t(r * n + p)] = x[r * n + p] * st.scale[size_t(r % c)] + st.shift[size_t(r % c)];
        break;
      }
      case OpKind::add: {
        for (int64_t e = 0; e < rows * n; ++e) result[size_t(e)] = slot(st.in[0])[e] + slot(st.in[1])[e];
        for (size_t i = 2; i < st.in.size(); ++i)
          for (int64_t e = 0; e < rows * n; ++e) result[size_t(e)] += slot(st.in[i])[e];
        break;
      }
      case OpKind::flatten:
      case OpKind::concat: {
        std::vector<bool> written(size_t(rows), false);
        for (size_t i = 0; i < st.in.size(); ++i) {
          const float* x = slot(st.in[i]);
          for (int64_t r = 0; r < st.in_shape[i].size(); ++r) {
            const int32_t d = st.maps[i][size_t(r)];
            if (d < 0 || d >= rows || written[size_t(d)]) throw Error("emulate: bad row map");
            written[size_t(d)] = true;
            std::memcpy(&result[size_t(d * n)], x + r * n, size_t(n) * sizeof(float));
          }
        }
        for (bool w : written)
          if (!w) throw Error("emulate: row map leaves an output row unwritten");
        break;
      }
    }
    std::memcpy(o, result.data(), result.size() * sizeof(float));
  }
  std::memcpy(out, slot(plan.output_slot), size_t(out_rows * n) * sizeof(float));
}

std::vector<float> decode_fused_weights(const uint32_t* words, int mpad, int kpad, Precision p) {
  const int64_t cw = chunk_words(p);
  std::vector<float> w(size_t(mpad) * kpad, std::numeric_limits<float>::quiet_NaN());
  const int nkc = kpad / kChunkDepth;
  for (int mc = 0; mc < mpad / kChunkRows; ++mc)
    for (int kc = 0; kc < nkc; ++kc) {
      const uint32_t* ch = words + size_t(mc * nkc + kc) * size_t(cw);
      const int r0 = mc * kChunkRows, c0 = kc * kChunkDepth;
      auto W = [&](int r, int c) -> float& { return w[size_t(r) * kpad + c]; };
      if (p == Precision::fp32) {
        for (int d = 0; d < kChunkDepth; ++d)
          for (int r = 0; r < kChunkRows; ++r) W(r0 + r, c0 + d) = from_bits(ch[d * kChunkRows + r]);
        continue;
      }
      const int kts = p == Precision::tf32 ? 4 : 2;
      for (int mt = 0; mt < 4; ++mt)
        for (int kt = 0; kt < kts; ++kt)
          for (int lane = 0; lane < 32; ++lane) {
            const int g = lane >> 2, t = lane & 3, r = r0 + mt * 16 + g;
            const uint32_t* f = ch + ((mt * kts + kt) * 32 + lane) * 4;
            if (p == Precision::tf32) {  // mma.m16n8k8 A: a0 (g, t) a1 (g+8, t) a2 (g, t+4) a3 (g+8, t+4)
              const int c = c0 + kt * 8 + t;
              W(r, c) = from_bits(f[0]);
              W(r + 8, c) = from_bits(f[1]);
              W(r, c + 4) = from_bits(f[2]);
              W(r + 8, c + 4) = from_bits(f[3]);
            } else {  // mma.m16n8k16 A: pairs (2t, 2t+1) of rows g, g+8, then columns + 8
              const int c = c0 + kt * 16 + 2 * t;
              const int rr[4] = {r, r + 8, r, r + 8}, cc[4] = {c, c, c + 8, c + 8};
              for (int i = 0; i < 4; ++i) {
                W(rr[i], cc[i]) = bf16_value(uint16_t(f[i] & 0xFFFFu));
                W(rr[i], cc[i] + 1) = bf16_value(uint16_t(f[i] >> 16));
              }
            }
          }
    }
  for (float v : w)
    if (std::isnan(v)) throw Error("decode_fused_weights: a weight position is not covered by the packed fragments");
  return w;
}

void emulate_fused(const FusedPlan& plan, Precision p, const float* in, float* out, int64_t n) {
  if (!plan.ok) throw InvalidArgument("emulate_fused: the graph has no fused plan");
  auto store = [&](float v) { return p == Precision::bf16 ? bf16_value(bf16_bits(v)) : v; };
  std::vector<float> cur(size_t(plan.rows * n), 0.f), next(size_t(plan.rows * n), 0.f);
  const FusedLayer& first = plan.layers[0];
  for (int r = 0; r < first.kpad; ++r)
    for (int64_t q = 0; q < n; ++q) cur[size_t(r * n + q)] = r < first.k ? store(in[r * n + q]) : 0.f;
  for (size_t li = 0; li < plan.layers.size(); ++li) {
    const FusedLayer& L = plan.layers[li];
    const bool last = li + 1 == plan.layers.size();
    const std::vector<float> w =
        decode_fused_weights(plan.words.data() + L.w_offset, L.mpad, L.kpad, p);
    const float* bias = plan.biases.data() + L.bias_offset;
    for (int o = 0; o < L.mpad; ++o)
      for (int64_t q = 0; q < n; ++q) {
        float acc = 0.f;
        for (int k = 0; k < L.kpad; ++k) {
          const float x = cur[size_t(k * n + q)];
          acc = std::fma(w[size_t(o) * L.kpad + k], p == Precision::tf32 ? tf32_round(x) : x, acc);
        }
        const float v = o < L.m ? apply_activation(L.act, acc + bias[o]) : 0.f;
        if (last) {
          if (o < L.m) out[o * n + q] = v;
        } else {
          next[size_t(o * n + q)] = store(v);
        }
      }
    std::swap(cur, next);
  }
}

}  // namespace fastinv::gpu
