// Locating the shipped data relative to the library's own file (dladdr), so that an
// installed tree works wherever it was installed or moved to.
#include <dlfcn.h>
#include <sys/stat.h>

#include <cstdlib>
#include <string>
#include <vector>

#include "fastinv/data.hpp"
#include "fastinv/error.hpp"

namespace fastinv {

namespace {

// Every data directory holds the default response table: its presence marks the right place.
constexpr const char* kMarker = "aia_v10_eve.csv";

bool is_file(const std::string& path) {
  struct stat st{};
  return ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

bool has_data(const std::string& dir) { return !dir.empty() && is_file(dir + "/" + kMarker); }

// Directory of the file this function was linked into: libfastinv.so, the Python module
// or a statically linked executable.
std::string own_directory() {
  Dl_info info{};
  if (::dladdr(reinterpret_cast<void*>(&own_directory), &info) == 0 || info.dli_fname == nullptr) return {};
  std::string path = info.dli_fname;
  const auto slash = path.rfind('/');
  return slash == std::string::npos ? std::string(".") : path.substr(0, slash);
}

}  // namespace

std::string data_dir() {
  if (const char* env = std::getenv("FASTINV_DATA_DIR"); env != nullptr && *env != '\0') {
    if (!has_data(env))
      throw IoError(std::string("FASTINV_DATA_DIR=") + env + " does not hold fastinv's data (no " + kMarker +
                    "); point it at <prefix>/share/fastinv or unset it");
    return env;
  }
  std::vector<std::string> tried;
  const std::string own = own_directory();
  if (!own.empty()) {
    // <prefix>/lib/libfastinv.so, <prefix>/bin/app (static), the wheel's fastinv/lib/ and fastinv/_core
    for (const char* rel : {"/../share/fastinv", "/../data", "/data"}) {
      tried.push_back(own + rel);
      if (has_data(tried.back())) return tried.back();
    }
  }
  tried.push_back(FASTINV_INSTALL_DATADIR);
  if (has_data(tried.back())) return tried.back();
  std::string msg = "fastinv's data (models, response tables) was not found; looked in";
  for (const auto& t : tried) msg += " " + t;
  throw IoError(msg + "; set FASTINV_DATA_DIR to <prefix>/share/fastinv");
}

std::string data_path(const std::string& name) {
  const std::string path = data_dir() + "/" + name;
  if (!is_file(path)) throw IoError(path + ": no such file in fastinv's data directory");
  return path;
}

const char* version() { return FASTINV_VERSION_STRING; }

}  // namespace fastinv
