// Faddeeva kernel compiled for the avx2 instruction set (see faddeeva_kernel.hpp).
#define FASTINV_FADDEEVA_NS isa_avx2
#include "stokes/faddeeva_kernel.hpp"

namespace fastinv::stokes::detail {

void faddeeva_chunk_avx2(const FaddeevaTables& T, double a, const double* x, double shift, std::size_t m, double* H,
                         double* F) {
  isa_avx2::chunk(T, a, x, shift, m, H, F);
}

}  // namespace fastinv::stokes::detail
