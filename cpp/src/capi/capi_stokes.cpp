// C API: Stokes inversion networks (fastinv::stokes::StokesNetwork).
#include <memory>
#include <string>

#include "capi_common.hpp"
#include "capi_handles.hpp"

using namespace fastinv::capi;
using fastinv::InvalidArgument;

extern "C" {

fastinv_status fastinv_stokes_load(const char* path, const char* instrument, fastinv_stokes** net) {
  return fastinv_stokes_load_with(path, instrument, nullptr, net);
}

fastinv_status fastinv_stokes_load_with(const char* path, const char* instrument, const fastinv_load_options* options,
                                        fastinv_stokes** net) {
  return guard([&] {
    const char* fn = "fastinv_stokes_load";
    require(net, fn, "net");
    *net = nullptr;
    if (!path && !instrument) throw InvalidArgument("fastinv_stokes_load: give a model path or an instrument");
    const fastinv::LoadOptions lo = load_options(options, fn);
    auto loaded = path ? fastinv::stokes::StokesNetwork::load(path, lo)
                       : fastinv::stokes::StokesNetwork::load_shipped(instrument, lo);
    if (path && instrument) {
      const auto shipped_key = fastinv::stokes::StokesNetwork::instrument_key(instrument);
      if (shipped_key != loaded.instrument())
        throw InvalidArgument(std::string(path) + " is a model for " + loaded.instrument() + ", not " + shipped_key);
    }
    *net = std::make_unique<fastinv_stokes>(fastinv_stokes{std::move(loaded)}).release();
  });
}

void fastinv_stokes_destroy(fastinv_stokes* net) { std::unique_ptr<fastinv_stokes> owned(net); }

fastinv_status fastinv_stokes_sizes(const fastinv_stokes* net, int32_t* n_wavelength, int32_t* n_nodes,
                                    int32_t* n_quantities) {
  return guard([&] {
    const char* fn = "fastinv_stokes_sizes";
    require(net, fn, "net");
    *require(n_wavelength, fn, "n_wavelength") = int32_t(net->net.wavelength().size());
    *require(n_nodes, fn, "n_nodes") = int32_t(net->net.nodes().size());
    *require(n_quantities, fn, "n_quantities") = int32_t(net->net.quantities().size());
  });
}

fastinv_status fastinv_stokes_grid(const fastinv_stokes* net, double* wavelength, double* nodes) {
  return guard([&] {
    require(net, "fastinv_stokes_grid", "net");
    if (wavelength)
      for (size_t i = 0; i < net->net.wavelength().size(); ++i) wavelength[i] = net->net.wavelength()[i];
    if (nodes)
      for (size_t i = 0; i < net->net.nodes().size(); ++i) nodes[i] = net->net.nodes()[i];
  });
}

fastinv_status fastinv_stokes_quantity(const fastinv_stokes* net, int32_t i, const char** name, const char** unit) {
  return guard([&] {
    const char* fn = "fastinv_stokes_quantity";
    require(net, fn, "net");
    const auto& q = net->net.quantities();
    if (i < 0 || size_t(i) >= q.size())
      throw InvalidArgument("fastinv_stokes_quantity: index " + std::to_string(i) + " is outside 0.." +
                            std::to_string(q.size() - 1));
    if (name) *name = q[size_t(i)].c_str();
    if (unit) *unit = net->net.units()[size_t(i)].c_str();
  });
}

fastinv_status fastinv_stokes_predict(const fastinv_stokes* net, const fastinv_stokes_profiles* profiles, float* out,
                                      uint8_t* status, int threads) {
  return guard([&] {
    const char* fn = "fastinv_stokes_predict";
    require(net, fn, "net");
    require(profiles, fn, "profiles");
    fastinv::stokes::StokesProfiles p;
    p.dtype = dtype_of(profiles->dtype, fn);
    p.n = profiles->n;
    require_at_least(p.n, 0, fn, "profiles->n");
    p.data = p.n > 0 ? require(profiles->data, fn, "profiles->data") : profiles->data;
    if (p.n > 0) require(out, fn, "out");
    p.stride_profile = profiles->stride_profile;
    p.stride_stokes = profiles->stride_stokes;
    p.stride_wavelength = profiles->stride_wavelength;
    net->net.predict(p, out, status, threads);
  });
}

}  // extern "C"
