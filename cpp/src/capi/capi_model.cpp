// C API: strided views and the raw network engine (fastinv::Model).
#include <memory>
#include <string>

#include "capi_common.hpp"
#include "capi_handles.hpp"

using namespace fastinv::capi;
using fastinv::InvalidArgument;

namespace {

fastinv::Strided layout_of(const fastinv_view& v, const char* function, const char* what) {
  if (v.sample_ndim < 1 || v.sample_ndim > 3)
    throw InvalidArgument(std::string(function) + ": " + what + "->sample_ndim must be 1..3");
  if (v.feature_ndim < 1 || v.feature_ndim > 2)
    throw InvalidArgument(std::string(function) + ": " + what + "->feature_ndim must be 1..2");
  fastinv::Strided s;
  s.sample_ndim = v.sample_ndim;
  s.feature_ndim = v.feature_ndim;
  for (int i = 0; i < 3; ++i) {
    const bool used = i < v.sample_ndim;
    s.sample_shape[size_t(i)] = used ? v.sample_shape[i] : 1;
    s.sample_strides[size_t(i)] = used ? v.sample_strides[i] : 0;
    if (s.sample_shape[size_t(i)] < 0)
      throw InvalidArgument(std::string(function) + ": " + what + " has a negative sample dimension");
  }
  for (int i = 0; i < 2; ++i) {
    const bool used = i < v.feature_ndim;
    s.feature_shape[size_t(i)] = used ? v.feature_shape[i] : 1;
    s.feature_strides[size_t(i)] = used ? v.feature_strides[i] : 0;
  }
  return s;
}

}  // namespace

extern "C" {

fastinv_status fastinv_view_contiguous(void* data, int32_t dtype, int64_t n, int32_t feature_ndim,
                                       const int64_t* feature_shape, fastinv_view* view) {
  return guard([&] {
    const char* fn = "fastinv_view_contiguous";
    require(view, fn, "view");
    require(feature_shape, fn, "feature_shape");
    dtype_of(dtype, fn);
    if (n < 0) throw InvalidArgument("fastinv_view_contiguous: negative sample count");
    if (feature_ndim < 1 || feature_ndim > 2)
      throw InvalidArgument("fastinv_view_contiguous: feature_ndim must be 1 or 2");
    for (int i = 0; i < feature_ndim; ++i) require_at_least(feature_shape[i], 1, fn, "feature_shape");
    const fastinv::Strided s =
        fastinv::Strided::contiguous(n, feature_ndim == 2 ? std::vector<int64_t>{feature_shape[0], feature_shape[1]}
                                                          : std::vector<int64_t>{feature_shape[0]});
    *view = fastinv_view{};
    view->data = data;
    view->dtype = dtype;
    view->sample_ndim = 1;
    view->feature_ndim = feature_ndim;
    for (int i = 0; i < 3; ++i) {
      view->sample_shape[i] = s.sample_shape[size_t(i)];
      view->sample_strides[i] = s.sample_strides[size_t(i)];
    }
    for (int i = 0; i < 2; ++i) {
      view->feature_shape[i] = s.feature_shape[size_t(i)];
      view->feature_strides[i] = s.feature_strides[size_t(i)];
    }
  });
}

fastinv_status fastinv_model_load(const char* path, const char* device, fastinv_model** model) {
  fastinv_load_options options;
  fastinv_load_options_init(&options);
  options.device = device;
  return fastinv_model_load_with(path, &options, model);
}

fastinv_status fastinv_model_load_with(const char* path, const fastinv_load_options* options, fastinv_model** model) {
  return guard([&] {
    const char* fn = "fastinv_model_load";
    require(model, fn, "model");
    *model = nullptr;
    require(path, fn, "path");
    const fastinv::LoadOptions lo = load_options(options, fn);
    *model = std::make_unique<fastinv_model>(fastinv_model{fastinv::Model::load(path, lo)}).release();
  });
}

void fastinv_model_destroy(fastinv_model* model) { std::unique_ptr<fastinv_model> owned(model); }

fastinv_status fastinv_model_sizes(const fastinv_model* model, int64_t* input_size, int64_t* output_size) {
  return guard([&] {
    const char* fn = "fastinv_model_sizes";
    require(model, fn, "model");
    *require(input_size, fn, "input_size") = model->model.input_size();
    *require(output_size, fn, "output_size") = model->model.output_size();
  });
}

fastinv_status fastinv_model_shapes(const fastinv_model* model, int32_t* input_ndim, int64_t input_shape[2],
                                    int32_t* output_ndim, int64_t output_shape[2]) {
  return guard([&] {
    const char* fn = "fastinv_model_shapes";
    require(model, fn, "model");
    require(input_ndim, fn, "input_ndim");
    require(input_shape, fn, "input_shape");
    require(output_ndim, fn, "output_ndim");
    require(output_shape, fn, "output_shape");
    const auto& in = model->model.input_shape();
    const auto& out = model->model.output_shape();
    *input_ndim = int32_t(in.size());
    *output_ndim = int32_t(out.size());
    for (size_t i = 0; i < 2; ++i) {
      input_shape[i] = i < in.size() ? in[i] : 1;
      output_shape[i] = i < out.size() ? out[i] : 1;
    }
  });
}

fastinv_status fastinv_model_run(const fastinv_model* model, const fastinv_view* input, const fastinv_view* output,
                                 int threads) {
  return guard([&] {
    const char* fn = "fastinv_model_run";
    require(model, fn, "model");
    require(input, fn, "input");
    require(output, fn, "output");
    if (output->dtype != FASTINV_FLOAT32)
      throw fastinv::TypeMismatch("fastinv_model_run: the output must be FASTINV_FLOAT32");
    fastinv::InputView in;
    in.data = require(input->data, fn, "input->data");
    in.dtype = dtype_of(input->dtype, fn);
    in.layout = layout_of(*input, fn, "input");
    fastinv::OutputView out;
    out.data = static_cast<float*>(require(output->data, fn, "output->data"));
    out.layout = layout_of(*output, fn, "output");
    model->model.run(in, out, threads);
  });
}

}  // extern "C"
