// The pieces of the fused kernel's CPU emulation that every variant shares
// (cuda/host/emulate_fused.cpp, emulate_pipeline.cpp): one block's bounds-checked,
// NaN-filled shared memory, the staging of a tile's input, one warp's mma as the PTX ISA
// assigns its fragments to lanes, and ldmatrix.x4 as the PTX ISA defines it (sources in
// emulate_fused.cpp's header comment).
#pragma once
#include <cmath>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "fastinv/error.hpp"
#include "fused_index.hpp"
#include "host/pack.hpp"

namespace fastinv::cuda::emu {

constexpr uint32_t kPoison = 0xFFFFFFFFu;  // NaN as a float and as both bf16 halves

inline float as_float(uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}
inline uint32_t as_bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}

[[noreturn]] inline void fail(const std::string& what) { throw Error("emulated fused kernel: " + what); }

// One block's shared memory, every access bounds-checked (a device would silently read
// another buffer or fault later).
class Shared {
 public:
  explicit Shared(int64_t bytes) : w_(size_t(bytes / 4), kPoison) {}
  uint32_t& word(int64_t i) {
    if (i < 0 || i >= int64_t(w_.size()))
      fail("shared-memory word " + std::to_string(i) + " outside the block's " + std::to_string(w_.size()));
    return w_[size_t(i)];
  }
  float f(int64_t i) { return as_float(word(i)); }
  void set_f(int64_t i, float v) { word(i) = as_bits(v); }
  uint16_t h(int64_t i) {
    const uint32_t w = word(i >> 1);
    return uint16_t((i & 1) ? w >> 16 : w & 0xFFFFu);
  }
  void set_h(int64_t i, uint16_t v) {
    uint32_t& w = word(i >> 1);
    w = (i & 1) ? (w & 0xFFFFu) | (uint32_t(v) << 16) : (w & 0xFFFF0000u) | v;
  }
  void aligned(int64_t i, int words, const char* what) {
    if (i % words)
      fail(std::string(what) + " at shared word " + std::to_string(i) + " is not " + std::to_string(4 * words) +
           "-byte aligned");
  }

 private:
  std::vector<uint32_t> w_;
};

// The kernels' staging of the input tile at pixel p0 (fused_index.hpp's input_row / _col /
// _read / in_index): thread tid of `threads` hands store(row, col, value) the elements tid,
// tid + threads, ... of layer 0's kpad x TILE block, 0 outside the k rows and the valid
// pixels. Every global read is checked against in_extent elements (< 0: unknown).
template <int TILE, class Store>
void stage_input(const FusedArgs& a, int64_t p0, int valid, int threads, int64_t in_extent, Store&& store) {
  const FusedLayerArgs& L0 = a.layers[0];
  for (int tid = 0; tid < threads; ++tid)
    for (int e = tid; e < L0.kpad * TILE; e += threads) {
      const int r = fused::input_row(e, TILE), p = fused::input_col(e, TILE);
      float v = 0.f;
      if (fused::input_read(r, p, L0.k, valid)) {
        const int64_t i = fused::in_index(a, r, p0, p);
        if (i < 0 || (in_extent >= 0 && i >= in_extent)) fail("input element " + std::to_string(i) + " out of range");
        v = a.in[i];
      }
      store(r, p, v);
    }
}

// D = A (16 x K) * B (K x 8) + C for one warp, fragments as the PTX ISA assigns them to
// lanes (g = lane / 4, t = lane % 4). The products are exact in float (tf32 x tf32 and
// bf16 x bf16 fit in 24 bits); they are summed in double and rounded once per mma.
struct WarpMma {
  float a[16][16], b[16][8], c[16][8];
  void run(int kdim) {
    for (int r = 0; r < 16; ++r)
      for (int n = 0; n < 8; ++n) {
        double s = c[r][n];
        for (int k = 0; k < kdim; ++k) s += double(a[r][k]) * double(b[k][n]);
        c[r][n] = float(s);
      }
  }
  // C/D: c0 (g, 2t), c1 (g, 2t + 1), c2 (g + 8, 2t), c3 (g + 8, 2t + 1)
  float& cd(int lane, int q) { return c[lane / 4 + 8 * (q >> 1)][2 * (lane % 4) + (q & 1)]; }
  // The A fragment (uint4 at shared word af) of a lane: tf32 a0 (g, t), a1 (g + 8, t), a2
  // (g, t + 4), a3 (g + 8, t + 4); bf16 register i: row g (+8 for i odd), columns 2t, 2t + 1
  // (+8 for i >= 2), the lower column in the low half.
  template <Precision P>
  void set_a(Shared& s, int lane, int64_t af) {
    const int g = lane / 4, t = lane % 4;
    s.aligned(af, 4, "A fragment load");
    if constexpr (P == Precision::tf32) {
      a[g][t] = s.f(af);
      a[g + 8][t] = s.f(af + 1);
      a[g][t + 4] = s.f(af + 2);
      a[g + 8][t + 4] = s.f(af + 3);
    } else {
      for (int i = 0; i < 4; ++i) {
        const uint32_t w = s.word(af + i);
        const int r = g + 8 * (i & 1), c = 2 * t + 8 * (i >> 1);
        a[r][c] = bf16_value(uint16_t(w & 0xFFFFu));
        a[r][c + 1] = bf16_value(uint16_t(w >> 16));
      }
    }
  }
  // B register `reg` of a lane, as the PTX ISA places it: tf32 (m16n8k8) b0 (t, g), b1
  // (t + 4, g); bf16 (m16n8k16) register i holds rows 2t, 2t + 1 (+8 for i = 1), column g.
  template <Precision P>
  void set_b(int lane, int reg, uint32_t w) {
    const int g = lane / 4, t = lane % 4;
    if constexpr (P == Precision::tf32) {
      float f;
      std::memcpy(&f, &w, 4);
      b[t + 4 * reg][g] = tf32_round(f);
    } else {
      b[2 * t + 8 * reg][g] = bf16_value(uint16_t(w & 0xFFFFu));
      b[2 * t + 8 * reg + 1][g] = bf16_value(uint16_t(w >> 16));
    }
  }
};

// ldmatrix.sync.aligned.m8n8.x4[.trans].shared.b16 for one warp: `row_half[l]` is the
// 16-bit shared index lane l supplies; returns each lane's four destination registers.
inline void ldmatrix_x4(Shared& s, const int64_t (&row_half)[32], bool trans, uint32_t (&reg)[32][4]) {
  uint16_t mat[4][8][8];
  for (int i = 0; i < 4; ++i)
    for (int r = 0; r < 8; ++r) {
      const int64_t h = row_half[8 * i + r];
      if (h % 8) fail("ldmatrix row address at shared byte " + std::to_string(2 * h) + " is not 16-byte aligned");
      for (int c = 0; c < 8; ++c) mat[i][r][c] = s.h(h + c);
    }
  for (int l = 0; l < 32; ++l)
    for (int i = 0; i < 4; ++i) {
      const int a = l / 4, b = 2 * (l % 4);
      const uint16_t lo = trans ? mat[i][b][a] : mat[i][a][b], hi = trans ? mat[i][b + 1][a] : mat[i][a][b + 1];
      reg[l][i] = uint32_t(lo) | (uint32_t(hi) << 16);
    }
}

}  // namespace fastinv::cuda::emu
