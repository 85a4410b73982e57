/* fastinv C API (C99): DeepEM and Basis Pursuit DEMs of AIA data, Stokes inversion networks
 * and the raw network engine, for C, Fortran (iso_c_binding) and any language with a C FFI.
 *
 * Rules that hold for every function here:
 * - Every call returns a fastinv_status; FASTINV_OK is 0. Nothing aborts, throws or prints.
 *   On failure fastinv_last_error() gives the message (per thread, until that thread's next
 *   failing call); output arguments are left unspecified.
 * - Handles are opaque. Each *_load / *_create has a *_destroy; destroy(NULL) does nothing.
 *   Using a handle after destroying it is undefined behaviour (not detectable); a NULL handle
 *   is an error (FASTINV_INVALID_ARGUMENT).
 * - A loaded handle is immutable: any number of threads may call the run / invert / solve /
 *   predict functions on the same handle at once, each with its own output buffers. Creating
 *   and destroying a handle must not overlap with other calls on it.
 * - Arrays belong to the caller: inputs are read, outputs are written, nothing is kept after
 *   the call returns (zero copies of outputs). Shapes are documented per function; strides
 *   are in elements (not bytes) and may be zero or negative. The library cannot know the size
 *   of a caller's buffer: the pointer plus the shape and strides must address valid memory.
 * - threads <= 0 uses the OpenMP default (OMP_NUM_THREADS or all cores); results are bitwise
 *   identical for any thread count.
 * - Structs that carry a `size` member must have it set to sizeof(the struct) (the *_init
 *   macros do): fields are only ever appended, so a program built against an older header
 *   keeps working with a newer library. Each fastinv_X_init(p) expands to
 *   fastinv_X_init_sized(p, sizeof *p) (API level 4): the library writes its defaults into the
 *   caller's sizeof bytes and no further, fields it does not know zeroed, and sets p->size.
 *   Programs built against levels 1-3 call the function fastinv_X_init, which the library
 *   keeps: it writes the struct as level 3 defined it (fastinv_deepem_output as level 3
 *   defined it: a program built against levels 1-2 that used fastinv_deepem_output_init must
 *   be rebuilt).
 *
 * Version check: call fastinv_check_api(FASTINV_API_VERSION) once at start-up. It fails with
 * FASTINV_VERSION_MISMATCH when this header is newer than the library that was loaded.
 */
#ifndef FASTINV_FASTINV_H
#define FASTINV_FASTINV_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The API level of this header: incremented whenever a function, struct field or enum value
 * is added. A library serves every header whose level is <= its own. */
#define FASTINV_API_VERSION 4

/* Status codes. Values may be added in later versions (treat unknown values as errors);
 * existing values are never renumbered. */
typedef enum fastinv_status {
  FASTINV_OK = 0,
  FASTINV_INVALID_ARGUMENT = 1, /* a bad value, shape, NULL pointer or file content */
  FASTINV_TYPE_MISMATCH = 2,    /* wrong dtype or rank */
  FASTINV_IO_ERROR = 3,         /* a file could not be opened or read */
  FASTINV_OUT_OF_MEMORY = 4,    /* an allocation failed */
  FASTINV_VERSION_MISMATCH = 5, /* the header is newer than the library */
  FASTINV_INTERNAL_ERROR = 6,   /* anything else; the message says what */
  FASTINV_UNSUPPORTED = 7       /* API level 3: this CPU or build lacks what was asked for
                                   (precision "bf16" without AVX512-BF16, "cuda" without CUDA) */
} fastinv_status;

/* Element types of input arrays (outputs have fixed types, given per function). */
typedef enum fastinv_dtype { FASTINV_FLOAT32 = 0, FASTINV_FLOAT64 = 1 } fastinv_dtype;

/* The library's version string, e.g. "0.1.0". Never fails. */
const char* fastinv_version(void);

/* The library's API level (FASTINV_API_VERSION of the headers it was built with). */
int fastinv_api_version(void);

/* FASTINV_OK when a program built with header level `header_api_version` can use this
 * library; FASTINV_VERSION_MISMATCH (with a message naming both) when the header is newer. */
fastinv_status fastinv_check_api(int header_api_version);

/* The message of this thread's last failing call ("" if none). The pointer stays valid until
 * this thread's next fastinv call. */
const char* fastinv_last_error(void);

/* The directory of the shipped models and response tables: $FASTINV_DATA_DIR, else
 * share/fastinv beside the installed library. Writes a NUL-terminated path into buf
 * (capacity bytes); FASTINV_INVALID_ARGUMENT if it does not fit, FASTINV_IO_ERROR if the data
 * cannot be found. */
fastinv_status fastinv_data_dir(char* buf, size_t capacity);

/* ---------------------------------------------------------------------------------------
 * Strided views (the C++ fastinv::Strided): a batch of independent samples indexed by up to
 * three sample dimensions (e.g. N, H, W of an image whose pixels are samples), each sample
 * with one (C) or two (C, L) feature dimensions. Unused sample dimensions have shape 1. */
typedef struct fastinv_view {
  void* data;          /* input: float32 or float64 (dtype); output: float32 */
  int32_t dtype;       /* a fastinv_dtype (enum fields are int32_t: a fixed size, any value checkable) */
  int32_t sample_ndim; /* 1..3 */
  int64_t sample_shape[3];
  int64_t sample_strides[3];
  int32_t feature_ndim; /* 1..2, must match the model's per-sample shape */
  int64_t feature_shape[2];
  int64_t feature_strides[2];
} fastinv_view;

/* A C-contiguous view of n samples of the given per-sample shape (feature_ndim 1 or 2). */
fastinv_status fastinv_view_contiguous(void* data, int32_t dtype, int64_t n, int32_t feature_ndim,
                                       const int64_t* feature_shape, fastinv_view* view);

/* ---------------------------------------------------------------------------------------
 * How a network is loaded (API level 3): the C++ fastinv::LoadOptions, with the words of the
 * Python fastinv.load(path, device=..., precision=...). */
typedef struct fastinv_load_options {
  size_t size;           /* sizeof(fastinv_load_options) */
  const char* device;    /* NULL or "cpu"; "cuda" / "cuda:N" where the CUDA backend was built */
  const char* precision; /* NULL or "fp32"; "bf16": bf16 weights and layer inputs, float32 sums
                            (CPU: needs AVX512-BF16, else FASTINV_UNSUPPORTED; CUDA: tensor
                            cores); "bf16x2": CPU only, as "bf16" with each weight as two
                            bf16 terms (hi + lo); "tf32": CUDA only */
} fastinv_load_options;

/* device NULL, precision NULL (CPU, fp32). */
void fastinv_load_options_init_sized(fastinv_load_options* options, size_t size);
#define fastinv_load_options_init(options) fastinv_load_options_init_sized((options), sizeof *(options))

/* 1 when precision "bf16" can run on this CPU (the build has the AVX512-BF16 kernels, the CPU
 * has the instructions and FASTINV_ISA does not lower the kernels below AVX-512), else 0. */
int fastinv_bf16_available(void);

/* ---------------------------------------------------------------------------------------
 * A loaded network (any model file written by fastinv.export). */
typedef struct fastinv_model fastinv_model;

/* device: NULL or "cpu"; "cuda" / "cuda:N" where the CUDA backend was built. fp32. */
fastinv_status fastinv_model_load(const char* path, const char* device, fastinv_model** model);
/* API level 3: with options (NULL: as fastinv_model_load(path, NULL, model)). */
fastinv_status fastinv_model_load_with(const char* path, const fastinv_load_options* options, fastinv_model** model);
void fastinv_model_destroy(fastinv_model* model);
/* Per-sample input and output sizes (products of the shapes) and shapes (rank <= 2). */
fastinv_status fastinv_model_sizes(const fastinv_model* model, int64_t* input_size, int64_t* output_size);
fastinv_status fastinv_model_shapes(const fastinv_model* model, int32_t* input_ndim, int64_t input_shape[2],
                                    int32_t* output_ndim, int64_t output_shape[2]);
/* Run on any strided batch: output->dtype must be FASTINV_FLOAT32 and output must have as
 * many samples as input. */
fastinv_status fastinv_model_run(const fastinv_model* model, const fastinv_view* input, const fastinv_view* output,
                                 int threads);

/* ---------------------------------------------------------------------------------------
 * AIA data: (6, npix) DN s^-1 pixel^-1 in the channel order 94, 131, 171, 193, 211, 335 A,
 * element (c, p) at data[c * stride_channel + p * stride_pixel]. */
typedef struct fastinv_aia_data {
  const void* data;
  int32_t dtype; /* fastinv_dtype */
  int64_t npix;
  int64_t stride_channel, stride_pixel;
} fastinv_aia_data;

/* Errors for chi2 (DeepEM) or the LP tolerance (Basis Pursuit). */
typedef enum fastinv_error_model {
  FASTINV_ERRORS_NONE = 0,  /* DeepEM only: chi2 is NaN */
  FASTINV_ERRORS_SIGMA = 1, /* sigma: 1-sigma errors in DN/s, (6, npix) float64, strided */
  FASTINV_ERRORS_AIA = 2    /* the AIA error model from exptime[6] (s) and n_sample */
} fastinv_error_model;

typedef struct fastinv_dem_errors {
  size_t size;  /* sizeof(fastinv_dem_errors) */
  int32_t mode; /* fastinv_error_model */
  const double* sigma;
  int64_t sigma_stride_channel, sigma_stride_pixel; /* 0 broadcasts */
  double exptime[6];                                /* s, per channel */
  double n_sample;                                  /* pixels summed per value (>= 1) */
} fastinv_dem_errors;

/* mode NONE, n_sample 1. */
void fastinv_dem_errors_init_sized(fastinv_dem_errors* errors, size_t size);
#define fastinv_dem_errors_init(errors) fastinv_dem_errors_init_sized((errors), sizeof *(errors))

/* ---------------------------------------------------------------------------------------
 * DeepEM (Wright et al. 2018): input transform sqrt(max(I, 0)) -> network -> EM = 1e25 y^2 in
 * cm^-5 per bin, re-synthesis K.EM, chi2, status; optionally (API level 3) refined to fit
 * the data and with calibrated 1-sigma errors. The numbers of the Python
 * fastinv.dem.DeepEM.invert(y, exptime | sigma, refine=..., errors=...), bitwise. CPU models. */
typedef struct fastinv_deepem fastinv_deepem;

typedef struct fastinv_deepem_output { /* C-contiguous, npix innermost */
  size_t size;                         /* sizeof(fastinv_deepem_output) */
  float* em;                           /* (n_bins, npix) cm^-5, required */
  float* model;                        /* (6, npix) re-synthesised DN/s, required */
  int8_t* status;                      /* (npix) required: 0 ok, 12 a non-finite input (EM 0),
                                          13 overflow; with refine also 3 not converged,
                                          11 no counts, 14 no EM fits the data (NaN products) */
  double* chi2;                        /* (npix) required; NaN with FASTINV_ERRORS_NONE */
  float* total_em;                     /* (npix) total EM / 1e26 cm^-5, required */
  /* API level 3 (fastinv_deepem_output_init sets these to 0 / NULL). Both need errors of
     mode FASTINV_ERRORS_SIGMA or _AIA (BP's sigma, the data's noise). */
  int32_t refine;      /* 1: each pixel's EM becomes the one closest to the network's that
                          satisfies Basis Pursuit's constraints (|K.EM - y| <= tolfac sigma,
                          EM >= 0, BP's adaptive tolfac 1.4, 2.1, 3.15); em, model, chi2 and
                          total_em are then the refined EM's */
  double* tolfac;      /* (npix) or NULL: the tolfac refinement used (NaN without refine) */
  int32_t* iterations; /* (npix) or NULL: refinement simplex iterations (0 without refine) */
  /* Calibrated 1-sigma errors: all three set or all NULL; NaN where status != 0; need a model
     card with an "errors" section (the shipped models have one). As Python's errors=True, the
     noise goes through the network's float32 Jacobian, formed from the card's reference slope
     patterns where it has them (the shipped cards do; exact), else in bfloat16 where the CPU
     has AVX512-BF16 (sigma within ~1 %), else by the dense float32 chain
     (docs/deepem-errors.md). */
  float* em_err;       /* (n_bins, npix) cm^-5 */
  float* logt_err;     /* (npix) dex, of the EM-weighted log T */
  float* total_em_err; /* (npix) cm^-5 */
} fastinv_deepem_output;

/* API level 3: size set, everything else 0 / NULL. */
void fastinv_deepem_output_init_sized(fastinv_deepem_output* output, size_t size);
#define fastinv_deepem_output_init(output) fastinv_deepem_output_init_sized((output), sizeof *(output))

/* path NULL: the default shipped model, "deepem21" (21 bins, log T 5.5 ... 7.5), the Python
 * DeepEM.load() default since API level 3 (levels 1-2 loaded the 18-bin model: size buffers
 * with fastinv_deepem_bins). A shipped model by name: "deepem21", or "deepem18" (the paper's
 * 18-bin grid, log T 5.5 ... 7.2); anything else is a file path. */
fastinv_status fastinv_deepem_load(const char* path, fastinv_deepem** deepem);
/* API level 3: with options (device NULL or "cpu"; precision "fp32" or "bf16"). */
fastinv_status fastinv_deepem_load_with(const char* path, const fastinv_load_options* options, fastinv_deepem** deepem);
void fastinv_deepem_destroy(fastinv_deepem* deepem);
/* Number of log T bins and (when logt is not NULL) their centres, logt[n_bins]. */
fastinv_status fastinv_deepem_bins(const fastinv_deepem* deepem, int32_t* n_bins, double* logt);
/* errors: NULL or as fastinv_dem_errors. */
fastinv_status fastinv_deepem_invert(const fastinv_deepem* deepem, const fastinv_aia_data* y,
                                     const fastinv_dem_errors* errors, const fastinv_deepem_output* output,
                                     int threads);

/* ---------------------------------------------------------------------------------------
 * Basis Pursuit DEMs (Cheung et al. 2015; SSW aia_sparse_em_* V1.001 defaults): the Python
 * fastinv.dem.BasisPursuit(...).solve, bitwise. */
typedef struct fastinv_bp fastinv_bp;

typedef struct fastinv_bp_options {
  size_t size;          /* sizeof(fastinv_bp_options) */
  const char* response; /* NULL: "aia_v10_eve"; a shipped table name or a CSV path */
  const double* logt;   /* NULL: 5.5 ... 7.5 step 0.1 (21 bins); else n_logt bin centres */
  int32_t n_logt;
  const double* widths; /* NULL: 0.1, 0.2, 0.6; Gaussian widths besides the Dirac basis */
  int32_t n_widths;
  double tolfac;          /* 1.4 */
  int32_t adaptive;       /* 1: retry failed pixels at tolfac x1.5, x2.25 */
  int32_t max_iterations; /* 400 simplex iterations per LP */
  int32_t warm_start;     /* 1 */
} fastinv_bp_options;

typedef struct fastinv_bp_output { /* C-contiguous, npix innermost; em and status required */
  size_t size;                     /* sizeof(fastinv_bp_output) */
  double* em;                      /* (n_bins, npix) cm^-5, 0 where status != 0 */
  int8_t* status;                  /* (npix) 0 ok, 2 infeasible, 3 not converged, 10 rejected,
                                      11 no counts, 12 bad input (values may be added) */
  double* chi2;                    /* (npix) or NULL; NaN where status != 0 */
  double* model;                   /* (6, npix) or NULL: re-synthesised DN/s */
  double* tolfac;                  /* (npix) or NULL */
  double* objective;               /* (npix) or NULL: sum of coefficients, 1e26 cm^-5 */
  double* coeffs;                  /* (n_coef, npix) or NULL */
  int32_t* iterations;             /* (npix) or NULL */
  /* Monte-Carlo errors: n_samples re-solves per solved pixel with the data perturbed by
     sigma, seeded by (seed, first_pixel + p): independent of threads and of how an image is
     split into calls. Each pointer may be NULL. */
  int32_t n_samples; /* 0: none */
  uint64_t seed;
  uint64_t first_pixel;
  double* em_err;       /* (n_bins, npix) cm^-5 */
  double* logt_err;     /* (npix) dex */
  double* total_em_err; /* (npix) cm^-5 */
  double* mc_feasible;  /* (npix) fraction of feasible draws */
} fastinv_bp_output;

void fastinv_bp_options_init_sized(fastinv_bp_options* options, size_t size);
#define fastinv_bp_options_init(options) fastinv_bp_options_init_sized((options), sizeof *(options))
void fastinv_bp_output_init_sized(fastinv_bp_output* output, size_t size); /* all NULL / 0 */
#define fastinv_bp_output_init(output) fastinv_bp_output_init_sized((output), sizeof *(output))
/* options: NULL for the defaults. */
fastinv_status fastinv_bp_create(const fastinv_bp_options* options, fastinv_bp** bp);
void fastinv_bp_destroy(fastinv_bp* bp);
fastinv_status fastinv_bp_sizes(const fastinv_bp* bp, int32_t* n_bins, int32_t* n_coef);
/* logt[n_bins]: the bin centres. */
fastinv_status fastinv_bp_logt(const fastinv_bp* bp, double* logt);
/* errors: mode SIGMA or AIA (the LP needs sigma). */
fastinv_status fastinv_bp_solve(const fastinv_bp* bp, const fastinv_aia_data* y, const fastinv_dem_errors* errors,
                                const fastinv_bp_output* output, int threads);

/* ---------------------------------------------------------------------------------------
 * Stokes inversion networks: (n, 4, n_wavelength) profiles I, Q, U, V / I_c on the model's
 * grid -> physical quantities at the card's log tau nodes. The Python
 * fastinv.stokes.StokesNet.predict (values bitwise; the azimuth to float32 rounding). */
typedef struct fastinv_stokes fastinv_stokes;

typedef struct fastinv_stokes_profiles {
  const void* data;
  int32_t dtype; /* fastinv_dtype */
  int64_t n;
  int64_t stride_profile, stride_stokes, stride_wavelength;
} fastinv_stokes_profiles;

/* path: a Stokes model file; or NULL with instrument "hinode" / "visp" for a shipped model. */
fastinv_status fastinv_stokes_load(const char* path, const char* instrument, fastinv_stokes** net);
/* API level 3: with options (precision "fp32" or "bf16" on the CPU). */
fastinv_status fastinv_stokes_load_with(const char* path, const char* instrument, const fastinv_load_options* options,
                                        fastinv_stokes** net);
void fastinv_stokes_destroy(fastinv_stokes* net);
fastinv_status fastinv_stokes_sizes(const fastinv_stokes* net, int32_t* n_wavelength, int32_t* n_nodes,
                                    int32_t* n_quantities);
/* wavelength[n_wavelength] (A, air) and nodes[n_nodes] (log tau_500); either may be NULL. */
fastinv_status fastinv_stokes_grid(const fastinv_stokes* net, double* wavelength, double* nodes);
/* Name and unit of quantity i (e.g. "temperature", "K"); the strings live as long as net. */
fastinv_status fastinv_stokes_quantity(const fastinv_stokes* net, int32_t i, const char** name, const char** unit);
/* out: (n_quantities, n, n_nodes) float32 C-contiguous; status: (n) or NULL, 0 ok, 1 a
 * non-finite input (that profile's outputs NaN). */
fastinv_status fastinv_stokes_predict(const fastinv_stokes* net, const fastinv_stokes_profiles* profiles, float* out,
                                      uint8_t* status, int threads);

/* ---------------------------------------------------------------------------------------
 * Milne-Eddington inversion (API level 2): Levenberg-Marquardt per pixel with analytic
 * derivatives, 1-sigma errors from the covariance; the C++ fastinv::stokes::MEInversion and
 * the Python fastinv.stokes.MEInversion (same model, same results for the same grid).
 * Parameters, in this order (FASTINV_ME_PARAMETERS): B [G], inclination [deg], azimuth [deg],
 * vlos [km/s], doppler_width [mA], damping, eta0, S0, S1, filling_factor, vmac [km/s],
 * stray_light (the fraction alpha of a given stray-light profile S in (1 - alpha) ME + alpha S). */
#define FASTINV_ME_PARAMETERS 12
#define FASTINV_ME_CORRELATED 5 /* correlations among B, inclination, azimuth, vlos, filling_factor */
typedef struct fastinv_me fastinv_me;

typedef struct fastinv_me_options {
  size_t size;              /* sizeof(fastinv_me_options) */
  const char* lines;        /* comma-separated registered names; NULL: "FeI_6301,FeI_6302" */
  const double* wavelength; /* (n_wavelength) the data's grid, air A, increasing (required) */
  int64_t n_wavelength;
  double lsf_fwhm;                     /* mA, Gaussian LSF (needs a uniform grid); 0: none */
  int32_t oversample;                  /* synthesis points per data step with an LSF; 0: a step <= 5.5 mA */
  double vmac_max;                     /* km/s: macroturbulence the synthesis grid is padded for (3) */
  double mu;                           /* cos(heliocentric angle), (0, 1] (1) */
  int32_t free[FASTINV_ME_PARAMETERS]; /* 1 = fitted (default the first nine); a free vmac
                                           needs lsf_fwhm > 0, a free stray_light a profile */
  double lower[FASTINV_ME_PARAMETERS]; /* box limits (defaults as in Python) */
  double upper[FASTINV_ME_PARAMETERS];
  double weights[4];      /* chi2 weights of I, Q, U, V (1) */
  int32_t max_iterations; /* 100 */
  double tolerance;       /* 1e-6: relative chi2 decrease that counts as converged */
  double chi2_threshold;  /* reduced chi2 above which a pixel gets status 2 (1e300) */
  double dark_threshold;  /* mean Stokes I at or below which a pixel is too dark (0) */
  int32_t restarts;       /* 3: deterministic extra starts for pixels above restart_chi2 */
  double restart_chi2;    /* 2 */
  /* API level 4: the arithmetic of the profile+Jacobian kernel, Python's MEInversion(precision=):
   * NULL or "float32" (the default; the fit, chi2 and covariance stay float64), "float64" */
  const char* precision;
} fastinv_me_options;

typedef struct fastinv_me_output { /* C-contiguous, pixel outermost */
  size_t size;                     /* sizeof(fastinv_me_output) */
  double* parameters;              /* (n, FASTINV_ME_PARAMETERS) required; NaN for bad pixels */
  double* errors;                  /* (n, FASTINV_ME_PARAMETERS) or NULL; NaN for fixed ones */
  double* correlations;            /* (n, 5, 5) or NULL */
  double* chi2;                    /* (n, 5) or NULL: I, Q, U, V, total reduced */
  int32_t* iterations;             /* (n) or NULL */
  int8_t* restarts;                /* (n) or NULL */
  int8_t* status;                  /* (n) required: 0 ok, 1 max iterations, 2 chi2 above threshold,
                                      3 bad input, 4 too dark (values may be added) */
  double* fit;                     /* (n, 4, n_wavelength) or NULL: best-fit profiles */
} fastinv_me_output;

/* The inputs of one call: C-contiguous float64. */
typedef struct fastinv_me_input {
  size_t size;          /* sizeof(fastinv_me_input) */
  int64_t n;            /* pixels */
  const double* stokes; /* (n, 4, n_wavelength) I, Q, U, V (required) */
  const double* sigma;  /* (4, n_wavelength), or (n, 4, n_wavelength) with sigma_per_pixel */
  int32_t sigma_per_pixel;
  const double* init;  /* (n, FASTINV_ME_PARAMETERS) initial guesses (required) */
  const double* stray; /* NULL (alpha = 0), (4, n_wavelength) or (n, 4, n_wavelength) */
  int32_t stray_per_pixel;
} fastinv_me_input;

void fastinv_me_options_init_sized(fastinv_me_options* options, size_t size); /* the defaults; wavelength NULL */
#define fastinv_me_options_init(options) fastinv_me_options_init_sized((options), sizeof *(options))
void fastinv_me_input_init_sized(fastinv_me_input* input, size_t size); /* all NULL / 0 */
#define fastinv_me_input_init(input) fastinv_me_input_init_sized((input), sizeof *(input))
void fastinv_me_output_init_sized(fastinv_me_output* output, size_t size); /* all NULL */
#define fastinv_me_output_init(output) fastinv_me_output_init_sized((output), sizeof *(output))
fastinv_status fastinv_me_create(const fastinv_me_options* options, fastinv_me** me);
void fastinv_me_destroy(fastinv_me* me);
/* n_wavelength: points per Stokes profile; n_synthesis: points of the synthesis grid. */
fastinv_status fastinv_me_sizes(const fastinv_me* me, int64_t* n_wavelength, int64_t* n_synthesis);
fastinv_status fastinv_me_invert(const fastinv_me* me, const fastinv_me_input* input, const fastinv_me_output* output,
                                 int threads);

#ifdef __cplusplus
}
#endif

#endif /* FASTINV_FASTINV_H */
