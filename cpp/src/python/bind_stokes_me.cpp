// Python bindings of the Milne-Eddington synthesis and the spectral operators
// (fastinv.stokes.MilneEddington / Instrument wrap these).
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cmath>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "fastinv/error.hpp"
#include "fastinv/stokes/me_inversion.hpp"
#include "fastinv/stokes/milne_eddington.hpp"
#include "python/bindings.hpp"

namespace py = pybind11;

namespace fastinv::python {
namespace {

using Arr = py::array_t<double, py::array::c_style | py::array::forcecast>;
using IArr = py::array_t<int64_t, py::array::c_style | py::array::forcecast>;

stokes::MEPrecision me_precision(const std::string& name) {
  if (name == "float64") return stokes::MEPrecision::float64;
  if (name == "float32") return stokes::MEPrecision::float32;
  throw InvalidArgument("precision must be 'float64' or 'float32', got '" + name + "'");
}

stokes::BandedOperator make_operator(int64_t n_in, IArr start, Arr weights) {
  if (start.ndim() != 1 || weights.ndim() != 2 || weights.shape(0) != start.shape(0))
    throw TypeMismatch("instrument operator: start must be 1-D (n_out) and weights 2-D (n_out, width)");
  stokes::BandedOperator op;
  op.n_in = n_in;
  op.n_out = start.shape(0);
  op.width = weights.shape(1);
  op.start.assign(start.data(), start.data() + start.size());
  op.weights.assign(weights.data(), weights.data() + weights.size());
  op.validate();
  return op;
}

const char* kRequired[] = {"B", "inclination", "azimuth", "vlos", "doppler_width", "damping", "eta0", "S0", "S1"};

}  // namespace

void bind_stokes_me(py::module_& m) {
  py::class_<stokes::MilneEddington, std::shared_ptr<stokes::MilneEddington>>(m, "MilneEddington")
      .def(py::init([](const std::vector<std::string>& names, Arr wavelength, std::vector<double> ratios) {
             std::vector<stokes::SpectralLine> lines;
             for (const auto& nm : names) lines.push_back(stokes::get_line(nm));
             if (wavelength.ndim() != 1) throw TypeMismatch("wavelength must be a 1-D array");
             std::vector<double> wl(wavelength.data(), wavelength.data() + wavelength.size());
             return std::make_shared<stokes::MilneEddington>(std::move(lines), std::move(wl), std::move(ratios));
           }),
           py::arg("lines"), py::arg("wavelength"), py::arg("strength_ratios") = std::vector<double>{})
      .def(
          "set_instrument",
          [](stokes::MilneEddington& me, int64_t n_in, IArr start, Arr weights) {
            me.set_instrument(make_operator(n_in, start, weights));
          },
          py::arg("n_in"), py::arg("start"), py::arg("weights"))
      .def("set_gaussian_instrument", &stokes::MilneEddington::set_gaussian_instrument, py::arg("sigma"),
           py::arg("first"), py::arg("stride"), py::arg("n_out"))
      .def_property_readonly("synthesis_size", &stokes::MilneEddington::synthesis_size)
      .def_property_readonly("output_size", &stokes::MilneEddington::output_size)
      .def_property_readonly("strength_ratios", &stokes::MilneEddington::strength_ratios)
      .def(
          "synthesize",
          [](const stokes::MilneEddington& me, const py::dict& params, double mu, int threads) {
            // Keep every converted array alive until the synthesis is done.
            std::vector<Arr> keep;
            int64_t n = -1;
            auto get = [&](const char* key, bool required) -> const double* {
              if (!params.contains(key)) {
                if (required) throw InvalidArgument(std::string("ME parameters: missing '") + key + "'");
                return nullptr;
              }
              Arr a = py::cast<Arr>(params[key]);
              if (a.ndim() != 1) throw TypeMismatch(std::string("ME parameter '") + key + "' must be 1-D");
              if (n < 0) n = a.shape(0);
              if (a.shape(0) != n)
                throw InvalidArgument(std::string("ME parameter '") + key + "' has length " +
                                      std::to_string(a.shape(0)) + ", expected " + std::to_string(n));
              keep.push_back(a);
              return keep.back().data();
            };
            stokes::MEParameterArrays p;
            keep.reserve(11);
            const double* req[9];
            for (int k = 0; k < 9; ++k) req[k] = get(kRequired[k], true);
            p.B = req[0];
            p.inclination = req[1];
            p.azimuth = req[2];
            p.vlos = req[3];
            p.doppler_width = req[4];
            p.damping = req[5];
            p.eta0 = req[6];
            p.S0 = req[7];
            p.S1 = req[8];
            p.filling_factor = get("filling_factor", false);
            p.vmac = get("vmac", false);
            p.n = n;
            const int64_t nout = me.output_size();
            Arr out({n, int64_t{4}, nout});
            py::array_t<uint8_t> status(n);
            {
              py::gil_scoped_release release;
              me.synthesize(p, mu, out.mutable_data(), status.mutable_data(), threads);
            }
            return py::make_tuple(out, status);
          },
          py::arg("params"), py::arg("mu") = 1.0, py::arg("threads") = 0,
          "Synthesise (n, 4, output_size) Stokes profiles and per-profile status (0 = ok).")
      .def(
          "profile_and_jacobian",
          [](const stokes::MilneEddington& me, Arr params, double mu, const std::string& precision) {
            const stokes::MEPrecision prec = me_precision(precision);
            if (params.ndim() != 2 || params.shape(1) != stokes::kMeProfileParameters)
              throw TypeMismatch("params must be (n, 11): B .. filling_factor, vmac");
            if (!(mu > 0.0 && mu <= 1.0)) throw InvalidArgument("mu must be in (0, 1]");
            const int64_t n = params.shape(0), m = me.output_size();
            for (int64_t k = 0; k < params.size(); ++k)
              if (!std::isfinite(params.data()[k])) throw InvalidArgument("params must be finite");
            for (int64_t i = 0; i < params.shape(0); ++i) {  // the ranges synthesize() accepts
              const double* q = params.data() + i * stokes::kMeProfileParameters;
              if (q[0] < 0 || q[4] <= 0 || q[5] < 0 || q[6] < 0 || q[9] < 0 || q[9] > 1 || q[10] < 0)
                throw InvalidArgument("params row " + std::to_string(i) +
                                      ": need B >= 0, doppler_width > 0, damping >= 0, eta0 >= 0, "
                                      "0 <= filling_factor <= 1, vmac >= 0");
            }
            Arr prof({n, int64_t{4}, m});
            Arr jac({n, int64_t{stokes::kMeDerivParameters}, int64_t{4}, m});
            {
              py::gil_scoped_release release;
              stokes::MEScratch s;
              for (int64_t i = 0; i < n; ++i)
                me.profile_and_jacobian(params.data() + i * stokes::kMeProfileParameters, mu, s,
                                        prof.mutable_data() + i * 4 * m,
                                        jac.mutable_data() + i * stokes::kMeDerivParameters * 4 * m, nullptr, prec);
            }
            return py::make_tuple(prof, jac);
          },
          py::arg("params"), py::arg("mu") = 1.0, py::arg("precision") = "float64",
          "Profiles (n, 4, m) and analytic derivatives (n, 11, 4, m) for (n, 11) parameters (one-profile path "
          "of the inversion; parameters must be valid; precision: the kernel's arithmetic, float64 or float32).");

  py::class_<stokes::MEInversion>(m, "MEInversion")
      .def(py::init([](std::shared_ptr<stokes::MilneEddington> me, std::vector<bool> free, std::vector<double> lower,
                       std::vector<double> upper, std::vector<double> weights, double mu, int max_iterations,
                       double tolerance, double chi2_threshold, double dark_threshold, int restarts,
                       double restart_chi2, const std::string& precision, double lambda_start) {
             stokes::MEInversionOptions o;
             o.jacobian_precision = me_precision(precision);
             const auto n = static_cast<std::size_t>(stokes::kMeInvParameters);
             if (free.size() != n || lower.size() != n || upper.size() != n || weights.size() != 4)
               throw InvalidArgument("MEInversion: free/lower/upper need 12 entries and weights 4");
             for (std::size_t k = 0; k < n; ++k) {
               o.free[k] = free[k];
               o.lower[k] = lower[k];
               o.upper[k] = upper[k];
             }
             for (std::size_t k = 0; k < 4; ++k) o.weights[k] = weights[k];
             o.mu = mu;
             o.max_iterations = max_iterations;
             o.tolerance = tolerance;
             o.chi2_threshold = chi2_threshold;
             o.dark_threshold = dark_threshold;
             o.restarts = restarts;
             o.restart_chi2 = restart_chi2;
             o.lambda_start = lambda_start;
             return std::make_unique<stokes::MEInversion>(std::move(me), o);
           }),
           py::arg("model"), py::arg("free"), py::arg("lower"), py::arg("upper"), py::arg("weights"), py::arg("mu"),
           py::arg("max_iterations"), py::arg("tolerance"), py::arg("chi2_threshold"), py::arg("dark_threshold"),
           py::arg("restarts") = 0, py::arg("restart_chi2") = 2.0, py::arg("precision") = "float64",
           py::arg("lambda_start") = 0.1)
      .def(
          "invert",
          [](const stokes::MEInversion& inv, Arr stokes_, Arr sigma, Arr init, bool want_fit, int threads,
             std::optional<Arr> stray) {
            const int64_t m = inv.n_wavelength();
            if (stokes_.ndim() != 3 || stokes_.shape(1) != 4 || stokes_.shape(2) != m)
              throw TypeMismatch("stokes must be (n, 4, " + std::to_string(m) + ")");
            const int64_t n = stokes_.shape(0);
            bool per_pixel = false;
            if (sigma.ndim() == 3 && sigma.shape(0) == n && sigma.shape(1) == 4 && sigma.shape(2) == m)
              per_pixel = true;
            else if (!(sigma.ndim() == 2 && sigma.shape(0) == 4 && sigma.shape(1) == m))
              throw TypeMismatch("sigma must be (n, 4, m) or (4, m)");
            if (init.ndim() != 2 || init.shape(0) != n || init.shape(1) != stokes::kMeInvParameters)
              throw TypeMismatch("init must be (n, 12)");
            bool stray_per_pixel = false;
            if (stray) {
              if (stray->ndim() == 3 && stray->shape(0) == n && stray->shape(1) == 4 && stray->shape(2) == m)
                stray_per_pixel = true;
              else if (!(stray->ndim() == 2 && stray->shape(0) == 4 && stray->shape(1) == m))
                throw TypeMismatch("stray must be (n, 4, m) or (4, m)");
            }
            const double* stray_data = stray ? stray->data() : nullptr;
            const int64_t P = stokes::kMeInvParameters, C = stokes::kMeCorrelated;
            Arr params({n, P}), errors({n, P}), corr({n, C, C}), chi2({n, int64_t{5}});
            py::array_t<int32_t> iters(n);
            py::array_t<int8_t> status(n), restarts(n);
            Arr fit(want_fit ? std::vector<py::ssize_t>{n, 4, m} : std::vector<py::ssize_t>{0});
            stokes::MEInversionOutputs o;
            o.parameters = params.mutable_data();
            o.errors = errors.mutable_data();
            o.correlations = corr.mutable_data();
            o.chi2 = chi2.mutable_data();
            o.iterations = iters.mutable_data();
            o.status = status.mutable_data();
            o.restarts = restarts.mutable_data();
            o.fit = want_fit ? fit.mutable_data() : nullptr;
            {
              py::gil_scoped_release release;
              inv.invert(n, stokes_.data(), sigma.data(), per_pixel, init.data(), o, threads, stray_data,
                         stray_per_pixel);
            }
            py::dict d;
            d["parameters"] = params;
            d["errors"] = errors;
            d["correlations"] = corr;
            d["chi2"] = chi2;
            d["iterations"] = iters;
            d["status"] = status;
            d["restarts"] = restarts;
            if (want_fit) d["fit"] = fit;
            return d;
          },
          py::arg("stokes"), py::arg("sigma"), py::arg("init"), py::arg("fit") = false, py::arg("threads") = 0,
          py::arg("stray") = py::none());

  m.def("default_strength_ratios", [](const std::vector<std::string>& names) {
    std::vector<stokes::SpectralLine> lines;
    for (const auto& nm : names) lines.push_back(stokes::get_line(nm));
    return stokes::default_strength_ratios(lines);
  });

  m.def(
      "apply_operator",
      [](int64_t n_in, IArr start, Arr weights, Arr spectra) {
        const stokes::BandedOperator op = make_operator(n_in, start, weights);
        if (spectra.ndim() < 1 || spectra.shape(spectra.ndim() - 1) != n_in)
          throw InvalidArgument("spectra: the last axis must have the synthesis grid's length " + std::to_string(n_in));
        std::vector<py::ssize_t> shape(spectra.shape(), spectra.shape() + spectra.ndim());
        shape.back() = op.n_out;
        Arr out(shape);
        const int64_t rows = spectra.size() / n_in;
        const double* in = spectra.data();
        double* o = out.mutable_data();
        {
          py::gil_scoped_release release;
          op.apply_rows(in, o, rows);
        }
        return out;
      },
      py::arg("n_in"), py::arg("start"), py::arg("weights"), py::arg("spectra"),
      "Apply a banded (LSF + resampling) operator along the last axis.");
}

}  // namespace fastinv::python
