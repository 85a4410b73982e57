// Temperature-response tables: CSV parsing and the log-linear interpolation of
// python/fastinv/dem/response.py, written so that the numbers are NumPy's (np.interp's
// formula, libm's log10/pow), bitwise.
#include "fastinv/dem/response.hpp"

#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string_view>

#include "fastinv/data.hpp"
#include "fastinv/error.hpp"

namespace fastinv::dem {

namespace {

std::string trim(std::string_view s) {
  const auto b = s.find_first_not_of(" \t\r\n");
  if (b == std::string_view::npos) return {};
  const auto e = s.find_last_not_of(" \t\r\n");
  return std::string(s.substr(b, e - b + 1));
}

std::vector<std::string> split(const std::string& line) {
  std::vector<std::string> out;
  std::size_t start = 0;
  for (;;) {
    const auto comma = line.find(',', start);
    out.push_back(trim(std::string_view(line).substr(start, comma - start)));
    if (comma == std::string::npos) return out;
    start = comma + 1;
  }
}

double to_double(const std::string& s, const std::string& name) {
  errno = 0;
  char* end = nullptr;
  const double v = std::strtod(s.c_str(), &end);
  if (s.empty() || end != s.c_str() + s.size() || errno == ERANGE)
    throw InvalidArgument("response table '" + name + "': non-numeric value '" + s + "'");
  return v;
}

bool is_shipped(const std::string& table) {
  return table == "aia_v10_eve" || table == "aia_v10_eve_noblend" || table == "aia_v9_eve";
}

// np.interp for one point (numpy/_core/src/multiarray/compiled_base.c: exact at the nodes,
// slope * (x - xp[j]) + fp[j] in between).
double interp(double x, const std::vector<double>& xp, const double* fp) {
  const std::size_t n = xp.size();
  if (x <= xp[0]) return fp[0];
  if (x >= xp[n - 1]) return fp[n - 1];
  std::size_t lo = 0, hi = n - 1;  // xp[lo] <= x < xp[hi]
  while (hi - lo > 1) {
    const std::size_t mid = (lo + hi) / 2;
    (xp[mid] <= x ? lo : hi) = mid;
  }
  if (xp[lo] == x) return fp[lo];
  const double slope = (fp[lo + 1] - fp[lo]) / (xp[lo + 1] - xp[lo]);
  double r = slope * (x - xp[lo]) + fp[lo];
  if (std::isnan(r)) {
    r = slope * (x - xp[lo + 1]) + fp[lo + 1];
    if (std::isnan(r) && fp[lo] == fp[lo + 1]) r = fp[lo];
  }
  return r;
}

}  // namespace

TemperatureResponse TemperatureResponse::parse_csv(const std::string& text, const std::string& name) {
  std::vector<std::string> rows;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    const std::string t = trim(line);
    if (!t.empty() && t[0] != '#') rows.push_back(line);
  }
  if (rows.size() < 3)
    throw InvalidArgument("response table '" + name + "': expected a header line and >= 2 data rows");
  const auto header = split(rows[0]);
  std::string first = header[0];
  for (auto& ch : first) ch = char(std::tolower(static_cast<unsigned char>(ch)));
  if (header.size() < 2 || first != "logt")
    throw InvalidArgument("response table '" + name +
                          "': the first column must be 'logt' (header 'logt,A94,A131,...'), got '" + rows[0] + "'");
  TemperatureResponse r;
  r.name = name;
  r.channels.assign(header.begin() + 1, header.end());
  const std::size_t nt = rows.size() - 1, nchan = r.channels.size();
  r.values.assign(nchan * nt, 0.0);
  for (std::size_t j = 0; j < nt; ++j) {
    const auto cells = split(rows[j + 1]);
    if (cells.size() != header.size())
      throw InvalidArgument("response table '" + name + "': every row needs " + std::to_string(header.size()) +
                            " values");
    r.logt.push_back(to_double(cells[0], name));
    for (std::size_t c = 0; c < nchan; ++c) r.values[c * nt + j] = to_double(cells[c + 1], name);
  }
  for (std::size_t j = 0; j < nt; ++j) {
    if (!std::isfinite(r.logt[j])) throw InvalidArgument("response table '" + name + "': NaN/inf values");
    if (j > 0 && !(r.logt[j] > r.logt[j - 1]))
      throw InvalidArgument("response table '" + name + "': logt must be strictly increasing");
  }
  for (double v : r.values) {
    if (!std::isfinite(v)) throw InvalidArgument("response table '" + name + "': NaN/inf values");
    if (v <= 0)
      throw InvalidArgument(
          "response table '" + name +
          "': responses must be > 0 (log-linear interpolation); replace zeros by a tiny positive value");
  }
  return r;
}

TemperatureResponse TemperatureResponse::load(const std::string& table) {
  const std::string path = is_shipped(table) ? data_path(table + ".csv") : table;
  std::ifstream f(path, std::ios::binary);
  if (!f) {
    if (table.find('/') == std::string::npos && table.find(".csv") == std::string::npos)
      throw InvalidArgument("unknown response table '" + table +
                            "': use aia_v10_eve, aia_v10_eve_noblend, aia_v9_eve or the path of a CSV file");
    throw IoError(path + ": cannot open the response table");
  }
  std::ostringstream text;
  text << f.rdbuf();
  const std::string name = is_shipped(table) ? table : path.substr(path.rfind('/') + 1);
  return parse_csv(text.str(), name);
}

std::vector<double> TemperatureResponse::at(const std::vector<double>& grid) const {
  if (grid.empty()) throw InvalidArgument("logt must be a non-empty 1-d array of finite values");
  double gmin = grid[0], gmax = grid[0];
  for (double g : grid) {
    if (!std::isfinite(g)) throw InvalidArgument("logt must be a non-empty 1-d array of finite values");
    gmin = std::fmin(gmin, g);
    gmax = std::fmax(gmax, g);
  }
  if (gmin < logt.front() - 1e-6 || gmax > logt.back() + 1e-6)
    throw InvalidArgument("logt " + std::to_string(gmin) + ".." + std::to_string(gmax) + " is outside the table '" +
                          name + "' (" + std::to_string(logt.front()) + ".." + std::to_string(logt.back()) + ")");
  const std::size_t nt = logt.size();
  std::vector<double> logk(values.size());
  for (std::size_t i = 0; i < values.size(); ++i) logk[i] = std::log10(values[i]);
  std::vector<double> out(nchan() * grid.size());
  for (std::size_t c = 0; c < nchan(); ++c)
    for (std::size_t j = 0; j < grid.size(); ++j)
      out[c * grid.size() + j] = std::pow(10.0, interp(grid[j], logt, logk.data() + c * nt));
  return out;
}

}  // namespace fastinv::dem
