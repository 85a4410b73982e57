// The data fastinv ships (trained models, AIA temperature-response tables) and where an
// embedding program finds them.
#pragma once
#include <string>

namespace fastinv {

// The directory of the shipped data, the first of:
//   1. $FASTINV_DATA_DIR (an error if set to a directory without the data);
//   2. share/fastinv beside the installed library (<prefix>/lib/../share/fastinv), or the
//      data/ folder of the Python package when the library is the wheel's;
//   3. <install prefix>/share/fastinv as configured at build time.
// Throws IoError naming the places it looked when none holds the data.
std::string data_dir();

// data_dir() + "/" + name; throws IoError if that file does not exist.
std::string data_path(const std::string& name);

// The library's version, e.g. "0.1.0".
const char* version();

}  // namespace fastinv
