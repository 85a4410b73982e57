// PTX wrappers shared by the fused kernel's translation units (cuda/fused_mlp.cu: the
// default and ldmatrix variants; cuda/fused_pipeline.cu: the pipeline variant): cp.async and
// its commit / wait groups, tf32 conversion, mma.sync m16n8k8.tf32 / m16n8k16.bf16,
// ldmatrix.x4 (.trans), the B registers of a pair of n8 tiles that one ldmatrix.x4 loads,
// and the store of one activation in a buffer's precision.
#pragma once
#include <cuda_bf16.h>

#include <cstdint>

#include "fused_ldmatrix.hpp"
#include "host/pack.hpp"

namespace fastinv::cuda::ptx {

__device__ __forceinline__ void cp_async16(void* smem, const void* gmem) {
  const unsigned s = static_cast<unsigned>(__cvta_generic_to_shared(smem));
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16;\n" ::"r"(s), "l"(gmem) : "memory");
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::: "memory"); }
__device__ __forceinline__ void cp_async_wait_prev() { asm volatile("cp.async.wait_group 1;\n" ::: "memory"); }
template <int N>
__device__ __forceinline__ void cp_async_wait() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(N) : "memory");
}

__device__ __forceinline__ uint32_t to_tf32(float x) {
  uint32_t u;
  asm("cvt.rna.tf32.f32 %0, %1;\n" : "=r"(u) : "f"(x));
  return u;
}

__device__ __forceinline__ void mma_tf32(float (&d)[4], const uint4& a, uint32_t b0, uint32_t b1) {
  asm volatile(
      "mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
      "{%0,%1,%2,%3};\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
      : "r"(a.x), "r"(a.y), "r"(a.z), "r"(a.w), "r"(b0), "r"(b1));
}

__device__ __forceinline__ void mma_bf16(float (&d)[4], const uint4& a, uint32_t b0, uint32_t b1) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
      "{%0,%1,%2,%3};\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
      : "r"(a.x), "r"(a.y), "r"(a.z), "r"(a.w), "r"(b0), "r"(b1));
}

// ldmatrix.sync.aligned.m8n8.x4(.trans).shared.b16: this lane's row address in, four
// 32-bit registers (one per 8x8 matrix) out.
__device__ __forceinline__ void ldmatrix_x4(uint32_t (&r)[4], const void* row) {
  const unsigned s = static_cast<unsigned>(__cvta_generic_to_shared(row));
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(s));
}
__device__ __forceinline__ void ldmatrix_x4_trans(uint32_t (&r)[4], const void* row) {
  const unsigned s = static_cast<unsigned>(__cvta_generic_to_shared(row));
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(s));
}

// The B registers of the n8 tiles 2 jj and 2 jj + 1 (b[h][reg]) from the activation buffer
// x, this lane's row at element e: one ldmatrix.x4 (.trans for bf16's channel-major rows),
// registers routed by fused::ldm::b_tile / b_reg; tf32 values rounded as mma.tf32 takes them.
template <Precision P>
__device__ __forceinline__ void ldmatrix_b_pair(uint32_t (&b)[2][2], const uint32_t* x, int e, int jj) {
  uint32_t r[4];
  if constexpr (P == Precision::bf16) {
    ldmatrix_x4_trans(r, reinterpret_cast<const unsigned short*>(x) + e);
  } else {
    ldmatrix_x4(r, reinterpret_cast<const float*>(x) + e);
#pragma unroll
    for (int q = 0; q < 4; ++q) r[q] = to_tf32(__uint_as_float(r[q]));
  }
#pragma unroll
  for (int q = 0; q < 4; ++q) b[fused::ldm::b_tile(jj, q) - 2 * jj][fused::ldm::b_reg(q)] = r[q];
}

template <Precision P>
__device__ __forceinline__ void store_act(uint32_t* buf, int slot, float v) {
  if constexpr (P == Precision::bf16) {
    reinterpret_cast<unsigned short*>(buf)[slot] = __bfloat16_as_ushort(__float2bfloat16_rn(v));
  } else {
    reinterpret_cast<float*>(buf)[slot] = v;
  }
}

}  // namespace fastinv::cuda::ptx
