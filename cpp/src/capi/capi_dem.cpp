// C API: DeepEM and Basis Pursuit DEMs (fastinv::dem::DeepEm, AiaBasisPursuit).
#include <cstddef>
#include <memory>
#include <string>
#include <vector>

#include "capi_common.hpp"
#include "capi_handles.hpp"

using namespace fastinv::capi;
using fastinv::InvalidArgument;
using fastinv::dem::DeepEmChi2;
using fastinv::dem::DeepEmErrors;
using fastinv::dem::DeepEmInput;

namespace {

// Sizes of the structs as API level 1 defined them (later levels append fields).
constexpr std::size_t kErrorsV1 = sizeof(fastinv_dem_errors);
constexpr std::size_t kDeepEmOutputV1 = offsetof(fastinv_deepem_output, refine);
constexpr std::size_t kBpOptionsV1 = sizeof(fastinv_bp_options);
constexpr std::size_t kBpOutputV1 = sizeof(fastinv_bp_output);

DeepEmInput aia_input(const fastinv_aia_data* y, const char* fn) {
  require(y, fn, "y");
  DeepEmInput in;
  in.dtype = dtype_of(y->dtype, fn);
  require_at_least(y->npix, 0, fn, "y->npix");
  in.data = y->npix > 0 ? require(y->data, fn, "y->data") : y->data;
  in.npix = y->npix;
  in.stride_channel = y->stride_channel;
  in.stride_pixel = y->stride_pixel;
  return in;
}

DeepEmChi2 dem_errors(const fastinv_dem_errors* e, const char* fn) {
  DeepEmChi2 c;
  if (e == nullptr) return c;
  const fastinv_dem_errors& v = require_struct(e, kErrorsV1, fn, "errors");
  switch (v.mode) {
    case FASTINV_ERRORS_NONE:
      c.mode = DeepEmErrors::none;
      break;
    case FASTINV_ERRORS_SIGMA:
      c.mode = DeepEmErrors::sigma;
      c.sigma = require(v.sigma, fn, "errors->sigma");
      c.sigma_stride_channel = v.sigma_stride_channel;
      c.sigma_stride_pixel = v.sigma_stride_pixel;
      break;
    case FASTINV_ERRORS_AIA:
      c.mode = DeepEmErrors::aia;
      for (int i = 0; i < 6; ++i) c.exptime[i] = v.exptime[i];
      c.n_sample = v.n_sample;
      break;
    default:
      throw InvalidArgument(std::string(fn) + ": errors->mode must be FASTINV_ERRORS_NONE, _SIGMA or _AIA, got " +
                            std::to_string(v.mode));
  }
  return c;
}

}  // namespace

extern "C" {

void fastinv_dem_errors_init_sized(fastinv_dem_errors* errors, size_t size) {
  fastinv_dem_errors d{};
  d.mode = FASTINV_ERRORS_NONE;
  d.n_sample = 1.0;
  init_sized(errors, size, d);
}

void(fastinv_dem_errors_init)(fastinv_dem_errors* errors) {
  fastinv_dem_errors_init_sized(errors, sizeof(fastinv_dem_errors));
}

// ------------------------------------------------------------------------------- DeepEM

fastinv_status fastinv_deepem_load(const char* path, fastinv_deepem** deepem) {
  return fastinv_deepem_load_with(path, nullptr, deepem);
}

fastinv_status fastinv_deepem_load_with(const char* path, const fastinv_load_options* options,
                                        fastinv_deepem** deepem) {
  return guard([&] {
    const char* fn = "fastinv_deepem_load";
    require(deepem, fn, "deepem");
    *deepem = nullptr;
    const fastinv::LoadOptions lo = load_options(options, fn);
    if (lo.device != "cpu")
      throw InvalidArgument(std::string(fn) + ": device '" + lo.device +
                            "': DeepEM's fused loop runs on the CPU; device must be NULL or \"cpu\"");
    *deepem =
        std::make_unique<fastinv_deepem>(fastinv_deepem{fastinv::dem::DeepEm::load(path ? path : "", lo)}).release();
  });
}

void fastinv_deepem_output_init_sized(fastinv_deepem_output* output, size_t size) {
  init_sized(output, size, fastinv_deepem_output{});
}

void(fastinv_deepem_output_init)(fastinv_deepem_output* output) {
  fastinv_deepem_output_init_sized(output, sizeof(fastinv_deepem_output));
}

void fastinv_deepem_destroy(fastinv_deepem* deepem) { std::unique_ptr<fastinv_deepem> owned(deepem); }

fastinv_status fastinv_deepem_bins(const fastinv_deepem* deepem, int32_t* n_bins, double* logt) {
  return guard([&] {
    require(deepem, "fastinv_deepem_bins", "deepem");
    *require(n_bins, "fastinv_deepem_bins", "n_bins") = int32_t(deepem->deepem.n_bins());
    if (logt)
      for (std::size_t i = 0; i < deepem->deepem.logt().size(); ++i) logt[i] = deepem->deepem.logt()[i];
  });
}

fastinv_status fastinv_deepem_invert(const fastinv_deepem* deepem, const fastinv_aia_data* y,
                                     const fastinv_dem_errors* errors, const fastinv_deepem_output* output,
                                     int threads) {
  return guard([&] {
    const char* fn = "fastinv_deepem_invert";
    require(deepem, fn, "deepem");
    const DeepEmInput in = aia_input(y, fn);
    const DeepEmChi2 chi2 = dem_errors(errors, fn);
    const fastinv_deepem_output& o = require_struct(output, kDeepEmOutputV1, fn, "output");
    fastinv::dem::DeepEmOutput out;
    if (in.npix > 0) {
      out.em = require(o.em, fn, "output->em");
      out.model = require(o.model, fn, "output->model");
      out.status = require(o.status, fn, "output->status");
      out.chi2 = require(o.chi2, fn, "output->chi2");
      out.objective = require(o.total_em, fn, "output->total_em");
    }
    fastinv::dem::DeepEmRefine refine;
    if (has_field(o, offsetof(fastinv_deepem_output, total_em_err), sizeof(float*))) {  // API level 3
      if (o.refine != 0 && o.refine != 1)
        throw InvalidArgument(std::string(fn) + ": output->refine must be 0 or 1, got " + std::to_string(o.refine));
      const bool any_err = o.em_err || o.logt_err || o.total_em_err;
      if (any_err && !(o.em_err && o.logt_err && o.total_em_err))
        throw InvalidArgument(std::string(fn) +
                              ": output->em_err, logt_err and total_em_err must all be set or all NULL");
      if ((o.refine || any_err) && chi2.mode == DeepEmErrors::none)
        throw InvalidArgument(std::string(fn) + (o.refine ? ": refine" : ": em_err") +
                              " needs the data's errors: errors->mode FASTINV_ERRORS_SIGMA or FASTINV_ERRORS_AIA");
      refine.enabled = o.refine == 1;
      refine.iterations = in.npix > 0 ? o.iterations : nullptr;
      if (in.npix > 0) {
        out.tolfac = o.tolfac;
        out.em_err = o.em_err;
        out.logt_err = o.logt_err;
        out.total_em_err = o.total_em_err;
      }
    }
    deepem->deepem.invert(in, chi2, out, threads, refine);
    if (refine.iterations && !refine.enabled)  // as Python's BPResult.iterations
      for (int64_t p = 0; p < in.npix; ++p) refine.iterations[p] = 0;
  });
}

// ------------------------------------------------------------------------ Basis Pursuit

void fastinv_bp_options_init_sized(fastinv_bp_options* options, size_t size) {
  const fastinv::dem::AiaBpConfig c;
  fastinv_bp_options d{};
  d.tolfac = c.tolfac;
  d.adaptive = c.adaptive;
  d.max_iterations = c.max_iterations;
  d.warm_start = c.warm_start;
  init_sized(options, size, d);
}

void(fastinv_bp_options_init)(fastinv_bp_options* options) {
  fastinv_bp_options_init_sized(options, sizeof(fastinv_bp_options));
}

void fastinv_bp_output_init_sized(fastinv_bp_output* output, size_t size) {
  init_sized(output, size, fastinv_bp_output{});
}

void(fastinv_bp_output_init)(fastinv_bp_output* output) {
  fastinv_bp_output_init_sized(output, sizeof(fastinv_bp_output));
}

fastinv_status fastinv_bp_create(const fastinv_bp_options* options, fastinv_bp** bp) {
  return guard([&] {
    const char* fn = "fastinv_bp_create";
    require(bp, fn, "bp");
    *bp = nullptr;
    fastinv::dem::AiaBpConfig config;
    if (options) {
      const fastinv_bp_options& o = require_struct(options, kBpOptionsV1, fn, "options");
      if (o.response) config.response = o.response;
      if (o.logt) {
        require_at_least(o.n_logt, 2, fn, "options->n_logt");
        config.logt.assign(o.logt, o.logt + o.n_logt);
      }
      if (o.widths) {
        require_at_least(o.n_widths, 0, fn, "options->n_widths");
        config.widths.assign(o.widths, o.widths + o.n_widths);
      }
      config.tolfac = o.tolfac;
      config.adaptive = o.adaptive != 0;
      require_at_least(o.max_iterations, 1, fn, "options->max_iterations");
      config.max_iterations = o.max_iterations;
      config.warm_start = o.warm_start != 0;
    }
    *bp = std::make_unique<fastinv_bp>(fastinv_bp{fastinv::dem::AiaBasisPursuit(config)}).release();
  });
}

void fastinv_bp_destroy(fastinv_bp* bp) { std::unique_ptr<fastinv_bp> owned(bp); }

fastinv_status fastinv_bp_sizes(const fastinv_bp* bp, int32_t* n_bins, int32_t* n_coef) {
  return guard([&] {
    require(bp, "fastinv_bp_sizes", "bp");
    *require(n_bins, "fastinv_bp_sizes", "n_bins") = int32_t(bp->bp.nt());
    *require(n_coef, "fastinv_bp_sizes", "n_coef") = int32_t(bp->bp.ncoef());
  });
}

fastinv_status fastinv_bp_logt(const fastinv_bp* bp, double* logt) {
  return guard([&] {
    require(bp, "fastinv_bp_logt", "bp");
    require(logt, "fastinv_bp_logt", "logt");
    for (std::size_t i = 0; i < bp->bp.nt(); ++i) logt[i] = bp->bp.logt()[i];
  });
}

fastinv_status fastinv_bp_solve(const fastinv_bp* bp, const fastinv_aia_data* y, const fastinv_dem_errors* errors,
                                const fastinv_bp_output* output, int threads) {
  return guard([&] {
    const char* fn = "fastinv_bp_solve";
    require(bp, fn, "bp");
    const DeepEmInput in = aia_input(y, fn);
    const DeepEmChi2 e = dem_errors(require(errors, fn, "errors"), fn);
    const fastinv_bp_output& o = require_struct(output, kBpOutputV1, fn, "output");
    require_at_least(o.n_samples, 0, fn, "output->n_samples");
    fastinv::dem::AiaBpOutput out;
    out.em = o.em;
    out.status = o.status;
    out.chi2 = o.chi2;
    out.model = o.model;
    out.tolfac = o.tolfac;
    out.objective = o.objective;
    out.coeffs = o.coeffs;
    out.iterations = o.iterations;
    fastinv::dem::AiaBpErrors mc;
    mc.n_samples = o.n_samples;
    mc.seed = o.seed;
    mc.first_pixel = o.first_pixel;
    mc.em_err = o.em_err;
    mc.logt_err = o.logt_err;
    mc.total_em_err = o.total_em_err;
    mc.mc_feasible = o.mc_feasible;
    bp->bp.solve(in, e, out, mc, threads);
  });
}

}  // extern "C"
