// One tile's DeepEM errors (deepem_errors.cpp), called from the fused tile loop.
#pragma once
#include <cstdint>
#include <vector>

#include "cpu/kernels.hpp"
#include "cpu/kernels_bf16.hpp"
#include "fastinv/dem/deepem.hpp"

namespace fastinv::dem {

constexpr int kErrorDirections = 6;       // the six AIA channels' noise
constexpr int64_t kMaxErrorHidden = 320;  // bounds the per-tile scratch on the stack

// y, sigma: the tile's data and its 1-sigma noise (6 x kTileWidth, DN/s); out_tile: the network's
// output tile (nT x kTileWidth); a1, a2: the engine's activations of layers 1 and 2 for this tile
// (n_h1 and n_h2 rows of kTileWidth), whose signs are the LeakyReLU slopes' (slopes >= 0); em:
// the tile's EM as written (nT x kTileWidth); ok: lanes whose status is ok (the others get NaN).
// Writes lanes [0, lanes) of pixels first.. into output's em_err, logt_err and total_em_err.
// Each lane's arithmetic is independent of the others.
void deepem_tile_errors(const DeepEmErrorModel& m, const double (*y)[cpu::kTileWidth],
                        const double (*sigma)[cpu::kTileWidth], const float* out_tile, const float* a1, const float* a2,
                        const float (*em)[cpu::kTileWidth], const bool* ok, int lanes, int64_t first, int64_t npix,
                        const DeepEmOutput& output) noexcept;

// The network's layers 2 and 3 packed for the engine's bf16 kernels (deepem_errors_bf16.cpp).
struct DeepEmErrorsBf16 {
  const cpu::Bf16Kernels* kernels = nullptr;
  bool amx = false;                 // gemm_directions_amx, else kernels->gemm
  std::vector<uint32_t> w2, w3;     // weight pairs as the kernel wants them
  std::vector<float> zero2, zero3;  // zero biases (padded)
};

// AMX-BF16 (deepem_errors_amx.cpp; only where FASTINV_HAVE_DEEPEM_ERRORS_AMX and the engine
// chose its AMX kernels): out[r * out_stride + row * 16 + lane] = sum over pairs of weight
// tiles a ([blocks][chunks][16 rows][16 pairs]) times the pair rows of direction
// r (in + r * in_stride, chunks * 16 rows of 16 lanes, zero past the layer's pairs).
void gemm_directions_amx(const uint32_t* a, int64_t blocks, int64_t chunks, const uint32_t* in, int64_t in_stride,
                         int directions, float* out, int64_t out_stride) noexcept;
// The same product through layer 2 with its slopes fused (layer2_block_pairs per block): the
// outputs go, times act2' of the activations a2 (n rows), straight into pair rows (pairs +
// r * pair_stride) instead of float32 rows through L2; pair rows past the blocks are not written.
void gemm_directions_amx_pairs(const uint32_t* a, int64_t blocks, int64_t chunks, const uint32_t* in, int64_t in_stride,
                               int directions, const float* a2, int64_t n, float slope, uint32_t* pairs,
                               int64_t pair_stride) noexcept;

// The six tangents of layers 1 and 2 (deepem_errors_pairs.cpp, AVX512-BF16 builds only) as pair
// rows of direction c at pairs + c * stride, zero to the end of the last 16-pair chunk: layer 1's
// act1'(k) W1[k][c] s[c], layer 2's act2'(i) t[c * t_stride + i * kTileWidth + lane]. The slopes
// act' come from the signs of the engine's activations a1, a2.
void layer1_pairs(const DeepEmErrorModel& m, const float* a1, const float (*s)[cpu::kTileWidth], uint32_t* pairs,
                  int64_t stride) noexcept;
void layer2_pairs(const DeepEmErrorModel& m, const float* a2, const float* t, int64_t t_stride, uint32_t* pairs,
                  int64_t stride) noexcept;
// The same for one 16-row block of layer 2's outputs, block[c][row][lane] (c < directions),
// rows row0.. of a layer of n: 8 pair rows at pairs + c * stride + (row0 / 2) * kTileWidth.
void layer2_block_pairs(const float* a2, int64_t n, float slope, const float* block, int directions, int64_t row0,
                        uint32_t* pairs, int64_t stride) noexcept;

// The float32 Jacobian from the slopes of reference inputs (deepem_errors_delta.cpp): each
// reference's slopes as bits and the products of the layers between them, padded to whole
// 16-lane vectors of the nT outputs (tp = t_vectors * 16); each pixel uses the reference that
// needs the fewest corrections.
struct DeepEmErrorsDelta {
  static constexpr int kWords = int((kMaxErrorHidden + 63) / 64);  // 64-bit words of a layer's slopes
  struct Reference {
    std::vector<float> p;  // [6][tp]    P = W3 B2 W2 B1 W1, transposed
    std::vector<float> q;  // [n_h1][tp] columns of Q = W3 B2 W2
    std::vector<float> r;  // [n_h2][8]  rows of R = W2 B1 W1
  };
  int64_t t_vectors = 0;
  std::vector<uint64_t> on1, on2;  // [reference][kWords] active units of layers 1 and 2
  std::vector<Reference> refs;
  std::vector<float> w3;  // [n_h2][tp] columns of W3
  std::vector<float> w1;  // [n_h1][8]  rows of W1
};
// references: count inputs' six count rates (DN/s) each, whose slopes are the patterns.
std::shared_ptr<const DeepEmErrorsDelta> pack_errors_delta(const DeepEmErrorModel& m, const double* references,
                                                           int count);
// The output Jacobian jy[c][t] (lanes) of one tile as jacobian_bf16, in float32 by the reference
// pattern (m.delta): exact, each lane's sums in its own fixed order.
void jacobian_delta(const DeepEmErrorModel& m, const float* a1, const float* a2, const float (*s)[cpu::kTileWidth],
                    float (*jy)[64][cpu::kTileWidth]) noexcept;

// Null where this CPU or build has no AVX512-BF16 (the float32 Jacobian is used then).
std::shared_ptr<const DeepEmErrorsBf16> pack_errors_bf16(const DeepEmErrorModel& m);

// The output Jacobian jy[c][t] (lanes) of one tile in bfloat16: s, the noise of the network's
// inputs [channel][lane]; a1, a2: the engine's layer 1 and 2 activations (their signs pick the
// slopes). The [6 x 300] x [300 x 300] and [6 x 300] x [300 x nT] products run on the bf16
// kernels (operands rounded to bf16, sums in float32); each lane's sums are independent of the
// other lanes'.
void jacobian_bf16(const DeepEmErrorModel& m, const float* a1, const float* a2, const float (*s)[cpu::kTileWidth],
                   float (*jy)[64][cpu::kTileWidth]) noexcept;

}  // namespace fastinv::dem
