// Faddeeva kernel compiled for the generic instruction set (see faddeeva_kernel.hpp).
#define FASTINV_FADDEEVA_NS isa_generic
#include "stokes/faddeeva_kernel.hpp"

namespace fastinv::stokes::detail {

void faddeeva_chunk_generic(const FaddeevaTables& T, double a, const double* x, double shift, std::size_t m, double* H,
                            double* F) {
  isa_generic::chunk(T, a, x, shift, m, H, F);
}

}  // namespace fastinv::stokes::detail
