// DeepEm: the model card checks and the response kernel of python/fastinv/dem/deepem.py,
// around the fused tile loop of deepem_fused.cpp.
#include <cstddef>
#include <memory>
#include <utility>

#include "fastinv/data.hpp"
#include "fastinv/dem/deepem.hpp"
#include "fastinv/dem/response.hpp"
#include "fastinv/error.hpp"
#include "json.hpp"

namespace fastinv::dem {

namespace {

const json::Value* path_in(const json::Value& v, std::initializer_list<const char*> keys) {
  const json::Value* cur = &v;
  for (const char* k : keys) {
    if (!cur->is_object()) return nullptr;
    cur = cur->find(k);
    if (cur == nullptr) return nullptr;
  }
  return cur;
}

}  // namespace

std::string DeepEm::shipped_path(const std::string& name) {
  // python/fastinv/dem/deepem.py's SHIPPED_MODELS and DEFAULT_MODEL (tests/embedding compares)
  if (name.empty() || name == "deepem21") return data_path("deepem21.safetensors");
  if (name == "deepem18") return data_path("deepem.safetensors");
  throw InvalidArgument("unknown DeepEM model '" + name + "'; shipped: deepem18, deepem21");
}

DeepEm DeepEm::load(const std::string& path, const LoadOptions& options) {
  const bool shipped = path.empty() || path == "deepem18" || path == "deepem21";
  return DeepEm(Model::load(shipped ? shipped_path(path) : path, options));
}

DeepEm::DeepEm(Model model) : model_(std::move(model)) {
  const auto& meta = model_.metadata();
  const auto it = meta.find("fastinv.card");
  if (it == meta.end()) throw InvalidArgument("not a DeepEM model (no fastinv.card metadata)");
  const json::Value card = json::parse(it->second, "the DeepEM model card");
  const json::Value* tin = path_in(card, {"input", "transform"});
  const json::Value* tout = path_in(card, {"output", "transform"});
  if (!tin || !tin->is_string() || tin->string != "sqrt(max(I, 0))" || !tout || !tout->is_string() ||
      tout->string != "EM = 1e25 * y**2")
    throw InvalidArgument("the model card does not describe DeepEM's normalisation");
  const json::Value* grid = path_in(card, {"output", "logt"});
  if (!grid || !grid->is_array() || grid->array.empty())
    throw InvalidArgument("the DeepEM model card has no output.logt grid");
  for (const auto& v : grid->array) {
    if (!v.is_number()) throw InvalidArgument("the DeepEM model card's output.logt must hold numbers");
    logt_.push_back(v.number);
  }
  if (model_.input_layout() != "nchw" || model_.input_shape() != std::vector<int64_t>{6} ||
      model_.output_shape() != std::vector<int64_t>{n_bins()})
    throw InvalidArgument("expected a per-pixel 6 -> " + std::to_string(n_bins()) + " network");
  const json::Value* resp = path_in(card, {"labels", "response"});
  response_ = resp && resp->is_string() ? resp->string : "aia_v10_eve";
  const TemperatureResponse table = TemperatureResponse::load(response_);
  if (table.nchan() != 6) throw InvalidArgument("the response table '" + response_ + "' must have the 6 AIA channels");
  response_ = table.name;
  const std::vector<double> k = table.at(logt_);
  kernel_.assign(k.begin(), k.end());  // float32, as the Python path's kernel
  // the Jacobian as Python's errors=True forms it (docs/deepem-errors.md)
  if (card.find("errors") != nullptr)
    errors_ = std::make_shared<const DeepEmErrorModel>(
        DeepEmErrorModel::from_model(model_, logt_, DeepEmErrorsPrecision::automatic));
}

void DeepEm::invert(const DeepEmInput& input, const DeepEmChi2& chi2, const DeepEmOutput& output, int threads,
                    const DeepEmRefine& refine) const {
  if (output.em_err && !errors_)
    throw InvalidArgument("this DeepEM model's card has no calibrated errors (\"errors\" section)");
  deepem_invert(model_, kernel_.data(), n_bins(), input, chi2, output, threads, refine,
                output.em_err ? errors_.get() : nullptr);
}

}  // namespace fastinv::dem
