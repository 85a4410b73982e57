// fastinv from C++ through find_package(fastinv): Basis Pursuit DEMs of an AIA image and a
// Stokes network's atmosphere, each written as raw float64 for comparison.
//
//   fastinv_cpp_example bp IMAGE NPIX EM_OUT           IMAGE: (6, NPIX) float64 DN/s
//   fastinv_cpp_example stokes PROFILES N OUT          PROFILES: (N, 4, n_wavelength) float64
//
// bp uses the AIA error model with 2 s exposures; EM_OUT is (n_bins, NPIX) cm^-5. stokes uses
// the shipped Hinode SP model; OUT is (n_quantities, N, n_nodes).
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <string>
#include <vector>

#include "fastinv/fastinv.hpp"

namespace {

std::vector<double> read_doubles(const std::string& path, std::size_t n) {
  std::vector<double> v(n);
  std::ifstream f(path, std::ios::binary);
  if (!f.read(reinterpret_cast<char*>(v.data()), std::streamsize(n * sizeof(double))))
    throw fastinv::IoError("cannot read " + std::to_string(n) + " float64 values from " + path);
  return v;
}

template <class T>
void write_doubles(const std::string& path, const std::vector<T>& values) {
  std::vector<double> v(values.begin(), values.end());
  std::ofstream f(path, std::ios::binary);
  if (!f.write(reinterpret_cast<const char*>(v.data()), std::streamsize(v.size() * sizeof(double))))
    throw fastinv::IoError("cannot write " + path);
}

int run_bp(const std::string& image, int64_t npix, const std::string& out_path) {
  const fastinv::dem::AiaBasisPursuit bp;  // SSW V1.001 defaults, shipped AIA V10 response
  const std::vector<double> y = read_doubles(image, 6 * std::size_t(npix));
  std::vector<double> em(bp.nt() * std::size_t(npix)), chi2(static_cast<std::size_t>(npix));
  std::vector<std::int8_t> status(static_cast<std::size_t>(npix));
  fastinv::dem::DeepEmChi2 errors;
  errors.mode = fastinv::dem::DeepEmErrors::aia;
  for (double& t : errors.exptime) t = 2.0;
  fastinv::dem::AiaBpOutput out;
  out.em = em.data();
  out.status = status.data();
  out.chi2 = chi2.data();
  bp.solve({y.data(), fastinv::DType::f64, npix, npix, 1}, errors, out);
  int64_t ok = 0;
  for (auto s : status) ok += s == 0;
  std::cout << "Basis Pursuit: " << npix << " pixels, " << ok << " ok, " << bp.nt() << " bins\n";
  write_doubles(out_path, em);
  return 0;
}

int run_stokes(const std::string& profiles, int64_t n, const std::string& out_path) {
  const auto net = fastinv::stokes::StokesNetwork::load_shipped("hinode");
  const int64_t nl = int64_t(net.wavelength().size());
  const std::vector<double> x = read_doubles(profiles, std::size_t(n * 4 * nl));
  std::vector<float> out(net.quantities().size() * std::size_t(n) * net.nodes().size());
  std::vector<std::uint8_t> status(static_cast<std::size_t>(n));
  net.predict({x.data(), fastinv::DType::f64, n, 4 * nl, nl, 1}, out.data(), status.data());
  std::cout << "Stokes network (" << net.instrument() << "):";
  for (std::size_t q = 0; q < net.quantities().size(); ++q)
    std::cout << " " << net.quantities()[q] << " [" << net.units()[q] << "]";
  std::cout << " at " << net.nodes().size() << " nodes\n";
  write_doubles(out_path, out);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 5) {
    std::cerr << "usage: " << argv[0] << " bp|stokes INPUT N OUT\n";
    return 2;
  }
  try {
    const std::string mode = argv[1];
    const int64_t n = std::atoll(argv[3]);
    if (mode == "bp") return run_bp(argv[2], n, argv[4]);
    if (mode == "stokes") return run_stokes(argv[2], n, argv[4]);
    std::cerr << "unknown mode " << mode << "\n";
    return 2;
  } catch (const fastinv::Error& e) {  // every fastinv error: InvalidArgument, IoError, ...
    std::cerr << "fastinv: " << e.what() << "\n";
    return 1;
  }
}
