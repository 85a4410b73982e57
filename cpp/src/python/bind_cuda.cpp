// CUDA backend hooks in fastinv._core._testing: the weight packing, the bf16/tf32 rounding and
// the CPU emulation of the kernels
// (plain C++, available in every build so tests check them against the PTX fragment
// layouts and torch's rounding on any machine) — and, in fastinv._core, the device check
// that fastinv.load(device="cuda") performs.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <algorithm>
#include <cstring>
#include <limits>

#include "fastinv/error.hpp"
#include "host/pack.hpp"
#include "host/emulate.hpp"
#include "graph.hpp"
#include "python/bindings.hpp"
#include "safetensors.hpp"
#ifdef FASTINV_HAVE_CUDA
#include "gpu_runtime.hpp"
#endif

namespace py = pybind11;

namespace fastinv::python {

void bind_cuda(py::module_& m, py::module_& testing) {
  testing.def(
      "cuda_pack_weights",
      [](py::array_t<float, py::array::c_style | py::array::forcecast> w, const std::string& precision) {
        if (w.ndim() != 2) throw InvalidArgument("weights must be a 2-d (out, in) array");
        const cuda::Precision p = cuda::precision_from_name(precision);
        std::vector<uint32_t> packed = cuda::pack_fused_weights(w.data(), w.shape(0), w.shape(1), p);
        py::array_t<uint32_t> out(py::ssize_t(packed.size()));
        std::memcpy(out.mutable_data(), packed.data(), packed.size() * 4);
        return out;
      },
      py::arg("w"), py::arg("precision"),
      "Test hook: W (m, k) packed for the fused CUDA kernel, as uint32 words (see cuda/host/pack.hpp).");
  testing.def(
      "bf16_bits",
      [](py::array_t<float, py::array::c_style | py::array::forcecast> x) {
        py::array_t<uint16_t> out(x.size());
        for (py::ssize_t i = 0; i < x.size(); ++i) out.mutable_data()[i] = cuda::bf16_bits(x.data()[i]);
        return out;
      },
      py::arg("x"), "Test hook: float32 -> bfloat16 bits as the CUDA backend's host packing rounds them.");
  testing.def(
      "tf32_round",
      [](py::array_t<float, py::array::c_style | py::array::forcecast> x) {
        py::array_t<float> out(x.size());
        for (py::ssize_t i = 0; i < x.size(); ++i) out.mutable_data()[i] = cuda::tf32_round(x.data()[i]);
        return out;
      },
      py::arg("x"), "Test hook: float32 rounded to tf32 (nearest, ties away), as cvt.rna.tf32.f32.");
  testing.def(
      "cuda_emulate",
      [](const std::string& path, const std::string& precision, const std::string& path_kind,
         py::array_t<float, py::array::c_style | py::array::forcecast> x, int64_t n, int tile, int grid, int64_t smem,
         int64_t out_ld, const std::string& kernel) {
        const cuda::Precision p = cuda::precision_from_name(precision);
        const cuda::FusedKernel variant = cuda::fused_kernel_from_name(kernel);
        const Graph g = parse_graph(SafeTensors::read_file(path));
        const int64_t in_rows = g.input.size(), out_rows = g.shape_of(g.output).size();
        if (x.ndim() != 2 || x.shape(0) != in_rows)
          throw InvalidArgument("x must be planar (" + std::to_string(in_rows) + ", n)");
        const int64_t in_ld = x.shape(1);
        if (n < 0) n = in_ld;
        if (out_ld <= 0) out_ld = n;
        if (n > in_ld || n > out_ld) throw InvalidArgument("n exceeds a row of x or of the output");
        cuda::FusedPlan fused;
        if (path_kind != "general") fused = cuda::compile_fused(g, p);
        if (path_kind == "fused" && !fused.ok) throw InvalidArgument("this graph has no fused plan");
        py::array_t<float> y({py::ssize_t(out_rows), py::ssize_t(out_ld)});
        std::fill(y.mutable_data(), y.mutable_data() + y.size(), std::numeric_limits<float>::quiet_NaN());
        if (fused.ok) {
          const int used =
              cuda::emulate_fused(fused, p, x.data(), in_ld, y.mutable_data(), out_ld, n, tile, grid, smem, variant);
          return py::tuple(py::make_tuple(y, std::string("fused"), used));
        }
        if (in_ld != n || out_ld != n) throw InvalidArgument("the per-op emulation takes dense (rows, n) planes");
        cuda::emulate_general(cuda::compile_general(g), x.data(), in_rows, y.mutable_data(), out_rows, n);
        return py::tuple(py::make_tuple(y, std::string("general"), 0));
      },
      py::arg("path"), py::arg("precision"), py::arg("path_kind"), py::arg("x"), py::arg("n") = -1, py::arg("tile") = 0,
      py::arg("grid") = 264, py::arg("smem") = 232448, py::arg("out_ld") = 0, py::arg("kernel") = "mma",
      "Test hook: run a model file's CUDA plan (fused if it has one and path_kind != 'general', else per-op) "
      "through the CPU emulation, on planar x (rows, in_ld) of which the first n columns are pixels. The fused "
      "plan runs the kernel's index math with `grid` blocks and `tile` pixels per tile (0: the largest that fits "
      "`smem` bytes; the defaults are an H100's 132 SMs x 2 and 227 KiB), as the variant `kernel` ('mma', "
      "'ldmatrix' or 'pipeline', as FASTINV_CUDA_KERNEL) does it. Returns (y, path used, tile): y is "
      "(rows, out_ld), NaN where nothing was written.");
  m.def(
      "cuda_device_info",
      [](int ordinal) {
#ifdef FASTINV_HAVE_CUDA
        const cuda::DeviceProps p = cuda::open_device(ordinal);
        py::dict d;
        d["ordinal"] = p.ordinal;
        d["name"] = p.name;
        d["compute_capability"] = py::make_tuple(p.major, p.minor);
        d["multiprocessors"] = p.multiprocessors;
        d["shared_memory_per_block_optin"] = p.shared_per_block_optin;
        d["total_memory"] = p.total_memory;
        return d;
#else
        (void)ordinal;
        throw Error("this fastinv was built without CUDA (no nvcc at build time); use device='cpu'");
#endif
      },
      py::arg("ordinal") = 0,
      "Facts about a usable CUDA device; raises RuntimeError saying why a device cannot be used.");
}

}  // namespace fastinv::python
