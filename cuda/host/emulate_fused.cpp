// The fused kernel (cuda/fused_mlp.cu) executed on the CPU through its own index math
// (cuda/fused_index.hpp): each block's tiles in the kernel's order, the cp.async weight
// stages, every thread of every warp, and the mma instructions as the PTX ISA defines
// them ("Matrix Fragments for mma.m16n8k8" / "mma.m16n8k16 with floating point type":
// which lane holds which A, B, C/D element is written out here independently of the
// kernel's addressing). Copies complete at once, so the stage of chunk c + 1 is written
// before chunk c is read: a stage-index mistake that a slow copy would hide on a device
// shows here every time.
//
// The ldmatrix variant (cuda/fused_ldmatrix.hpp) is walked the same way: every lane's row
// address comes from the kernel's function, and the instruction is modelled as the PTX ISA
// defines it (section "Warp-level matrix load instruction: ldmatrix": 9.7.14.5.15 in PTX ISA
// 9.0, 9.7.13.4.15 in 8.0): for .x4, threads 8 i .. 8 i + 7 supply addr of rows 0-7 of
// matrix i (.x1: threads 0-7, .x2: threads 0-15), each the start of a 16-byte row; "a group
// of four threads loads an entire row" (the figure "ldmatrix fragment layout for one 8x8
// Matrix with 16-bit elements"): lane l receives, in destination register i, row l / 4,
// elements 2 (l % 4) and 2 (l % 4) + 1 (the lower in the low half); with .trans the matrix
// is loaded column-major, so lane l receives column l / 4, rows 2 (l % 4) and 2 (l % 4) + 1.
// Its epilogue runs fused::activate<KIND> (cuda/fused_activation.hpp), the kernel's own code.
#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "fastinv/error.hpp"
#include "fused_activation.hpp"
#include "fused_index.hpp"
#include "fused_ldmatrix.hpp"
#include "host/emulate.hpp"
#include "host/emulate_warp.hpp"

namespace fastinv::cuda {
namespace {

using fused::kThreads;

using emu::fail, emu::ldmatrix_x4, emu::Shared, emu::WarpMma;

template <Precision P, int TILE, bool LDM>
class Block {
 public:
  static constexpr int LD = fused::ld<TILE>();
  static constexpr int kN = 4 * (TILE / 16);  // accumulators per thread (fused_mlp.cu: Acc)

  Block(const FusedArgs& a, int64_t smem, int64_t in_extent, int64_t out_extent)
      : a_(a),
        s_(smem),
        in_extent_(in_extent),
        out_extent_(out_extent),
        buf_words_(LDM ? fused::ldm::buffer_words<P, TILE>(a.rows) : fused::buffer_words(P, a.rows, LD)),
        cw_(int(chunk_words(P))),
        acc_(size_t(kThreads * kN)) {}

  void run_tile(int64_t tile) {
    const int64_t p0 = tile * TILE;
    const int valid = fused::tile_valid(a_.npix, p0, TILE);
    emu::stage_input<TILE>(a_, p0, valid, kThreads, in_extent_,
                           [&](int r, int p, float v) { store_act(fused::buffer_offset(0, buf_words_), r, p, v); });
    for (int l = 0; l < a_.nlayers; ++l) {
      const FusedLayerArgs& L = a_.layers[l];
      const int src = fused::buffer_offset(l, buf_words_), dst = fused::buffer_offset(l + 1, buf_words_);
      const bool last = l == a_.nlayers - 1;
      const int nkc = L.kpad / fused::kDepth, nchunks = (L.mpad / fused::kRows) * nkc;
      written_.assign(size_t(L.mpad) * TILE, 0);
      issue(L, 0);
      for (int mc = 0; mc < L.mpad / fused::kRows; ++mc) {
        std::fill(acc_.begin(), acc_.end(), 0.f);
        for (int kc = 0; kc < nkc; ++kc) {
          const int c = fused::chunk_index(mc, kc, nkc);
          if (c + 1 < nchunks) issue(L, c + 1);
          chunk(fused::stage_offset(c, buf_words_, cw_), src, kc);
        }
        if constexpr (LDM)
          fused::with_activation(L.act.kind, [&](auto act) {
            epilogue(L, mc, dst, last, p0, valid,
                     [&](float x) { return fused::activate<decltype(act)::kind>(L.act, x); });
          });
        else
          epilogue(L, mc, dst, last, p0, valid, [act = host_act(L.act)](float x) { return apply_activation(act, x); });
      }
      for (size_t i = 0; i < written_.size(); ++i)
        if (written_[i] != 1)
          fail("layer " + std::to_string(l) + " wrote row " + std::to_string(i / TILE) + ", column " +
               std::to_string(i % TILE) + " of its tile " + std::to_string(written_[i]) + " times");
    }
  }

 private:
  void store_act(int buf, int row, int col, float v) {
    const int slot = LDM ? fused::ldm::act_slot<P, TILE>(row, col, a_.rows) : fused::act_slot<P>(row, col, LD);
    if (P == Precision::bf16)
      s_.set_h(2 * int64_t(buf) + slot, bf16_bits(v));
    else
      s_.set_f(buf + slot, v);
  }

  // cp.async of chunk c: thread tid copies 16-byte pieces tid, tid + kThreads, ...
  void issue(const FusedLayerArgs& L, int c) {
    const uint32_t* g = L.w + fused::chunk_word(c, cw_);
    const int s = fused::stage_offset(c, buf_words_, cw_);
    s_.aligned(s, 4, "cp.async destination");
    for (int tid = 0; tid < kThreads; ++tid)
      for (int i = tid; i < cw_ / 4; i += kThreads)
        for (int q = 0; q < 4; ++q) s_.word(s + i * 4 + q) = g[i * 4 + q];
  }

  void chunk(int stage, int src, int kc) {
    if constexpr (LDM) {
      ldm_chunk(stage, src, kc);
    } else if constexpr (P == Precision::fp32) {
      constexpr int NC = TILE / 16;
      for (int tid = 0; tid < kThreads; ++tid) {
        const fused::SimtThread th = fused::simt_thread(tid);
        float* acc = &acc_[size_t(tid * kN)];
        for (int d = 0; d < fused::kDepth; ++d) {
          const int wa = stage + fused::simt_w(d, th.tm), xa = src + fused::simt_x<TILE>(kc, d, th.tn, LD);
          s_.aligned(wa, 4, "float4 weight load");
          s_.aligned(xa, NC % 4 == 0 ? 4 : 2, "vector activation load");
          for (int i = 0; i < 4; ++i)
            for (int q = 0; q < NC; ++q) {
              float& c = acc[fused::simt_acc<TILE>(i, q)];
              c = std::fma(s_.f(wa + i), s_.f(xa + q), c);
            }
        }
      }
    } else {
      for (int warp = 0; warp < kThreads / 32; ++warp)
        for (int kt = 0; kt < fused::k_steps<P>(); ++kt)
          for (int j = 0; j < TILE / 16; ++j) {
            WarpMma mma;
            for (int lane = 0; lane < 32; ++lane) load_lane(mma, warp * 32 + lane, stage, src, kc, kt, j);
            mma.run(P == Precision::tf32 ? 8 : 16);
            for (int lane = 0; lane < 32; ++lane)
              for (int q = 0; q < 4; ++q)
                acc_[size_t((warp * 32 + lane) * kN + fused::mma_acc(j, q))] = mma.cd(lane, q);
          }
    }
  }

  // The ldmatrix variant: per k-step and pair of n8 tiles, one ldmatrix.x4 per warp (row
  // addresses from the kernel's function), its registers routed to (tile, B register) by
  // the kernel's functions, then the two mma of the pair.
  void ldm_chunk(int stage, int src, int kc) {
    constexpr int kHalvesPerElement = P == Precision::bf16 ? 1 : 2;
    for (int warp = 0; warp < kThreads / 32; ++warp)
      for (int kt = 0; kt < fused::k_steps<P>(); ++kt)
        for (int jj = 0; jj < TILE / 32; ++jj) {
          int64_t row_half[32];
          for (int lane = 0; lane < 32; ++lane) {
            const fused::MmaLane m = fused::mma_lane(warp * 32 + lane);
            row_half[lane] = 2 * int64_t(src) +
                             kHalvesPerElement * int64_t(fused::ldm::b_row_address<P, TILE>(m, kc, kt, jj, a_.rows));
          }
          uint32_t reg[32][4];
          ldmatrix_x4(s_, row_half, P == Precision::bf16, reg);
          WarpMma mma[2];
          for (WarpMma& w : mma)
            for (auto& row : w.b)
              for (float& v : row) v = std::nanf("");
          for (int lane = 0; lane < 32; ++lane) {
            const int tid = warp * 32 + lane;
            for (int h = 0; h < 2; ++h) load_a(mma[h], tid, stage, kt, 2 * jj + h);
            for (int q = 0; q < 4; ++q) {
              const int h = fused::ldm::b_tile(jj, q) - 2 * jj;
              if (h < 0 || h > 1) fail("ldmatrix register " + std::to_string(q) + " routed outside its tile pair");
              mma[h].set_b<P>(lane, fused::ldm::b_reg(q), reg[lane][q]);
            }
          }
          for (int h = 0; h < 2; ++h) {
            mma[h].run(P == Precision::tf32 ? 8 : 16);
            for (int lane = 0; lane < 32; ++lane)
              for (int q = 0; q < 4; ++q)
                acc_[size_t((warp * 32 + lane) * kN + fused::mma_acc(2 * jj + h, q))] = mma[h].cd(lane, q);
          }
        }
  }

  // A fragment and accumulators of n8 tile j for one lane (as load_lane, without B).
  void load_a(WarpMma& mma, int tid, int stage, int kt, int j) {
    const fused::MmaLane m = fused::mma_lane(tid);
    for (int q = 0; q < 4; ++q) mma.cd(m.lane, q) = acc_[size_t(tid * kN + fused::mma_acc(j, q))];
    mma.set_a<P>(s_, m.lane, stage + 4 * fused::a_fragment<P>(m.wm, kt, m.lane));
  }

  // One lane's registers for the warp's mma: A (uint4) and B (2 x 32 bits) read where the
  // kernel reads them, placed where the PTX ISA says that lane's registers go.
  void load_lane(WarpMma& mma, int tid, int stage, int src, int kc, int kt, int j) {
    const int lane = tid % 32, g = lane / 4, t = lane % 4;
    const fused::MmaLane m = fused::mma_lane(tid);
    mma.set_a<P>(s_, lane, stage + 4 * fused::a_fragment<P>(m.wm, kt, m.lane));
    const int n = fused::b_col<TILE>(m, j);
    for (int q = 0; q < 4; ++q) mma.cd(lane, q) = acc_[size_t(tid * kN + fused::mma_acc(j, q))];
    if constexpr (P == Precision::tf32) {  // B: b0 (t, g), b1 (t + 4, g)
      mma.b[t][g] = tf32_round(s_.f(src + fused::b_index<P>(kc, kt, m.t, 0, n, LD)));
      mma.b[t + 4][g] = tf32_round(s_.f(src + fused::b_index<P>(kc, kt, m.t, 1, n, LD)));
    } else {  // B register i: rows 2t, 2t + 1 (+8 for i = 1), column g
      for (int i = 0; i < 2; ++i) {
        const uint32_t w = s_.word(src + fused::b_index<P>(kc, kt, m.t, i, n, LD));
        mma.b[2 * t + 8 * i][g] = bf16_value(uint16_t(w & 0xFFFFu));
        mma.b[2 * t + 8 * i + 1][g] = bf16_value(uint16_t(w >> 16));
      }
    }
  }

  template <typename Act>
  void epilogue(const FusedLayerArgs& L, int mc, int dst, bool last, int64_t p0, int valid, Act&& activate) {
    auto put = [&](int row, int col, float acc) {
      if (row < 0 || row >= L.mpad || col < 0 || col >= TILE)
        fail("epilogue element (" + std::to_string(row) + ", " + std::to_string(col) + ") outside the layer's tile");
      ++written_[size_t(row) * TILE + col];
      const bool real = row < L.m;
      const float v = real ? activate(acc + L.bias[row]) : 0.f;
      if (last) {
        if (!fused::output_written(row, col, L.m, valid)) return;
        const int64_t o = fused::out_index(a_, row, p0, col);
        if (o < 0 || (out_extent_ >= 0 && o >= out_extent_))
          fail("output element " + std::to_string(o) + " out of range");
        a_.out[o] = v;
      } else {
        store_act(dst, row, col, v);
      }
    };
    for (int tid = 0; tid < kThreads; ++tid) {
      const float* acc = &acc_[size_t(tid * kN)];
      if constexpr (P == Precision::fp32) {
        const fused::SimtThread th = fused::simt_thread(tid);
        for (int i = 0; i < 4; ++i)
          for (int q = 0; q < TILE / 16; ++q)
            put(fused::simt_row(th, mc, i), fused::simt_col<TILE>(th, q), acc[fused::simt_acc<TILE>(i, q)]);
      } else {
        const fused::MmaLane m = fused::mma_lane(tid);
        for (int j = 0; j < TILE / 16; ++j)
          for (int q = 0; q < 4; ++q)
            put(fused::mma_row(m, mc, q), fused::mma_col<TILE>(m, j, q), acc[fused::mma_acc(j, q)]);
      }
    }
  }

  const FusedArgs& a_;
  Shared s_;
  int64_t in_extent_, out_extent_;
  int buf_words_, cw_;
  std::vector<float> acc_;  // [thread][kN], the registers of Acc
  std::vector<int> written_;
};

template <Precision P, int TILE, bool LDM>
void launch(const FusedArgs& a, int grid, int64_t smem, int64_t in_extent, int64_t out_extent) {
  const int64_t ntiles = fused::tile_count(a.npix, TILE);
  const int64_t blocks = std::min<int64_t>(grid, ntiles);
  for (int64_t b = 0; b < blocks; ++b) {
    Block<P, TILE, LDM> block(a, smem, in_extent, out_extent);  // fresh (NaN) shared memory per block
    for (int64_t tile = b; tile < ntiles; tile += blocks) block.run_tile(tile);
  }
}

template <Precision P, bool LDM = false>
void launch_tile(const FusedArgs& a, int tile, int grid, int64_t smem, int64_t in_extent, int64_t out_extent) {
  switch (tile) {
    case 32:
      return launch<P, 32, LDM>(a, grid, smem, in_extent, out_extent);
    case 64:
      return launch<P, 64, LDM>(a, grid, smem, in_extent, out_extent);
    case 128:
      return launch<P, 128, LDM>(a, grid, smem, in_extent, out_extent);
  }
  throw InvalidArgument("emulate_fused_launch: tile must be 32, 64 or 128");
}

}  // namespace

void emulate_fused_launch(const FusedArgs& a, Precision p, int tile, int grid, int64_t smem_bytes, int64_t in_extent,
                          int64_t out_extent, FusedKernel kernel) {
  if (a.npix <= 0) return;
  if (grid < 1) throw InvalidArgument("emulate_fused_launch: grid must be >= 1");
  if (kernel == FusedKernel::pipeline && p != Precision::fp32)
    return emulate_pipeline_launch(a, p, tile, grid, smem_bytes, in_extent, out_extent);
  const bool ldm = kernel == FusedKernel::ldmatrix;  // fp32 runs the default kernel either way
  switch (p) {
    case Precision::fp32:
      return launch_tile<Precision::fp32>(a, tile, grid, smem_bytes, in_extent, out_extent);
    case Precision::tf32:
      return ldm ? launch_tile<Precision::tf32, true>(a, tile, grid, smem_bytes, in_extent, out_extent)
                 : launch_tile<Precision::tf32>(a, tile, grid, smem_bytes, in_extent, out_extent);
    case Precision::bf16:
      return ldm ? launch_tile<Precision::bf16, true>(a, tile, grid, smem_bytes, in_extent, out_extent)
                 : launch_tile<Precision::bf16>(a, tile, grid, smem_bytes, in_extent, out_extent);
  }
}

int emulate_fused(const FusedPlan& plan, Precision p, const float* in, int64_t in_ld, float* out, int64_t out_ld,
                  int64_t n, int tile, int grid, int64_t smem_optin, FusedKernel kernel) {
  if (!plan.ok) throw InvalidArgument("emulate_fused: the graph has no fused plan");
  if (tile == 0) tile = fused_pick_tile(p, plan.rows, smem_optin, kernel);
  if (tile == 0) throw InvalidArgument("emulate_fused: no tile fits " + std::to_string(smem_optin) + " bytes");
  FusedArgs a = fused_args(plan, plan.words.data(), plan.biases.data());
  a.in = in;
  a.in_ld = in_ld;
  a.out = out;
  a.out_ld = out_ld;
  a.npix = n;
  const int64_t k = plan.layers.front().k, m = plan.layers.back().m;
  emulate_fused_launch(a, p, tile, grid, fused_smem_bytes(p, tile, plan.rows, kernel), (k - 1) * in_ld + n,
                       (m - 1) * out_ld + n, kernel);
  return tile;
}

}  // namespace fastinv::cuda
