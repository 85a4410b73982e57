// CPU emulation of the per-op kernels' definitions (cuda/ops.cu), for tests on machines
// without a GPU (see emulate.hpp). Deliberately plain loops: each mirrors the formula its
// kernel implements, not the kernel's schedule.
#include <cmath>
#include <cstring>
#include <limits>

#include "fastinv/error.hpp"
#include "host/emulate.hpp"

namespace fastinv::cuda {

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

}  // namespace fastinv::cuda
