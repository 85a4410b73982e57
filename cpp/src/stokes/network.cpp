// StokesNetwork: card validation, input transform and decode of
// python/fastinv/stokes/inversion/network.py, in float32 with the same operations in the same
// order (compiled without FMA contraction), so the outputs equal StokesNet.predict's; the
// azimuth goes through atan2f, whose last bit may differ from NumPy's float32 arctan2.
#include "fastinv/stokes/network.hpp"

#include <cmath>
#include <limits>
#include <map>
#include <utility>

#include "fastinv/data.hpp"
#include "fastinv/error.hpp"
#include "json.hpp"

namespace fastinv::stokes {

std::string StokesNetwork::instrument_key(const std::string& name) {
  std::string n;
  for (char ch : name) n += char(std::tolower(static_cast<unsigned char>(ch)));
  if (n == "hinode" || n == "hinode_sp" || n == "sp") return "hinode_sp";
  if (n == "visp" || n == "dkist" || n == "dkist_visp") return "visp";
  throw InvalidArgument("unknown instrument '" + name + "': use 'hinode' (Hinode SOT/SP) or 'visp' (DKIST ViSP)");
}

namespace {

[[noreturn]] void card_error(const std::string& path, const std::string& msg) {
  throw InvalidArgument(path + ": not a usable fastinv Stokes model: " + msg);
}

std::vector<double> numbers(const json::Value* v, const std::string& path, const char* key) {
  if (v == nullptr || !v->is_array()) card_error(path, std::string("card ") + key + " must be an array of numbers");
  std::vector<double> out;
  for (const auto& e : v->array) {
    if (!e.is_number()) card_error(path, std::string("card ") + key + " must be an array of numbers");
    out.push_back(e.number);
  }
  return out;
}

std::vector<std::string> strings(const json::Value* v, const std::string& path, const char* key) {
  if (v == nullptr || !v->is_array()) card_error(path, std::string("card ") + key + " must be an array of strings");
  std::vector<std::string> out;
  for (const auto& e : v->array) {
    if (!e.is_string()) card_error(path, std::string("card ") + key + " must be an array of strings");
    out.push_back(e.string);
  }
  return out;
}

std::vector<float> floats(const std::vector<double>& v) { return std::vector<float>(v.begin(), v.end()); }

// np.remainder for float32 (npy_divmodf): the sign of the divisor.
float remainder180(float a) {
  float mod = std::fmod(a, 180.0f);
  if (mod != 0.0f) {
    if (mod < 0.0f) mod += 180.0f;
  } else {
    mod = 0.0f;
  }
  return mod;
}

}  // namespace

StokesNetwork StokesNetwork::load(const std::string& path, const LoadOptions& options) {
  return StokesNetwork(Model::load(path, options), path);
}

StokesNetwork StokesNetwork::load_shipped(const std::string& instrument, const LoadOptions& options) {
  const std::string key = instrument_key(instrument);
  return load(data_path(key == "visp" ? "stokes_visp.safetensors" : "stokes_hinode.safetensors"), options);
}

StokesNetwork::StokesNetwork(Model model, const std::string& path) : model_(std::move(model)) {
  const auto& meta = model_.metadata();
  const auto it = meta.find("fastinv.card");
  if (it == meta.end())
    card_error(path, "it has no 'fastinv.card' metadata (write it with fastinv.export(..., metadata=...))");
  const json::Value card = json::parse(it->second, path + ": the model card");
  if (!card.is_object()) card_error(path, "the model card is not a JSON object");
  const json::Value* kind = card.find("kind");
  if (!kind || !kind->is_string() || kind->string != "fastinv.stokes")
    card_error(path, "card kind is not 'fastinv.stokes' (is this a DeepEM or other model?)");
  for (const char* key : {"wavelength", "input", "nodes", "outputs", "output_mean", "output_std", "instrument"})
    if (!card.find(key)) card_error(path, std::string("the card has no '") + key + "'");
  const json::Value* inst = card.find("instrument");
  if (!inst->is_string()) card_error(path, "card instrument must be a string");
  instrument_ = instrument_key(inst->string);
  wavelength_ = numbers(card.find("wavelength"), path, "wavelength");
  const json::Value* inp = card.find("input");
  if (!inp->is_object() || !inp->find("stokes") || !inp->find("offset") || !inp->find("scale"))
    card_error(path, "card 'input' needs 'stokes', 'offset' and 'scale'");
  const std::map<std::string, int> index{{"I", 0}, {"Q", 1}, {"U", 2}, {"V", 3}};
  for (const auto& s : strings(inp->find("stokes"), path, "input.stokes")) {
    const auto f = index.find(s);
    bool dup = false;
    for (int c : channels_) dup = dup || (f != index.end() && c == f->second);
    if (f == index.end() || dup) card_error(path, "card input.stokes must be distinct names among I, Q, U, V");
    channels_.push_back(f->second);
  }
  if (channels_.empty()) card_error(path, "card input.stokes must be distinct names among I, Q, U, V");
  offset_ = floats(numbers(inp->find("offset"), path, "input.offset"));
  scale_ = floats(numbers(inp->find("scale"), path, "input.scale"));
  if (offset_.size() != channels_.size() || scale_.size() != channels_.size())
    card_error(path, "card input.offset/scale must have one value per input Stokes parameter");
  const int64_t n_wl = int64_t(wavelength_.size());
  if (model_.input_layout() != "ncl" || model_.input_shape() != std::vector<int64_t>{int64_t(channels_.size()), n_wl})
    card_error(path, "the network's per-sample input does not match the card's (channels, wavelengths)");
  for (std::size_t i = 0; i < wavelength_.size(); ++i)
    if (!std::isfinite(wavelength_[i]) || (i > 0 && !(wavelength_[i] > wavelength_[i - 1])))
      card_error(path, "card wavelength must be strictly increasing and finite");
  if (wavelength_.size() < 2) card_error(path, "card wavelength must be strictly increasing and finite");
  nodes_ = numbers(card.find("nodes"), path, "nodes");
  outputs_ = strings(card.find("outputs"), path, "outputs");
  for (std::size_t i = 0; i < outputs_.size(); ++i)
    for (std::size_t j = 0; j < i; ++j)
      if (outputs_[i] == outputs_[j]) card_error(path, "card nodes and outputs must be non-empty (outputs distinct)");
  if (nodes_.empty() || outputs_.empty())
    card_error(path, "card nodes and outputs must be non-empty (outputs distinct)");
  const int64_t k = int64_t(nodes_.size() * outputs_.size());
  if (model_.output_shape() != std::vector<int64_t>{k})
    card_error(path, "the network's output size is not the card's quantities x nodes = " + std::to_string(k));
  const std::vector<double> mean = numbers(card.find("output_mean"), path, "output_mean");
  const std::vector<double> sd = numbers(card.find("output_std"), path, "output_std");
  for (const auto* v : {&mean, &sd}) {
    bool finite = int64_t(v->size()) == k;
    for (double x : *v) finite = finite && std::isfinite(x);
    if (!finite) card_error(path, "card output_mean/output_std must hold " + std::to_string(k) + " finite numbers");
  }
  mean_ = floats(mean);
  std_ = floats(sd);
  std::map<std::string, std::string> unit{{"temperature", "K"},   {"vlos", "km/s"},   {"B", "G"},       {"B_los", "G"},
                                          {"inclination", "deg"}, {"azimuth", "deg"}, {"vmic", "km/s"}, {"log_pe", ""}};
  if (const json::Value* u = card.find("units"); u && u->is_object())
    for (const auto& [key, val] : u->object)
      if (val.is_string()) unit[key] = val.string;
  for (std::size_t q = 0; q < outputs_.size(); ++q) {
    if (outputs_[q] == "azimuth_sin2") {
      az_sin_ = int(q);
    } else if (outputs_[q] == "azimuth_cos2") {
      az_cos_ = int(q);
    } else {
      quantities_.push_back(outputs_[q]);
      source_.push_back(int(q));
    }
  }
  if ((az_sin_ < 0) != (az_cos_ < 0))
    card_error(path, "card outputs need both azimuth_sin2 and azimuth_cos2, or neither");
  if (az_sin_ >= 0) {
    quantities_.push_back("azimuth");
    source_.push_back(-1);
  }
  for (const auto& q : quantities_) units_.push_back(unit.count(q) ? unit[q] : "");
}

void StokesNetwork::predict(const StokesProfiles& in, float* out, std::uint8_t* status, int threads) const {
  if (in.n < 0) throw InvalidArgument("Stokes network: negative profile count");
  if (in.dtype != DType::f32 && in.dtype != DType::f64)
    throw TypeMismatch("Stokes network: profiles must be float32 or float64");
  if (in.n == 0) return;
  if (!in.data || !out) throw InvalidArgument("Stokes network: null profiles or output array");
  const int64_t n = in.n, nc = int64_t(channels_.size()), nl = int64_t(wavelength_.size());
  const int64_t nn = int64_t(nodes_.size()), k = int64_t(outputs_.size()) * nn;
  std::vector<float> x(std::size_t(n * nc * nl));
  std::vector<std::uint8_t> bad(std::size_t(n), 0);
  for (int64_t i = 0; i < n; ++i) {
    float* row = x.data() + i * nc * nl;
    for (int64_t c = 0; c < nc; ++c)
      for (int64_t l = 0; l < nl; ++l) {
        const int64_t off =
            i * in.stride_profile + channels_[std::size_t(c)] * in.stride_stokes + l * in.stride_wavelength;
        float v = in.dtype == DType::f32 ? static_cast<const float*>(in.data)[off]
                                         : float(static_cast<const double*>(in.data)[off]);
        v -= offset_[std::size_t(c)];
        v *= scale_[std::size_t(c)];
        row[c * nl + l] = v;
        if (!std::isfinite(v)) bad[std::size_t(i)] = 1;
      }
    if (bad[std::size_t(i)])
      for (int64_t j = 0; j < nc * nl; ++j) row[j] = 0.0f;
  }
  std::vector<float> raw(std::size_t(n * k));
  model_.run(x.data(), raw.data(), n, threads);
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const float to_deg = 180.0f / 3.14159265358979323846f;  // np.degrees in float32
  const int64_t nq = int64_t(quantities_.size());
  for (int64_t i = 0; i < n; ++i) {
    float* r = raw.data() + i * k;
    for (int64_t j = 0; j < k; ++j) {
      r[j] *= std_[std::size_t(j)];
      r[j] += mean_[std::size_t(j)];
    }
    for (int64_t q = 0; q < nq; ++q) {
      const std::string& name = quantities_[std::size_t(q)];
      float* dst = out + (q * n + i) * nn;
      for (int64_t j = 0; j < nn; ++j) {
        float v;
        if (source_[std::size_t(q)] < 0) {
          v = std::atan2(r[az_sin_ * nn + j], r[az_cos_ * nn + j]) * to_deg;
          v *= 0.5f;
          v = remainder180(v);
          if (v >= 180.0f) v = 0.0f;
        } else {
          v = r[source_[std::size_t(q)] * nn + j];
          if (name == "inclination") v = v < 0.0f ? 0.0f : (v > 180.0f ? 180.0f : v);
          if (name == "B") v = v < 0.0f ? 0.0f : v;
        }
        dst[j] = bad[std::size_t(i)] ? nan : v;
      }
    }
  }
  if (status)
    for (int64_t i = 0; i < n; ++i) status[i] = bad[std::size_t(i)];
}

}  // namespace fastinv::stokes
