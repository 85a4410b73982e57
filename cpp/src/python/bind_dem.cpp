// Bindings for the Basis Pursuit DEM solver (fastinv/dem/basis_pursuit.hpp).
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstdint>
#include <optional>
#include <string>

#include "dem/pixel_normals.hpp"
#include "fastinv/dem/basis_pursuit.hpp"
#include "fastinv/error.hpp"
#include "fastinv/runtime.hpp"
#include "python/bindings.hpp"

namespace py = pybind11;

namespace fastinv::python {

namespace {
using Array = py::array_t<double, py::array::c_style | py::array::forcecast>;

void require_ndim(const Array& a, int ndim, const char* what) {
  if (a.ndim() != ndim)
    throw TypeMismatch(std::string(what) + " must be a " + std::to_string(ndim) + "-d array, got " +
                       std::to_string(a.ndim()) + "-d");
}
}  // namespace

void bind_dem(py::module_& m, py::module_& testing) {
  testing.def(
      "bp_mc_normals",
      [](std::uint64_t seed, std::uint64_t pixel, int count) {
        if (count < 0) throw InvalidArgument("count must be >= 0");
        Array out(count);
        dem::PixelNormals normals(seed, pixel);
        for (int k = 0; k < count; ++k) out.mutable_data()[k] = normals.next();
        return out;
      },
      py::arg("seed"), py::arg("pixel"), py::arg("count"),
      "The N(0, 1) draws of one pixel's Monte-Carlo error estimate (channel fastest, then draw).");
  using namespace fastinv::dem;
  m.def(
      "basis",
      [](Array logt, std::vector<double> widths, double cutoff) {
        require_ndim(logt, 1, "logt");
        std::vector<double> grid(logt.data(), logt.data() + logt.size());
        std::vector<double> B = bp_basis(grid, widths, cutoff);
        const py::ssize_t nt = logt.size(), nc = static_cast<py::ssize_t>(B.size()) / nt;
        Array out({nc, nt});
        std::copy(B.begin(), B.end(), out.mutable_data());
        return out;
      },
      py::arg("logt"), py::arg("widths"), py::arg("cutoff") = 0.04,
      "Basis functions (ncoef x nT); width 0 = Dirac block.");
  m.def(
      "dictionary",
      [](Array response, Array basis, double dictfac) {
        require_ndim(response, 2, "response");
        require_ndim(basis, 2, "basis");
        if (response.shape(1) != basis.shape(1))
          throw InvalidArgument("bp_dictionary: response and basis must share the nT axis");
        std::vector<double> K(response.data(), response.data() + response.size());
        std::vector<double> B(basis.data(), basis.data() + basis.size());
        auto D = bp_dictionary(K, static_cast<std::size_t>(response.shape(0)), B,
                               static_cast<std::size_t>(basis.shape(0)), dictfac);
        Array out({response.shape(0), basis.shape(0)});
        std::copy(D.begin(), D.end(), out.mutable_data());
        return out;
      },
      py::arg("response"), py::arg("basis"), py::arg("dictfac") = 1e26,
      "Dictionary D = K . B^T * dictfac (nchan x ncoef).");
  m.def(
      "aia_error",
      [](Array counts, double n_sample) {
        require_ndim(counts, 2, "counts");
        if (counts.shape(0) != 6) throw InvalidArgument("aia_bp_error: counts must be (6, npix) for 94..335");
        Array out({counts.shape(0), counts.shape(1)});
        const std::size_t np = static_cast<std::size_t>(counts.shape(1));
        const double* in = counts.data();
        double* o = out.mutable_data();
        {
          py::gil_scoped_release release;
          aia_bp_error(in, np, n_sample, o);
        }
        return out;
      },
      py::arg("counts_dn"), py::arg("n_sample") = 1.0,
      "AIA error model (aia_bp_estimate_error, V3 table): sigma in DN for counts in DN.");

  py::class_<BasisPursuit>(m, "BasisPursuit")
      .def(py::init([](Array dictionary, std::vector<double> tolfacs, double min_total, int max_iterations,
                       bool warm_start) {
             require_ndim(dictionary, 2, "dictionary");
             BpOptions o;
             o.tolfacs = std::move(tolfacs);
             o.min_total = min_total;
             o.max_iterations = max_iterations;
             o.warm_start = warm_start;
             std::vector<double> D(dictionary.data(), dictionary.data() + dictionary.size());
             return BasisPursuit(std::move(D), static_cast<std::size_t>(dictionary.shape(0)),
                                 static_cast<std::size_t>(dictionary.shape(1)), o);
           }),
           py::arg("dictionary"), py::arg("tolfacs") = std::vector<double>{1.4, 2.1, 3.15}, py::arg("min_total") = 0.01,
           py::arg("max_iterations") = 400, py::arg("warm_start") = true)
      .def(
          "set_basis",
          [](BasisPursuit& self, Array basis, double em_unit) {
            require_ndim(basis, 2, "basis");
            if (static_cast<std::size_t>(basis.shape(0)) != self.ncoef())
              throw InvalidArgument("set_basis: basis must be (ncoef, nT)");
            self.set_basis(std::vector<double>(basis.data(), basis.data() + basis.size()),
                           static_cast<std::size_t>(basis.shape(1)), em_unit);
          },
          py::arg("basis"), py::arg("em_unit"),
          "Basis (ncoef, nT) and EM unit so that solve() also returns em (nT, npix).")
      .def_property_readonly("nchan", &BasisPursuit::nchan)
      .def_property_readonly("ncoef", &BasisPursuit::ncoef)
      .def(
          "solve",
          [](const BasisPursuit& self, Array y, Array sigma, int threads, int n_samples, std::uint64_t seed,
             std::uint64_t first_pixel, std::optional<Array> logt) -> py::tuple {
            resolve_threads(threads, 1, "BasisPursuit.solve");  // validates the count
            require_ndim(y, 2, "y");
            require_ndim(sigma, 2, "sigma");
            if (static_cast<std::size_t>(y.shape(0)) != self.nchan() || y.shape(0) != sigma.shape(0) ||
                y.shape(1) != sigma.shape(1))
              throw InvalidArgument("solve: y and sigma must both be (nchan, npix) with nchan = " +
                                    std::to_string(self.nchan()));
            const py::ssize_t np = y.shape(1), nc = static_cast<py::ssize_t>(self.ncoef());
            const py::ssize_t ntb = static_cast<py::ssize_t>(self.nt());
            Array coeffs({nc, np}), tolfac(np), objective(np);
            Array model({static_cast<py::ssize_t>(self.nchan()), np}), em({ntb, np});
            py::array_t<std::int8_t> status(np);
            py::array_t<std::int32_t> iterations(np);
            BpOutput out;
            out.coeffs = coeffs.mutable_data();
            out.status = status.mutable_data();
            out.tolfac = tolfac.mutable_data();
            out.objective = objective.mutable_data();
            out.iterations = iterations.mutable_data();
            out.model = model.mutable_data();
            out.em = ntb > 0 ? em.mutable_data() : nullptr;
            BpMonteCarlo mc;
            Array em_std({n_samples > 0 ? ntb : 0, np}), logt_std(np), total_std(np), feasible(np);
            if (n_samples > 0) {
              if (!logt || logt->ndim() != 1 || logt->shape(0) != ntb)
                throw InvalidArgument("solve: Monte-Carlo errors need logt, the (nT,) grid of the basis");
              mc.n_samples = n_samples;
              mc.seed = seed;
              mc.first_pixel = first_pixel;
              mc.logt = logt->data();
              mc.em_std = em_std.mutable_data();
              mc.logt_std = logt_std.mutable_data();
              mc.total_em_std = total_std.mutable_data();
              mc.feasible_fraction = feasible.mutable_data();
            } else if (n_samples < 0) {
              throw InvalidArgument("solve: n_samples must be >= 0");
            }
            const double* yp = y.data();
            const double* sp = sigma.data();
            {
              py::gil_scoped_release release;
              self.solve(yp, sp, static_cast<std::size_t>(np), out, mc, threads);
            }
            py::object errors = py::none();
            if (n_samples > 0) errors = py::make_tuple(em_std, logt_std, total_std, feasible);
            return py::make_tuple(coeffs, status, tolfac, objective, iterations, model, em, errors);
          },
          py::arg("y"), py::arg("sigma"), py::arg("threads") = 0, py::arg("n_samples") = 0, py::arg("seed") = 0,
          py::arg("first_pixel") = 0, py::arg("logt") = py::none(),
          "Solve every pixel: y, sigma (nchan, npix) in DN/s -> (coeffs, status, tolfac, "
          "objective, iterations, model, em, errors); em is (0, npix) unless set_basis was called; "
          "errors is None, or with n_samples > 0 the Monte-Carlo (em_std, logt_std, total_em_std, "
          "feasible_fraction).");
}

}  // namespace fastinv::python
