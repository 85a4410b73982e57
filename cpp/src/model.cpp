#include "fastinv/model.hpp"

#include <set>

#include "backend.hpp"
#include "fastinv/error.hpp"
#include "fastinv/runtime.hpp"
#include "host/pack.hpp"
#include "graph.hpp"
#include "safetensors.hpp"

namespace fastinv {

struct Model::Impl {
  std::map<std::string, std::string> metadata;
  std::shared_ptr<const Graph> graph;
  std::unique_ptr<Backend> backend;
  std::vector<int64_t> input_shape, output_shape;
};

namespace {

std::unique_ptr<Model::Impl> build(const SafeTensors& file, const LoadOptions& options);

std::string dims_str(const std::vector<int64_t>& d) {
  std::string s = "(";
  for (size_t i = 0; i < d.size(); ++i) s += (i ? ", " : "") + std::to_string(d[i]);
  return s + (d.size() == 1 ? ",)" : ")");
}

void check_view(const Strided& v, const std::vector<int64_t>& features, const char* what) {
  if (v.sample_ndim < 1 || v.sample_ndim > 3) throw InvalidArgument(std::string(what) + ": 1 to 3 sample dimensions");
  for (int i = 0; i < 3; ++i)
    if (v.sample_shape[size_t(i)] < 0 || (i >= v.sample_ndim && v.sample_shape[size_t(i)] != 1))
      throw InvalidArgument(std::string(what) + ": bad sample shape");
  std::vector<int64_t> got(v.feature_shape.begin(), v.feature_shape.begin() + v.feature_ndim);
  if (v.feature_ndim < 1 || v.feature_ndim > 2 || got != features)
    throw InvalidArgument(std::string(what) + " has per-sample shape " + dims_str(got) + " but the model expects " +
                          dims_str(features));
}

}  // namespace

Strided Strided::contiguous(int64_t n, const std::vector<int64_t>& feature_shape) {
  if (feature_shape.empty() || feature_shape.size() > 2) throw InvalidArgument("feature shape must have rank 1 or 2");
  Strided v;
  v.sample_shape = {n, 1, 1};
  v.feature_ndim = int(feature_shape.size());
  v.feature_shape = {feature_shape[0], feature_shape.size() == 2 ? feature_shape[1] : 1};
  v.feature_strides = {v.feature_ndim == 2 ? feature_shape[1] : 1, 1};
  v.sample_strides = {v.feature_shape[0] * v.feature_shape[1], 0, 0};
  return v;
}

Model::Model(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Model::Model(Model&&) noexcept = default;
Model& Model::operator=(Model&&) noexcept = default;
Model::~Model() = default;

Model Model::load(const std::string& path, const LoadOptions& options) {
  return Model(build(SafeTensors::read_file(path), options));
}

Model Model::from_memory(const uint8_t* data, size_t size, const LoadOptions& options) {
  if (!data && size) throw InvalidArgument("model bytes: null pointer");
  return Model(build(SafeTensors::parse(std::vector<uint8_t>(data, data + size)), options));
}

namespace {

std::unique_ptr<Model::Impl> build(const SafeTensors& file, const LoadOptions& options) {
  auto impl = std::make_unique<Model::Impl>();
  impl->metadata = file.metadata();
  auto graph = std::make_shared<const Graph>(parse_graph(file));
  impl->input_shape = graph->input.dims();
  impl->output_shape = graph->shape_of(graph->output).dims();
  // bf16x2 (two bf16 terms per weight) is a CPU kernel mode, not a CUDA precision
  const bool bf16x2 = options.precision == "bf16x2";
  if (!bf16x2 && options.precision != "fp32" && options.precision != "tf32" && options.precision != "bf16")
    throw InvalidArgument("unknown precision '" + options.precision +
                          "'; expected 'fp32' (exact float32, the default), 'tf32' (CUDA), 'bf16' (CUDA tensor "
                          "cores or an AVX512-BF16 CPU) or 'bf16x2' (CPU: two bf16 terms per weight)");
  if (bf16x2 && options.device != "cpu")
    throw InvalidArgument("precision='bf16x2' runs on device='cpu' only; got device='" + options.device + "'");
  const cuda::Precision precision = cuda::precision_from_name(bf16x2 ? "bf16" : options.precision);
  if (options.device == "cpu") {
    if (bf16x2)
      impl->backend = make_cpu_backend(graph, 2);
    else if (precision == cuda::Precision::tf32)
      throw InvalidArgument(
          "precision='tf32' needs device='cuda' (tensor cores); the CPU computes in fp32, bf16 or bf16x2");
    else
      impl->backend = make_cpu_backend(graph, precision == cuda::Precision::bf16 ? 1 : 0);
  } else if (options.device == "cuda" || options.device.rfind("cuda:", 0) == 0) {
    int ordinal = 0;
    if (options.device != "cuda") {
      const std::string num = options.device.substr(5);
      if (num.empty() || num.size() > 4 || num.find_first_not_of("0123456789") != std::string::npos)
        throw InvalidArgument("bad device '" + options.device + "'; expected 'cuda' or 'cuda:N'");
      ordinal = std::stoi(num);
    }
    if (!cuda_compiled())
      throw Error("device='" + options.device +
                  "': this fastinv was built without CUDA (no nvcc at build time); reinstall with the CUDA toolkit "
                  "on PATH and FASTINV_CUDA=ON, or use device='cpu'");
#ifdef FASTINV_HAVE_CUDA
    impl->backend = make_cuda_backend(graph, precision, ordinal);
#else
    (void)ordinal;
#endif
  } else {
    throw InvalidArgument("unknown device '" + options.device + "'; expected 'cpu', 'cuda' or 'cuda:N'");
  }
  impl->graph = std::move(graph);
  return impl;
}

}  // namespace

const std::vector<int64_t>& Model::input_shape() const { return impl_->input_shape; }
const std::vector<int64_t>& Model::output_shape() const { return impl_->output_shape; }
int64_t Model::input_size() const { return impl_->graph->input.size(); }
int64_t Model::output_size() const { return impl_->graph->shape_of(impl_->graph->output).size(); }
const std::string& Model::input_layout() const { return impl_->graph->layout; }
const std::map<std::string, std::string>& Model::metadata() const { return impl_->metadata; }

ModelInfo Model::info() const {
  const Graph& g = *impl_->graph;
  ModelInfo info;
  info.input_shape = impl_->input_shape;
  info.output_shape = impl_->output_shape;
  info.input_layout = g.layout;
  info.device = impl_->backend->device();
  info.isa = impl_->backend->isa();
  std::set<std::string> counted;
  for (const Node& n : g.nodes) {
    LayerInfo layer;
    layer.name = n.name;
    for (const auto& [tensor, size] : n.tensors)
      if (counted.insert(tensor).second) layer.parameters += size;
    layer.output_shape = n.shape.dims();
    const int64_t out = n.shape.size();
    switch (n.op) {
      case OpKind::conv:
        layer.op = n.linear ? "linear" : "conv1d";
        layer.flops = 2 * n.cin * n.kernel * out;
        break;
      case OpKind::act:
        layer.op = std::string("act:") + act_name(n.act.kind);
        layer.flops = out;
        break;
      case OpKind::maxpool:
      case OpKind::avgpool:
        layer.op = n.op == OpKind::maxpool ? "maxpool1d" : "avgpool1d";
        layer.flops = out * n.kernel;
        break;
      case OpKind::flatten:
        layer.op = "flatten";
        break;
      case OpKind::concat:
        layer.op = "concat";
        break;
      case OpKind::add:
        layer.op = "add";
        layer.flops = out * int64_t(n.inputs.size() - 1);
        break;
      case OpKind::affine:
        layer.op = "affine";
        layer.flops = 2 * out;
        break;
    }
    info.parameters += layer.parameters;
    info.flops_per_sample += layer.flops;
    info.layers.push_back(std::move(layer));
  }
  info.executed_flops_per_sample = info.flops_per_sample - impl_->backend->flops_saved_per_sample();
  return info;
}

namespace {
// Validates a call's views against the model; false when there is nothing to compute.
bool check_run_views(const Model::Impl& impl, const InputView& input, const OutputView& output) {
  check_view(input.layout, impl.input_shape, "input");
  check_view(output.layout, impl.output_shape, "output");
  if (input.layout.samples() != output.layout.samples())
    throw InvalidArgument("input has " + std::to_string(input.layout.samples()) + " samples but output has room for " +
                          std::to_string(output.layout.samples()));
  if (input.layout.samples() == 0) return false;
  if (!input.data || !output.data) throw InvalidArgument("null data pointer");
  return true;
}
}  // namespace

void Model::run(const InputView& input, const OutputView& output, int threads) const {
  threads = resolve_threads(threads, input.layout.samples(), "Model.run");
  if (check_run_views(*impl_, input, output)) impl_->backend->run(input, output, threads);
}

void Model::run_device(const InputView& input, const OutputView& output, std::uintptr_t stream) const {
  if (check_run_views(*impl_, input, output)) impl_->backend->run_device(input, output, stream);
}

void ModelAccess::run_fused(const Model& model, const InputView& input, const TileHooks& hooks, int threads) {
  threads = resolve_threads(threads, input.layout.samples(), "DeepEM");
  check_view(input.layout, model.impl_->input_shape, "input");
  if (input.layout.samples() == 0) return;
  if (!input.data) throw InvalidArgument("null data pointer");
  model.impl_->backend->run_fused(input, hooks, threads);
}

const Graph& ModelAccess::graph(const Model& model) { return *model.impl_->graph; }

void Backend::run_fused(const InputView&, const TileHooks&, int) const {
  throw InvalidArgument("fused per-tile transforms run on the CPU backend only; load the model with device='cpu'");
}

void Backend::run_device(const InputView&, const OutputView&, std::uintptr_t) const {
  throw InvalidArgument("device (GPU) arrays need a model loaded with device='cuda'; pass a NumPy array instead");
}

void Model::run(const float* input, float* output, int64_t n, int threads) const {
  if (n < 0) throw InvalidArgument("negative sample count");
  run(InputView{input, DType::f32, Strided::contiguous(n, impl_->input_shape)},
      OutputView{output, Strided::contiguous(n, impl_->output_shape)}, threads);
}

}  // namespace fastinv
