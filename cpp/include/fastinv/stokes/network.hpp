// A trained Stokes inversion network with its model card: profiles on the model's
// wavelength grid -> the atmosphere at the card's log tau nodes in physical units, plus a
// per-profile status. The C++ port of python/fastinv/stokes/inversion/network.py
// (StokesNet.prepare / run / decode / predict) for C++ and C programs; resampling onto the
// model grid stays the caller's (wavelength() gives the grid). Immutable once loaded: any
// number of threads may call predict() at once, each with its own buffers.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "fastinv/model.hpp"

namespace fastinv::stokes {

// (n, 4, n_wavelength) profiles I, Q, U, V divided by the quiet-Sun continuum, on the model's
// grid; strides in elements (any sign), float32 or float64.
struct StokesProfiles {
  const void* data = nullptr;
  DType dtype = DType::f32;
  int64_t n = 0;
  int64_t stride_profile = 0, stride_stokes = 0, stride_wavelength = 0;
};

// Per-profile status (the Python STOKES_STATUS): 0 ok, 1 a non-finite input value (every
// output of that profile NaN). Values may be added, never renumbered.
enum class StokesStatus : std::uint8_t { ok = 0, bad_input = 1 };

class StokesNetwork {
 public:
  // A .safetensors Stokes model written by fastinv.export with its "fastinv.card" metadata.
  // Throws IoError / InvalidArgument (no card, inconsistent card, not a Stokes model).
  static StokesNetwork load(const std::string& path, const LoadOptions& options = {});
  // The model shipped for an instrument: "hinode" (Hinode SP) or "visp" (DKIST ViSP).
  static StokesNetwork load_shipped(const std::string& instrument = "hinode", const LoadOptions& options = {});
  // "hinode_sp" or "visp" for a user's spelling (hinode, sp, visp, dkist, ...); InvalidArgument otherwise.
  static std::string instrument_key(const std::string& name);

  const Model& model() const { return model_; }
  const std::string& instrument() const { return instrument_; }          // "hinode_sp" or "visp"
  const std::vector<double>& wavelength() const { return wavelength_; }  // model grid, A (air)
  const std::vector<double>& nodes() const { return nodes_; }            // log tau_500
  // Decoded quantities in output order (the card's outputs, azimuth_sin2/cos2 -> "azimuth"
  // last) and their units (astropy strings, "" for none).
  const std::vector<std::string>& quantities() const { return quantities_; }
  const std::vector<std::string>& units() const { return units_; }

  // out: (quantities().size(), n, nodes().size()) float32, C-contiguous; status: (n) or null.
  // The azimuth is in [0, 180) deg, the inclination clipped to [0, 180] deg, B to >= 0.
  // threads <= 0: OpenMP default.
  void predict(const StokesProfiles& profiles, float* out, std::uint8_t* status, int threads = 0) const;

 private:
  StokesNetwork(Model model, const std::string& path);
  Model model_;
  std::string instrument_;
  std::vector<double> wavelength_, nodes_;
  std::vector<int> channels_;          // Stokes index (I=0 .. V=3) of each network input channel
  std::vector<float> offset_, scale_;  // per input channel
  std::vector<std::string> outputs_;   // network output quantities (card order)
  std::vector<float> mean_, std_;      // per network output column
  std::vector<std::string> quantities_, units_;
  std::vector<int> source_;  // output column block of each quantity (azimuth: -1)
  int az_sin_ = -1, az_cos_ = -1;
};

}  // namespace fastinv::stokes
