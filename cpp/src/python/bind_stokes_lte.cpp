// Python bindings of the LTE Stokes synthesis pieces (EOS, continuum, hydrostatic equilibrium,
// synthesis). The public Python API lives in fastinv/stokes/lte.py and atmospheres.py.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cmath>
#include <string>
#include <vector>

#include "fastinv/error.hpp"
#include "fastinv/stokes/lte.hpp"
#include "fastinv/stokes/lte_eos.hpp"
#include "python/bindings.hpp"

namespace py = pybind11;

namespace fastinv::python {
namespace {

using stokes::EosState;

py::dict state_dict(const EosState& s) {
  py::dict d;
  d["T"] = s.T;
  d["Pg"] = s.Pg;
  d["Pe"] = s.Pe;
  d["ne"] = s.ne;
  d["nH"] = s.nH;
  d["nHI"] = s.nHI;
  d["nHII"] = s.nHII;
  d["nHm"] = s.nHm;
  d["rho"] = s.rho;
  return d;
}

using DArr = py::array_t<double, py::array::c_style | py::array::forcecast>;

void require_2d(const DArr& a, py::ssize_t n, py::ssize_t nd, const char* name) {
  if (a.ndim() != 2 || a.shape(0) != n || a.shape(1) != nd)
    throw InvalidArgument(std::string(name) + " must have shape (n_atmospheres, n_depth) = (" + std::to_string(n) +
                          ", " + std::to_string(nd) + ")");
}

std::vector<stokes::SpectralLine> lines_from_names(const std::vector<std::string>& names) {
  std::vector<stokes::SpectralLine> lines;
  for (const auto& n : names) lines.push_back(stokes::get_line(n));
  return lines;
}

std::vector<double> to_vector(const DArr& a, const char* name) {
  if (a.ndim() != 1) throw InvalidArgument(std::string(name) + " must be 1-D");
  return std::vector<double>(a.data(), a.data() + a.shape(0));
}

}  // namespace

void bind_stokes_lte(py::module_& m, py::module_& testing) {
  static const stokes::LteEos eos;
  testing.def(
      "lte_partition", [](int Z, int stage, double T) { return stokes::LteEos::partition(Z, stage, T); }, py::arg("Z"),
      py::arg("stage"), py::arg("T"), "Partition function U(T) (tabulated).");
  testing.def(
      "lte_eos_from_pg", [](double T, double Pg) { return state_dict(eos.from_pg(T, Pg)); }, py::arg("T"),
      py::arg("Pg"), "LTE ionisation balance for T [K], P_g [dyn cm^-2].");
  testing.def(
      "lte_eos_from_nh", [](double T, double nH) { return state_dict(eos.from_nh(T, nH)); }, py::arg("T"),
      py::arg("nH"), "LTE ionisation balance for T [K], n_H [cm^-3].");
  testing.def("lte_eos_info", [] {
    py::dict d;
    d["mass_per_H"] = eos.mass_per_H();
    d["particles_per_H"] = eos.particles_per_H();
    return d;
  });
  testing.def(
      "lte_continuum",
      [](double T, double Pg, double lambda_A) {
        auto s = eos.from_pg(T, Pg);
        auto p = stokes::continuum_opacity(s, lambda_A);
        py::dict d;
        d["hminus_bf"] = p.hminus_bf;
        d["hminus_ff"] = p.hminus_ff;
        d["h_bf"] = p.h_bf;
        d["h_ff"] = p.h_ff;
        d["thomson"] = p.thomson;
        d["rayleigh"] = p.rayleigh;
        d["total"] = p.total();
        return d;
      },
      py::arg("T"), py::arg("Pg"), py::arg("wavelength"),
      "Continuum extinction parts [cm^-1] at an air wavelength [A].");
  testing.def(
      "lte_hydrostatic",
      [](DArr log_tau, DArr T, double gravity, double pg_top) {
        if (log_tau.ndim() != 1 || T.ndim() != 1 || log_tau.shape(0) != T.shape(0))
          throw InvalidArgument("log_tau and T must be 1-D arrays of the same length");
        const int n = static_cast<int>(log_tau.shape(0));
        std::vector<EosState> st(n);
        DArr kap(n);
        bool ok;
        {
          py::gil_scoped_release release;
          ok = stokes::hydrostatic_equilibrium(eos, log_tau.data(), T.data(), n, gravity, st.data(), kap.mutable_data(),
                                               pg_top);
        }
        DArr pg(n), pe(n), rho(n), ne(n), nhi(n);
        for (int k = 0; k < n; ++k) {
          pg.mutable_data()[k] = st[k].Pg;
          pe.mutable_data()[k] = st[k].Pe;
          rho.mutable_data()[k] = st[k].rho;
          ne.mutable_data()[k] = st[k].ne;
          nhi.mutable_data()[k] = st[k].nHI;
        }
        py::dict d;
        d["ok"] = ok;
        d["Pg"] = pg;
        d["Pe"] = pe;
        d["rho"] = rho;
        d["ne"] = ne;
        d["nHI"] = nhi;
        d["kappa500"] = kap;
        return d;
      },
      py::arg("log_tau"), py::arg("T"), py::arg("gravity") = stokes::kSolarGravity, py::arg("pg_top") = -1.0,
      "Hydrostatic equilibrium on a log tau_500 grid (top first).");

  py::class_<stokes::LteSynthesizer>(m, "LteSynthesizer")
      .def(py::init([](const std::vector<std::string>& names, const DArr& wavelength) {
             return std::make_unique<stokes::LteSynthesizer>(lines_from_names(names),
                                                             to_vector(wavelength, "wavelength"));
           }),
           py::arg("lines"), py::arg("wavelength"))
      .def(
          "synthesize",
          [](const stokes::LteSynthesizer& self, const DArr& log_tau, const DArr& T, const DArr& vmic, const DArr& B,
             const DArr& inc, const DArr& azi, const DArr& vlos, double mu, int threads, bool with_lines) {
            if (log_tau.ndim() != 1) throw InvalidArgument("log_tau must be 1-D");
            if (T.ndim() != 2) throw InvalidArgument("T must have shape (n_atmospheres, n_depth)");
            const py::ssize_t n = T.shape(0), nd = log_tau.shape(0);
            require_2d(T, n, nd, "T");
            require_2d(vmic, n, nd, "vmic");
            require_2d(B, n, nd, "B");
            require_2d(inc, n, nd, "inclination");
            require_2d(azi, n, nd, "azimuth");
            require_2d(vlos, n, nd, "vlos");
            const py::ssize_t nw = static_cast<py::ssize_t>(self.n_wavelength());
            DArr out({n, py::ssize_t(4), nw});
            py::array_t<std::int8_t> status(n);
            {
              py::gil_scoped_release release;
              self.synthesize_batch(static_cast<int>(n), static_cast<int>(nd), log_tau.data(), T.data(), vmic.data(),
                                    B.data(), inc.data(), azi.data(), vlos.data(), mu, out.mutable_data(),
                                    status.mutable_data(), threads, with_lines);
            }
            return py::make_tuple(out, status);
          },
          py::arg("log_tau"), py::arg("T"), py::arg("vmic"), py::arg("B"), py::arg("inclination"), py::arg("azimuth"),
          py::arg("vlos"), py::arg("mu") = 1.0, py::arg("threads") = 0, py::arg("with_lines") = true);

  // The formal solver on a prescribed Milne-Eddington-like atmosphere: continuum opacity 1
  // per unit tau_c, constant line-to-continuum ratio eta0, Doppler width, damping, field and
  // velocity, source function S(tau_c) given per depth. For checks against the analytic
  // Unno-Rachkovsky solution (the same propagation-matrix and solver code as the synthesis).
  testing.def(
      "lte_formal_prescribed",
      [](const std::string& line_name, const DArr& wavelength, const DArr& log_tau_c, const DArr& S, double eta0,
         double doppler_A, double damping, double B_G, double inc_deg, double azi_deg, double vlos_kms, double mu) {
        const auto line = stokes::get_line(line_name);
        const auto pattern = stokes::zeeman_pattern(line);
        auto w = to_vector(wavelength, "wavelength");
        auto lt = to_vector(log_tau_c, "log_tau_c");
        auto src = to_vector(S, "S");
        const int nd = static_cast<int>(lt.size());
        if (nd < 3 || src.size() != lt.size())
          throw InvalidArgument("log_tau_c and S must be 1-D of the same length >= 3");
        if (!(doppler_A > 0) || !(damping >= 0) || !(mu > 0 && mu <= 1))
          throw InvalidArgument("need doppler_A > 0, damping >= 0, 0 < mu <= 1");
        const std::size_t nw = w.size();
        stokes::PropagationRows rows;
        rows.resize(nw);
        std::vector<double> x(nw), scratch;
        const double center = line.wavelength * (1.0 + vlos_kms / 299792.458);
        for (std::size_t i = 0; i < nw; ++i) {
          x[i] = (w[i] - center) / doppler_A;
          rows.etaI[i] = 1.0;
        }
        const double deg = 3.14159265358979323846 / 180.0;
        const double larmor = stokes::kLarmorAngstromPerGaussA2 * line.wavelength * line.wavelength * B_G / doppler_A;
        stokes::add_line_propagation(pattern, eta0, damping, x.data(), nw, larmor, inc_deg * deg, azi_deg * deg, rows,
                                     scratch);
        DArr out({py::ssize_t(4), py::ssize_t(nw)});
        // Depth-independent K; the production solver (vectorised over wavelength).
        const std::size_t n = static_cast<std::size_t>(nd) * nw;
        std::vector<double> eI(n), eQ(n), eU(n), eV(n), rQ(n), rU(n), rV(n), Sd(n), dtau(n);
        for (int k = 0; k < nd; ++k) {
          for (std::size_t i = 0; i < nw; ++i) {
            const std::size_t j = static_cast<std::size_t>(k) * nw + i;
            eI[j] = rows.etaI[i];
            eQ[j] = rows.etaQ[i];
            eU[j] = rows.etaU[i];
            eV[j] = rows.etaV[i];
            rQ[j] = rows.rhoQ[i];
            rU[j] = rows.rhoU[i];
            rV[j] = rows.rhoV[i];
            Sd[j] = src[k];
            if (k + 1 < nd) dtau[j] = (std::pow(10.0, lt[k + 1]) - std::pow(10.0, lt[k])) * rows.etaI[i] / mu;
          }
        }
        stokes::delo_linear_batch(nd, nw, dtau.data(), eI.data(), eQ.data(), eU.data(), eV.data(), rQ.data(), rU.data(),
                                  rV.data(), Sd.data(), out.mutable_data());
        return out;
      },
      py::arg("line"), py::arg("wavelength"), py::arg("log_tau_c"), py::arg("S"), py::arg("eta0"),
      py::arg("doppler_width"), py::arg("damping"), py::arg("B"), py::arg("inclination"), py::arg("azimuth"),
      py::arg("vlos"), py::arg("mu") = 1.0);
}

}  // namespace fastinv::python
