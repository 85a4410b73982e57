// The fused kernel's pipeline variant (cuda/fused_pipeline.cu) executed on
// the CPU through its own index math and schedule (cuda/fused_pipeline.hpp): each block's
// weight stream, its cp.async ring, every warp tile, and the mma / ldmatrix instructions as
// the PTX ISA defines them (host/emulate_warp.hpp).
//
// A CPU runs one thread at a time, so an ordering mistake would not change its numbers by
// itself. Ordering therefore models what a device may do between barriers:
//  * cp.async (PTX ISA "cp.async", "cp.async.commit_group", "cp.async.wait_group"): a copy
//    into a stage poisons the stage at once (a device may have overwritten any part of it)
//    and its data arrive only when its commit group completes; wait_group N completes all
//    but the newest N groups; the data become visible to the other warps only at the next
//    barrier. A warp that reads a stage whose copy has not completed, or completed without a
//    barrier since, fails (and would read NaN);
//  * a copy into a stage that warps read since the last barrier fails (they may still be
//    reading it), as does a second copy into a stage whose first is still in flight;
//  * an activation buffer written and read in the same barrier interval fails (the next
//    tile's input copy over a buffer the last layer still reads, an epilogue over the
//    buffer of the layer in progress).
#include <algorithm>
#include <cmath>
#include <deque>
#include <string>
#include <utility>
#include <vector>

#include "fused_activation.hpp"
#include "fused_pipeline.hpp"
#include "host/emulate.hpp"
#include "host/emulate_warp.hpp"

namespace fastinv::cuda {
namespace {

using emu::fail, emu::ldmatrix_x4, emu::Shared, emu::WarpMma;
namespace pipe = fused::pipe;

class Ordering {
 public:
  Ordering(Shared& s, int buf_words, int chunk_words)
      : s_(s), buf_words_(buf_words), cw_(chunk_words), stage_(pipe::kStages, State::empty), read_(pipe::kStages, -1) {}

  void barrier() {
    ++epoch_;
    for (State& st : stage_)
      if (st == State::landed) st = State::visible;
  }

  // cp.async of one chunk (chunk_words words from g) into stage st.
  void copy(int st, const uint32_t* g) {
    if (stage_[size_t(st)] == State::in_flight)
      fail("stage " + std::to_string(st) + " recycled while an earlier copy into it is still in flight");
    if (read_[size_t(st)] == epoch_)
      fail("stage " + std::to_string(st) + " overwritten by cp.async in the barrier interval in which warps read it");
    const int64_t w0 = pipe::stage_offset(st, buf_words_, cw_);
    s_.aligned(w0, 4, "cp.async destination");
    for (int i = 0; i < cw_; ++i) s_.word(w0 + i) = emu::kPoison;
    stage_[size_t(st)] = State::in_flight;
    open_.emplace_back(st, std::vector<uint32_t>(g, g + cw_));
  }
  void commit() {
    groups_.push_back(std::move(open_));
    open_.clear();
  }
  void wait(int newest_pending) {
    while (int(groups_.size()) > newest_pending) {
      for (auto& [st, data] : groups_.front()) {
        const int64_t w0 = pipe::stage_offset(st, buf_words_, cw_);
        for (int i = 0; i < cw_; ++i) s_.word(w0 + i) = data[size_t(i)];
        stage_[size_t(st)] = State::landed;
      }
      groups_.pop_front();
    }
  }
  void read_stage(int st) {
    if (st < 0 || st >= pipe::kStages) fail("stage " + std::to_string(st) + " outside the ring");
    const State s = stage_[size_t(st)];
    if (s != State::visible)
      fail("stage " + std::to_string(st) + " read " +
           (s == State::in_flight ? "before its cp.async group completed"
            : s == State::landed  ? "after its cp.async group completed but before a barrier made it visible"
                                  : "before anything was copied into it"));
    read_[size_t(st)] = epoch_;
  }
  void read_buffer(int b) {
    if (buf_written_[b] == epoch_) fail("activation buffer " + std::to_string(b) + " read where it was written");
    buf_read_[b] = epoch_;
  }
  void write_buffer(int b) {
    if (buf_read_[b] == epoch_) fail("activation buffer " + std::to_string(b) + " written while warps may read it");
    buf_written_[b] = epoch_;
  }

 private:
  enum class State { empty, in_flight, landed, visible };
  Shared& s_;
  int buf_words_, cw_;
  int64_t epoch_ = 0;
  std::vector<State> stage_;
  std::vector<int64_t> read_;
  int64_t buf_read_[2] = {-1, -1}, buf_written_[2] = {-1, -1};
  using Group = std::vector<std::pair<int, std::vector<uint32_t>>>;
  Group open_;
  std::deque<Group> groups_;
};

template <Precision P, int TILE>
class PipeBlock {
 public:
  static constexpr int NW = pipe::warps<TILE>(), NT = pipe::threads<TILE>();

  PipeBlock(const FusedArgs& a, int64_t smem, int64_t in_extent, int64_t out_extent)
      : a_(a),
        s_(smem),
        in_extent_(in_extent),
        out_extent_(out_extent),
        bw_(fused::ldm::buffer_words<P, TILE>(a.rows)),
        cw_(int(chunk_words(P))),
        order_(s_, bw_, cw_),
        acc_(size_t(NW * 32 * pipe::kAcc)) {}

  // The kernel's loop for block `block` of `grid`, statement by statement.
  void run(int64_t block, int64_t grid) {
    const int64_t ntiles = fused::tile_count(a_.npix, TILE);
    per_tile_ = pipe::tile_chunks(a_);
    total_ = pipe::block_tiles(ntiles, block, grid) * per_tile_;
    for (int i = 0; i < pipe::prefetch_distance(); ++i) issue(i);
    int64_t pos = 0;
    for (int64_t tile = block; tile < ntiles; tile += grid) {
      const int64_t p0 = tile * TILE;
      const int valid = fused::tile_valid(a_.npix, p0, TILE);
      order_.barrier();
      order_.write_buffer(buffer_id(0));
      emu::stage_input<TILE>(a_, p0, valid, NT, in_extent_,
                             [&](int r, int p, float v) { store_act(fused::buffer_offset(0, bw_), r, p, v); });
      for (int l = 0; l < a_.nlayers; ++l) {
        const FusedLayerArgs& L = a_.layers[l];
        const int src = fused::buffer_offset(l, bw_), dst = fused::buffer_offset(l + 1, bw_);
        const bool last = l == a_.nlayers - 1;
        const int nkc = L.kpad / fused::kDepth;
        written_.assign(size_t(L.mpad) * TILE, 0);
        for (int mc = 0; mc < L.mpad / fused::kRows; ++mc) {
          std::fill(acc_.begin(), acc_.end(), 0.f);
          for (int kc = 0; kc < nkc; ++kc, ++pos) {
            order_.wait(pipe::wait_depth());
            order_.barrier();
            issue(pos + pipe::prefetch_distance());
            chunk(pipe::stage_of(pos), src, kc);
          }
          fused::with_activation(L.act.kind, [&](auto act) {
            epilogue(L, mc, dst, last, p0, valid,
                     [&](float x) { return fused::activate<decltype(act)::kind>(L.act, x); });
          });
        }
        for (size_t i = 0; i < written_.size(); ++i)
          if (written_[i] != 1)
            fail("pipeline layer " + std::to_string(l) + " wrote row " + std::to_string(i / TILE) + ", column " +
                 std::to_string(i % TILE) + " of its tile " + std::to_string(written_[i]) + " times");
      }
    }
  }

 private:
  int buffer_id(int offset) const { return offset / bw_; }

  void store_act(int buf, int row, int col, float v) {
    const int slot = fused::ldm::act_slot<P, TILE>(row, col, a_.rows);
    if (P == Precision::bf16)
      s_.set_h(2 * int64_t(buf) + slot, bf16_bits(v));
    else
      s_.set_f(buf + slot, v);
  }

  void issue(int64_t pos) {
    if (pos < total_) order_.copy(pipe::stage_of(pos), pipe::stream_chunk(a_, pos, per_tile_, cw_));
    order_.commit();
  }

  // Every warp's tile for one chunk: per k-step, the four A fragments of the warp, then per
  // pair of n8 tiles one ldmatrix.x4 (row addresses from the kernel's function), its
  // registers routed by the kernel's functions, and the eight mma of the pair.
  void chunk(int stage, int src, int kc) {
    constexpr int kHalvesPerElement = P == Precision::bf16 ? 1 : 2;
    order_.read_stage(stage);
    order_.read_buffer(buffer_id(src));
    const int sw = pipe::stage_offset(stage, bw_, cw_);
    for (int warp = 0; warp < NW; ++warp)
      for (int kt = 0; kt < fused::k_steps<P>(); ++kt)
        for (int jj = 0; jj < pipe::kNTiles / 2; ++jj) {
          int64_t row_half[32];
          for (int lane = 0; lane < 32; ++lane)
            row_half[lane] = 2 * int64_t(src) +
                             kHalvesPerElement * int64_t(pipe::b_row_address<P, TILE>(warp, lane, kc, kt, jj, a_.rows));
          uint32_t reg[32][4];
          ldmatrix_x4(s_, row_half, P == Precision::bf16, reg);
          for (int h = 0; h < 2; ++h)
            for (int mi = 0; mi < pipe::kMTiles; ++mi) {
              WarpMma mma;
              for (auto& row : mma.b)
                for (float& v : row) v = std::nanf("");
              for (int lane = 0; lane < 32; ++lane) {
                mma.set_a<P>(s_, lane, sw + 4 * int64_t(fused::a_fragment<P>(mi, kt, lane)));
                for (int q = 0; q < 4; ++q) {
                  const int hq = fused::ldm::b_tile(jj, q) - 2 * jj;
                  if (hq < 0 || hq > 1)
                    fail("ldmatrix register " + std::to_string(q) + " routed outside its tile pair");
                  if (hq == h) mma.set_b<P>(lane, fused::ldm::b_reg(q), reg[lane][q]);
                }
                for (int q = 0; q < 4; ++q) mma.cd(lane, q) = acc(warp, lane, pipe::acc_index(mi, 2 * jj + h, q));
              }
              mma.run(P == Precision::tf32 ? 8 : 16);
              for (int lane = 0; lane < 32; ++lane)
                for (int q = 0; q < 4; ++q) acc(warp, lane, pipe::acc_index(mi, 2 * jj + h, q)) = mma.cd(lane, q);
            }
        }
  }

  float& acc(int warp, int lane, int i) {
    if (i < 0 || i >= pipe::kAcc) fail("accumulator " + std::to_string(i) + " outside the warp tile");
    return acc_[size_t((warp * 32 + lane) * pipe::kAcc + i)];
  }

  template <typename Act>
  void epilogue(const FusedLayerArgs& L, int mc, int dst, bool last, int64_t p0, int valid, Act&& activate) {
    if (!last) order_.write_buffer(buffer_id(dst));
    for (int warp = 0; warp < NW; ++warp)
      for (int lane = 0; lane < 32; ++lane)
        for (int mi = 0; mi < pipe::kMTiles; ++mi)
          for (int ni = 0; ni < pipe::kNTiles; ++ni)
            for (int q = 0; q < 4; ++q) {
              const int row = pipe::acc_row(mc, mi, lane, q), col = pipe::acc_col(warp, ni, lane, q);
              if (row < 0 || row >= L.mpad || col < 0 || col >= TILE)
                fail("pipeline epilogue element (" + std::to_string(row) + ", " + std::to_string(col) +
                     ") outside the layer's tile");
              ++written_[size_t(row) * TILE + col];
              const float v = row < L.m ? activate(acc(warp, lane, pipe::acc_index(mi, ni, q)) + L.bias[row]) : 0.f;
              if (last) {
                if (!fused::output_written(row, col, L.m, valid)) continue;
                const int64_t o = fused::out_index(a_, row, p0, col);
                if (o < 0 || (out_extent_ >= 0 && o >= out_extent_))
                  fail("output element " + std::to_string(o) + " out of range");
                a_.out[o] = v;
              } else {
                store_act(dst, row, col, v);
              }
            }
  }

  const FusedArgs& a_;
  Shared s_;
  int64_t in_extent_, out_extent_;
  int bw_, cw_;
  Ordering order_;
  std::vector<float> acc_;  // [warp][lane][kAcc], the registers of the warp tiles
  std::vector<int> written_;
  int per_tile_ = 0;
  int64_t total_ = 0;
};

template <Precision P, int TILE>
void launch(const FusedArgs& a, int grid, int64_t smem, int64_t in_extent, int64_t out_extent) {
  const int64_t blocks = std::min<int64_t>(grid, fused::tile_count(a.npix, TILE));
  for (int64_t b = 0; b < blocks; ++b) PipeBlock<P, TILE>(a, smem, in_extent, out_extent).run(b, blocks);
}

template <Precision P>
void launch_tile(const FusedArgs& a, int tile, int grid, int64_t smem, int64_t in_extent, int64_t out_extent) {
  switch (tile) {
    case 32:
      return launch<P, 32>(a, grid, smem, in_extent, out_extent);
    case 64:
      return launch<P, 64>(a, grid, smem, in_extent, out_extent);
    case 128:
      return launch<P, 128>(a, grid, smem, in_extent, out_extent);
  }
  throw InvalidArgument("emulate_fused_launch: tile must be 32, 64 or 128");
}

}  // namespace

void emulate_pipeline_launch(const FusedArgs& a, Precision p, int tile, int grid, int64_t smem_bytes, int64_t in_extent,
                             int64_t out_extent) {
  if (p == Precision::tf32) return launch_tile<Precision::tf32>(a, tile, grid, smem_bytes, in_extent, out_extent);
  if (p == Precision::bf16) return launch_tile<Precision::bf16>(a, tile, grid, smem_bytes, in_extent, out_extent);
  throw InvalidArgument("emulate_pipeline_launch: the pipeline variant is tf32/bf16 only");
}

}  // namespace fastinv::cuda
