// Python bindings of the LTE Stokes synthesis pieces (EOS, continuum, hydrostatic equilibrium,
// synthesis). The public Python API lives in fastinv/stokes/lte.py and atmospheres.py.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cmath>
#include <string>
#include <vector>

#include "fastinv/error.hpp"
#include "fastinv/stokes/lte_eos.hpp"
#include "python/bindings.hpp"

namespace py = pybind11;

namespace fastinv::python {
namespace {

using stokes::EosState;

py::dict state_dict(const EosState& s) {
  py::dict d;
  d["T"] = s.T; d["Pg"] = s.Pg; d["Pe"] = s.Pe; d["ne"] = s.ne; d["nH"] = s.nH;
  d["nHI"] = s.nHI; d["nHII"] = s.nHII; d["nHm"] = s.nHm; d["rho"] = s.rho;
  return d;
}

using DArr = py::array_t<double, py::array::c_style | py::array::forcecast>;

}  // namespace

void bind_stokes_lte(py::module_& m) {
  static const stokes::LteEos eos;
  m.def("_lte_partition", [](int Z, int stage, double T) {
    return stokes::LteEos::partition(Z, stage, T);
  }, py::arg("Z"), py::arg("stage"), py::arg("T"), "Partition function U(T) (tabulated).");
  m.def("_lte_eos_from_pg", [](double T, double Pg) { return state_dict(eos.from_pg(T, Pg)); },
        py::arg("T"), py::arg("Pg"), "LTE ionisation balance for T [K], P_g [dyn cm^-2].");
  m.def("_lte_eos_from_nh", [](double T, double nH) { return state_dict(eos.from_nh(T, nH)); },
        py::arg("T"), py::arg("nH"), "LTE ionisation balance for T [K], n_H [cm^-3].");
  m.def("_lte_eos_info", [] {
    py::dict d;
    d["mass_per_H"] = eos.mass_per_H();
    d["particles_per_H"] = eos.particles_per_H();
    return d;
  });
  m.def("_lte_continuum", [](double T, double Pg, double lambda_A) {
    auto s = eos.from_pg(T, Pg);
    auto p = stokes::continuum_opacity(s, lambda_A);
    py::dict d;
    d["hminus_bf"] = p.hminus_bf; d["hminus_ff"] = p.hminus_ff; d["h_bf"] = p.h_bf;
    d["h_ff"] = p.h_ff; d["thomson"] = p.thomson; d["rayleigh"] = p.rayleigh;
    d["total"] = p.total();
    return d;
  }, py::arg("T"), py::arg("Pg"), py::arg("wavelength"),
     "Continuum extinction parts [cm^-1] at an air wavelength [A].");
  m.def("_lte_hydrostatic", [](DArr log_tau, DArr T, double gravity, double pg_top) {
    if (log_tau.ndim() != 1 || T.ndim() != 1 || log_tau.shape(0) != T.shape(0))
      throw InvalidArgument("log_tau and T must be 1-D arrays of the same length");
    const int n = static_cast<int>(log_tau.shape(0));
    std::vector<EosState> st(n);
    DArr kap(n);
    bool ok;
    {
      py::gil_scoped_release release;
      ok = stokes::hydrostatic_equilibrium(eos, log_tau.data(), T.data(), n, gravity, st.data(),
                                           kap.mutable_data(), pg_top);
    }
    DArr pg(n), pe(n), rho(n), ne(n), nhi(n);
    for (int k = 0; k < n; ++k) {
      pg.mutable_data()[k] = st[k].Pg; pe.mutable_data()[k] = st[k].Pe;
      rho.mutable_data()[k] = st[k].rho; ne.mutable_data()[k] = st[k].ne;
      nhi.mutable_data()[k] = st[k].nHI;
    }
    py::dict d;
    d["ok"] = ok; d["Pg"] = pg; d["Pe"] = pe; d["rho"] = rho; d["ne"] = ne; d["nHI"] = nhi;
    d["kappa500"] = kap;
    return d;
  }, py::arg("log_tau"), py::arg("T"), py::arg("gravity") = stokes::kSolarGravity,
     py::arg("pg_top") = -1.0, "Hydrostatic equilibrium on a log tau_500 grid (top first).");
}

}  // namespace fastinv::python
