// Python bindings of the shared Stokes pieces: Faddeeva/Voigt, the line registry and
// Zeeman patterns (fastinv.stokes.faddeeva / .lines / .zeeman wrap these).
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include "fastinv/error.hpp"
#include "fastinv/stokes/faddeeva.hpp"
#include "fastinv/stokes/lines.hpp"
#include "fastinv/stokes/spectral_operator.hpp"
#include "fastinv/stokes/zeeman.hpp"
#include "python/bindings.hpp"
#include "stokes/me_types.hpp"

namespace py = pybind11;

namespace fastinv::python {
namespace {

using stokes::SpectralLine;

py::dict line_to_dict(const SpectralLine& l) {
  py::dict d;
  d["name"] = l.name;
  d["element"] = l.element;
  d["ion"] = l.ion;
  d["mass_amu"] = l.mass_amu;
  d["wavelength"] = l.wavelength;
  d["chi_low"] = l.chi_low;
  d["log_gf"] = l.log_gf;
  d["j_low"] = l.j_low;
  d["j_up"] = l.j_up;
  d["g_low"] = l.g_low;
  d["g_up"] = l.g_up;
  d["abo_alpha"] = l.abo_alpha;
  d["abo_sigma"] = l.abo_sigma;
  d["source"] = l.source;
  d["g_eff"] = l.g_eff();
  return d;
}

template <typename T>
T get_field(const py::dict& d, const char* key) {
  if (!d.contains(key)) throw InvalidArgument(std::string("spectral line: missing field '") + key + "'");
  try {
    return d[key].cast<T>();
  } catch (const py::cast_error&) {
    throw TypeMismatch(std::string("spectral line: field '") + key + "' has the wrong type");
  }
}

SpectralLine line_from_dict(const py::dict& d) {
  SpectralLine l;
  l.name = get_field<std::string>(d, "name");
  l.element = get_field<std::string>(d, "element");
  l.ion = get_field<int>(d, "ion");
  l.mass_amu = get_field<double>(d, "mass_amu");
  l.wavelength = get_field<double>(d, "wavelength");
  l.chi_low = get_field<double>(d, "chi_low");
  l.log_gf = get_field<double>(d, "log_gf");
  l.j_low = get_field<double>(d, "j_low");
  l.j_up = get_field<double>(d, "j_up");
  l.g_low = get_field<double>(d, "g_low");
  l.g_up = get_field<double>(d, "g_up");
  l.abo_alpha = d.contains("abo_alpha") ? get_field<double>(d, "abo_alpha") : 0.0;
  l.abo_sigma = d.contains("abo_sigma") ? get_field<double>(d, "abo_sigma") : 0.0;
  l.source = d.contains("source") ? get_field<std::string>(d, "source") : std::string();
  return l;
}

const char* type_name(stokes::ZeemanType t) {
  switch (t) {
    case stokes::ZeemanType::sigma_b:
      return "sigma_b";
    case stokes::ZeemanType::pi:
      return "pi";
    case stokes::ZeemanType::sigma_r:
      return "sigma_r";
  }
  return "?";
}

}  // namespace

void bind_stokes(py::module_& m) {
  using Arr = py::array_t<double, py::array::c_style | py::array::forcecast>;
  using CArr = py::array_t<std::complex<double>, py::array::c_style | py::array::forcecast>;

  m.def(
      "faddeeva",
      [](CArr z) {
        CArr out(z.request().shape);
        const auto* zi = z.data();
        auto* o = out.mutable_data();
        const py::ssize_t n = z.size();
        {
          py::gil_scoped_release release;
          for (py::ssize_t i = 0; i < n; ++i) o[i] = stokes::faddeeva(zi[i]);
        }
        return out;
      },
      py::arg("z"), "Faddeeva function w(z) = exp(-z^2) erfc(-iz), element-wise.");

  m.def(
      "voigt_faraday",
      [](double a, Arr v) {
        Arr H(v.request().shape), F(v.request().shape);
        {
          py::gil_scoped_release release;
          stokes::voigt_faraday(a, v.data(), static_cast<std::size_t>(v.size()), H.mutable_data(), F.mutable_data());
        }
        return py::make_tuple(H, F);
      },
      py::arg("a"), py::arg("v"), "(H, F) with H + iF = w(v + ia), a >= 0.");

  m.def(
      "gaussian_resample_rows",
      [](Arr rows, double h, double sigma, int64_t first, int64_t stride, int64_t n_out, const std::string& precision) {
        if (rows.ndim() != 2) throw InvalidArgument("gaussian_resample_rows: rows must be 2-D (rows, n)");
        const int64_t r = rows.shape(0), n = rows.shape(1);
        if (!(h > 0.0 && sigma > 0.0) || n < 1 || stride < 1 || first < 0 || n_out < 1 ||
            first + (n_out - 1) * stride > n - 1)
          throw InvalidArgument("gaussian_resample_rows: need h, sigma > 0 and outputs inside the grid");
        if (precision != "float64" && precision != "float32")
          throw InvalidArgument("precision must be 'float64' or 'float32', got '" + precision + "'");
        Arr out({r, n_out});
        {
          py::gil_scoped_release release;
          std::vector<double> kernel;
          if (precision == "float32") {
            const std::vector<float> rows32(rows.data(), rows.data() + r * n);  // the float32 rows' type
            stokes::detail::gaussian_resample_rows32(rows32.data(), r, n, h, sigma, first, stride, n_out,
                                                     out.mutable_data(), kernel);
          } else
            stokes::gaussian_resample_rows(rows.data(), r, n, h, sigma, first, stride, n_out, out.mutable_data(),
                                           kernel);
        }
        return out;
      },
      py::arg("rows"), py::arg("h"), py::arg("sigma"), py::arg("first"), py::arg("stride"), py::arg("n_out"),
      py::arg("precision") = "float64",
      "Gaussian LSF (sigma, grid step h) + every stride-th output from first, per row: the ME "
      "instrument's resampling (float32: the float32 Jacobian rows' arithmetic). For tests.");
  m.def(
      "faddeeva_isa", [] { return std::string(stokes::faddeeva_isa()); },
      "Instruction set of the Faddeeva kernel in use (lower it with FASTINV_ISA).");
  m.def("line_names", &stokes::line_names);
  m.def("get_line", [](const std::string& name) { return line_to_dict(stokes::get_line(name)); }, py::arg("name"));
  m.def("register_line", [](const py::dict& d) { stokes::register_line(line_from_dict(d)); }, py::arg("line"));
  m.def("lande_g_ls", &stokes::lande_g_ls, py::arg("L"), py::arg("S"), py::arg("J"));
  m.def("wigner_3j", &stokes::wigner_3j, py::arg("j1"), py::arg("j2"), py::arg("j3"), py::arg("m1"), py::arg("m2"),
        py::arg("m3"));
  m.def(
      "zeeman_pattern",
      [](double j_low, double g_low, double j_up, double g_up) {
        const stokes::ZeemanPattern p = stokes::zeeman_pattern(j_low, g_low, j_up, g_up);
        py::list comps;
        for (const auto& c : p.components) {
          py::dict d;
          d["type"] = type_name(c.type);
          d["q"] = static_cast<int>(c.type);
          d["m_low"] = c.m_low;
          d["m_up"] = c.m_up;
          d["shift"] = c.shift;
          d["strength"] = c.strength;
          comps.append(d);
        }
        return py::make_tuple(comps, p.g_eff);
      },
      py::arg("j_low"), py::arg("g_low"), py::arg("j_up"), py::arg("g_up"),
      "Zeeman components (list of dicts) and g_eff of a J_l -> J_u transition.");
}

}  // namespace fastinv::python
