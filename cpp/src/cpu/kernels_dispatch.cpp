#include "fastinv/error.hpp"
#include "cpu/kernels.hpp"

namespace fastinv::cpu {

const Kernels& kernels_for(Isa isa) {
  static const Kernels generic{Isa::generic, kMrGeneric, &gemm_generic};
#ifdef FASTINV_HAVE_AVX2_KERNELS
  static const Kernels avx2{Isa::avx2, kMrAvx2, &gemm_avx2};
  if (isa == Isa::avx2) return avx2;
#endif
#ifdef FASTINV_HAVE_AVX512_KERNELS
  static const Kernels avx512{Isa::avx512, kMrAvx512, &gemm_avx512};
  if (isa == Isa::avx512) return avx512;
#endif
  if (isa != Isa::generic) throw InvalidArgument(std::string("no kernels built for ISA ") + isa_name(isa));
  return generic;
}

void pack_weights(const float* w, const float* bias, int64_t m, int64_t k, int mr, std::vector<float>& a,
                  std::vector<float>& b) {
  const int64_t blocks = (m + mr - 1) / mr;
  a.assign(size_t(blocks * k * mr), 0.f);
  b.assign(size_t(blocks * mr), 0.f);
  for (int64_t row = 0; row < m; ++row) {
    const int64_t blk = row / mr, r = row % mr;
    for (int64_t j = 0; j < k; ++j) a[size_t((blk * k + j) * mr + r)] = w[row * k + j];
    b[size_t(row)] = bias[row];
  }
}

}  // namespace fastinv::cpu
