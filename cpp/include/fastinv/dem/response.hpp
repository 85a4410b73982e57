// AIA temperature responses K_c(log T): the tables shipped with fastinv (data_dir()) or a
// user's CSV, interpolated log-linearly onto a DEM grid as SSW aia_sparse_em_init does.
// The same tables and rules as python/fastinv/dem/response.py.
#pragma once
#include <cstddef>
#include <string>
#include <vector>

namespace fastinv::dem {

struct TemperatureResponse {
  std::vector<double> logt;           // strictly increasing
  std::vector<double> values;         // (nchan, logt.size()) row-major, DN cm^5 s^-1 pixel^-1, > 0
  std::vector<std::string> channels;  // e.g. "A94", ..., "A335"
  std::string name;                   // shipped table name or file name

  std::size_t nchan() const { return channels.size(); }

  // A shipped table ("aia_v10_eve" (default), "aia_v10_eve_noblend", "aia_v9_eve") or the
  // path of a CSV file: header "logt,<chan>,...", '#' comment lines, responses > 0.
  // Throws InvalidArgument (bad content, unknown name) or IoError (unreadable file).
  static TemperatureResponse load(const std::string& table = "aia_v10_eve");
  static TemperatureResponse parse_csv(const std::string& text, const std::string& name);

  // 10^interp(grid, logt, log10(values)) per channel: (nchan, grid.size()) row-major.
  // Throws InvalidArgument for an empty/non-finite grid or one outside the table.
  std::vector<double> at(const std::vector<double>& grid) const;
};

}  // namespace fastinv::dem
