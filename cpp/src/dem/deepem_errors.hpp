// One tile's DeepEM errors (deepem_errors.cpp), called from the fused tile loop.
#pragma once
#include <cstdint>

#include "cpu/kernels.hpp"
#include "fastinv/dem/deepem.hpp"

namespace fastinv::dem {

// y, sigma: the tile's data and its 1-sigma noise (6 x kTileWidth, DN/s); out_tile: the network's
// output tile (nT x kTileWidth); em: the tile's EM as written (nT x kTileWidth); ok: lanes whose
// status is ok (the others get NaN). Writes lanes [0, lanes) of pixels first.. into output's
// em_err, logt_err and total_em_err. Each lane's arithmetic is independent of the others.
void deepem_tile_errors(const DeepEmErrorModel& m, const double (*y)[cpu::kTileWidth],
                        const double (*sigma)[cpu::kTileWidth], const float* out_tile,
                        const float (*em)[cpu::kTileWidth], const bool* ok, int lanes, int64_t first, int64_t npix,
                        const DeepEmOutput& output) noexcept;

}  // namespace fastinv::dem
