/* The C API's argument checking, in C99, run under AddressSanitizer + UBSan
 * (tests/test_cpp_native.py): every NULL pointer, bad size, bad enum and bad shape gives an
 * error status with a message (never a crash), negative strides give the reversed results,
 * and a bounded random fuzz of the view/size fields only ever gets a status back. Needs
 * FASTINV_DATA_DIR (the shipped models). Prints "N passed, N failed". */
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fastinv/fastinv.h"

static int passed = 0, failed = 0;

static void check(int ok, const char* what) {
  if (ok) {
    ++passed;
  } else {
    ++failed;
    printf("FAIL: %s (last error: %s)\n", what, fastinv_last_error());
  }
}

/* status s is the expected error and the message names `needle` */
static void check_error(fastinv_status s, fastinv_status expected, const char* needle, const char* what) {
  char buf[512];
  snprintf(buf, sizeof buf, "%s: status %d, expected %d", what, (int)s, (int)expected);
  check(s == expected, buf);
  snprintf(buf, sizeof buf, "%s: message names '%s'", what, needle);
  check(strstr(fastinv_last_error(), needle) != NULL, buf);
}

/* a DeepEM output with the five required buffers (level-3 fields 0 / NULL) */
static fastinv_deepem_output deepem_out(float* em, float* model, int8_t* st, double* chi2, float* tot) {
  fastinv_deepem_output o;
  fastinv_deepem_output_init(&o);
  o.em = em;
  o.model = model;
  o.status = st;
  o.chi2 = chi2;
  o.total_em = tot;
  return o;
}

static uint64_t rng_state = 12345;
static int64_t rnd(int64_t lo, int64_t hi) { /* uniform in [lo, hi] */
  rng_state = rng_state * 6364136223846793005ULL + 1442695040888963407ULL;
  return lo + (int64_t)((rng_state >> 33) % (uint64_t)(hi - lo + 1));
}

static void test_version(void) {
  check(fastinv_check_api(FASTINV_API_VERSION) == FASTINV_OK, "check_api(this header)");
  check(strcmp(fastinv_last_error(), "") == 0, "no message after success");
  check(fastinv_api_version() == FASTINV_API_VERSION, "api_version");
  check_error(fastinv_check_api(FASTINV_API_VERSION + 1), FASTINV_VERSION_MISMATCH, "API version", "a newer header");
  check_error(fastinv_check_api(0), FASTINV_VERSION_MISMATCH, "API version", "API version 0");
  check(strlen(fastinv_version()) > 0, "version string");
  char dir[4096], tiny[4];
  check(fastinv_data_dir(dir, sizeof dir) == FASTINV_OK, "data_dir");
  check_error(fastinv_data_dir(tiny, sizeof tiny), FASTINV_INVALID_ARGUMENT, "bytes", "data_dir: small buffer");
  check_error(fastinv_data_dir(NULL, 10), FASTINV_INVALID_ARGUMENT, "buf", "data_dir: NULL");
}

static void test_load_options(const char* dir) {
  char path[4200];
  snprintf(path, sizeof path, "%s/deepem.safetensors", dir);
  fastinv_load_options lo;
  fastinv_load_options_init(&lo);
  check(lo.size == sizeof lo && lo.device == NULL && lo.precision == NULL, "load_options_init");
  fastinv_model* m = NULL;
  check(fastinv_model_load_with(path, &lo, &m) == FASTINV_OK && m != NULL, "model_load_with(defaults)");
  fastinv_model_destroy(m);
  m = NULL;
  lo.precision = "fp16";
  check_error(fastinv_model_load_with(path, &lo, &m), FASTINV_INVALID_ARGUMENT, "fp16", "precision fp16");
  check(m == NULL, "no handle after a failed load_with");
  lo.precision = "bf16";
  const fastinv_status s = fastinv_model_load_with(path, &lo, &m);
  if (fastinv_bf16_available())
    check(s == FASTINV_OK && m != NULL, "model_load_with(bf16) where the CPU has AVX512-BF16");
  else
    check_error(s, FASTINV_UNSUPPORTED, "bf16", "model_load_with(bf16) without AVX512-BF16");
  fastinv_model_destroy(m);
  fastinv_load_options bad = lo;
  bad.size = 0;
  check_error(fastinv_model_load_with(path, &bad, &m), FASTINV_INVALID_ARGUMENT, "size", "load options size 0");
  fastinv_deepem* d = NULL;
  lo.precision = NULL;
  lo.device = "cuda";
  const fastinv_status sc = fastinv_deepem_load_with(NULL, &lo, &d); /* no CUDA build, or DeepEM is CPU-only */
  check((sc == FASTINV_UNSUPPORTED || sc == FASTINV_INVALID_ARGUMENT) && strstr(fastinv_last_error(), "cuda"),
        "deepem_load_with(cuda): a status naming cuda");
  check(d == NULL, "no DeepEM handle for cuda");
  fastinv_stokes* net = NULL;
  lo.device = NULL;
  lo.precision = "tf32";
  check_error(fastinv_stokes_load_with(NULL, "hinode", &lo, &net), FASTINV_INVALID_ARGUMENT, "tf32",
              "stokes_load_with(tf32 on the CPU)");
  lo.precision = "fp32";
  check(fastinv_stokes_load_with(NULL, "hinode", &lo, &net) == FASTINV_OK && net != NULL, "stokes_load_with(fp32)");
  fastinv_stokes_destroy(net);
}

static void test_model(const char* dir) {
  char path[4200];
  fastinv_model* m = NULL;
  check_error(fastinv_model_load(NULL, NULL, &m), FASTINV_INVALID_ARGUMENT, "path", "model_load(NULL path)");
  check_error(fastinv_model_load("x", NULL, NULL), FASTINV_INVALID_ARGUMENT, "model", "model_load(NULL out)");
  check_error(fastinv_model_load("/nonexistent/m.safetensors", NULL, &m), FASTINV_IO_ERROR, "nonexistent",
              "model_load(missing file)");
  check(m == NULL, "no handle after a failed load");
  snprintf(path, sizeof path, "%s/aia_v10_eve.csv", dir);
  check_error(fastinv_model_load(path, NULL, &m), FASTINV_INVALID_ARGUMENT, "aia_v10_eve.csv",
              "model_load(not a model)");
  snprintf(path, sizeof path, "%s/deepem.safetensors", dir);
  check_error(fastinv_model_load(path, "tpu", &m), FASTINV_INVALID_ARGUMENT, "tpu", "model_load(bad device)");
  check(fastinv_model_load(path, NULL, &m) == FASTINV_OK && m != NULL, "model_load(deepem)");
  int64_t ni = 0, no = 0;
  check(fastinv_model_sizes(m, &ni, &no) == FASTINV_OK && ni == 6 && no == 18, "model_sizes");
  check_error(fastinv_model_sizes(NULL, &ni, &no), FASTINV_INVALID_ARGUMENT, "model", "model_sizes(NULL)");
  check_error(fastinv_model_sizes(m, NULL, &no), FASTINV_INVALID_ARGUMENT, "input_size", "model_sizes(NULL)");

  enum { N = 5 };
  float in[N * 6], out[N * 18], rev[N * 18];
  for (int i = 0; i < N * 6; ++i) in[i] = (float)(i % 7) * 0.3f;
  const int64_t fs[1] = {6}, os[1] = {18};
  fastinv_view vi, vo;
  check(fastinv_view_contiguous(in, FASTINV_FLOAT32, N, 1, fs, &vi) == FASTINV_OK, "view_contiguous");
  check(fastinv_view_contiguous(out, FASTINV_FLOAT32, N, 1, os, &vo) == FASTINV_OK, "view_contiguous");
  check(fastinv_model_run(m, &vi, &vo, 1) == FASTINV_OK, "model_run");
  /* negative sample stride: the samples in reverse order */
  fastinv_view ri = vi, ro = vo;
  ri.data = in + (N - 1) * 6;
  ri.sample_strides[0] = -6;
  ro.data = rev;
  check(fastinv_model_run(m, &ri, &ro, 1) == FASTINV_OK, "model_run(negative stride)");
  int same = 1;
  for (int s = 0; s < N; ++s) same &= memcmp(rev + s * 18, out + (N - 1 - s) * 18, 18 * sizeof(float)) == 0;
  check(same, "negative stride gives the reversed samples");

  fastinv_view bad = vi;
  bad.feature_shape[0] = 7;
  check_error(fastinv_model_run(m, &bad, &vo, 1), FASTINV_INVALID_ARGUMENT, "expects", "model_run(wrong C)");
  bad = vi;
  bad.sample_ndim = 4;
  check_error(fastinv_model_run(m, &bad, &vo, 1), FASTINV_INVALID_ARGUMENT, "sample_ndim", "model_run(ndim 4)");
  bad = vi;
  bad.dtype = (fastinv_dtype)7;
  check_error(fastinv_model_run(m, &bad, &vo, 1), FASTINV_TYPE_MISMATCH, "dtype", "model_run(dtype 7)");
  bad = vo;
  bad.dtype = FASTINV_FLOAT64;
  check_error(fastinv_model_run(m, &vi, &bad, 1), FASTINV_TYPE_MISMATCH, "FLOAT32", "model_run(f64 output)");
  bad = vo;
  bad.sample_shape[0] = N - 1;
  check_error(fastinv_model_run(m, &vi, &bad, 1), FASTINV_INVALID_ARGUMENT, "samples", "model_run(short output)");
  bad = vi;
  bad.data = NULL;
  check_error(fastinv_model_run(m, &bad, &vo, 1), FASTINV_INVALID_ARGUMENT, "input->data", "model_run(NULL)");
  check_error(fastinv_model_run(m, NULL, &vo, 1), FASTINV_INVALID_ARGUMENT, "input", "model_run(NULL view)");
  check_error(fastinv_model_run(NULL, &vi, &vo, 1), FASTINV_INVALID_ARGUMENT, "model", "model_run(NULL model)");
  check_error(fastinv_view_contiguous(in, FASTINV_FLOAT32, -1, 1, fs, &vi), FASTINV_INVALID_ARGUMENT, "negative",
              "view_contiguous(n < 0)");

  /* Bounded fuzz of the view fields: buffers are large enough, with the pointer in the
     middle, for any shape <= 4 and |stride| <= 8 over 5 dimensions, so any call that is
     accepted stays inside them; every call must come back with a status. */
  static double big_in_storage[1024]; /* 8-byte aligned for the float64 views */
  static float big_out[2048];
  float* big_in = (float*)big_in_storage;
  for (int i = 0; i < 2048; ++i) big_in[i] = (float)rnd(-100, 100) * 0.01f;
  int statuses_ok = 1, messages_ok = 1, accepted = 0;
  for (int it = 0; it < 3000; ++it) {
    fastinv_view a, b;
    memset(&a, 0, sizeof a);
    memset(&b, 0, sizeof b);
    a.data = big_in + 1024;
    b.data = big_out + 1024;
    a.dtype = (fastinv_dtype)(rnd(0, 10) == 0 ? rnd(-1, 3) : 0);
    b.dtype = (fastinv_dtype)(rnd(0, 10) == 0 ? 1 : 0);
    fastinv_view* vs[2] = {&a, &b};
    for (int k = 0; k < 2; ++k) {
      fastinv_view* v = vs[k];
      v->sample_ndim = (int32_t)(rnd(0, 8) == 0 ? rnd(-1, 5) : rnd(1, 3));
      v->feature_ndim = (int32_t)(rnd(0, 8) == 0 ? rnd(-1, 4) : rnd(1, 2));
      for (int d = 0; d < 3; ++d) {
        v->sample_shape[d] = rnd(-2, 4);
        v->sample_strides[d] = rnd(-8, 8);
      }
      v->feature_shape[0] = rnd(0, 3) ? (k ? 18 : 6) : rnd(-1, 20);
      v->feature_shape[1] = rnd(0, 3) ? 1 : rnd(-1, 3);
      for (int d = 0; d < 2; ++d) v->feature_strides[d] = rnd(-2, 2);
    }
    /* the output's samples must fit its buffer: 18 features x stride <= 2 x 4^3 samples... */
    for (int d = 0; d < 3; ++d) b.sample_strides[d] = rnd(-4, 4);
    if (a.dtype == FASTINV_FLOAT64) a.data = big_in + 512; /* 8-byte elements: half the count */
    const fastinv_status s = fastinv_model_run(m, &a, &b, 1);
    statuses_ok &= s >= FASTINV_OK && s <= FASTINV_INTERNAL_ERROR;
    messages_ok &= (s == FASTINV_OK) == (fastinv_last_error()[0] == '\0');
    accepted += s == FASTINV_OK;
  }
  check(statuses_ok, "fuzz: every model_run returned a known status");
  check(messages_ok, "fuzz: a message exactly when the call failed");
  check(accepted > 0, "fuzz: some random views were valid");
  fastinv_model_destroy(m);
  fastinv_model_destroy(NULL);
}

static void test_deepem(const char* dir) {
  char path[4200];
  fastinv_deepem* d = NULL;
  snprintf(path, sizeof path, "%s/stokes_hinode.safetensors", dir);
  check_error(fastinv_deepem_load(path, &d), FASTINV_INVALID_ARGUMENT, "DeepEM", "deepem_load(a Stokes model)");
  check_error(fastinv_deepem_load(NULL, NULL), FASTINV_INVALID_ARGUMENT, "deepem", "deepem_load(NULL out)");
  int32_t nb = 0;
  double logt[64];
  /* NULL: Python's default model, deepem21 (API level 3) */
  check(fastinv_deepem_load(NULL, &d) == FASTINV_OK, "deepem_load(default)");
  check(fastinv_deepem_bins(d, &nb, logt) == FASTINV_OK && nb == 21 && fabs(logt[20] - 7.5) < 1e-12,
        "deepem_bins(default): 21 bins to log T 7.5");
  fastinv_deepem_destroy(d);
  check_error(fastinv_deepem_load("deepem99", &d), FASTINV_IO_ERROR, "deepem99", "deepem_load(unknown name)");
  check(fastinv_deepem_load("deepem18", &d) == FASTINV_OK, "deepem_load(\"deepem18\")");
  check(fastinv_deepem_bins(d, &nb, logt) == FASTINV_OK && nb == 18 && fabs(logt[0] - 5.5) < 1e-12, "deepem_bins");

  enum { P = 40 };
  double y[6 * P];
  for (int i = 0; i < 6 * P; ++i) y[i] = (double)rnd(0, 5000) * 0.1;
  y[3 * P + 7] = NAN; /* pixel 7: bad input */
  float em[18 * P], model[6 * P], tot[P], em_r[18 * P], model_r[6 * P], tot_r[P];
  int8_t st[P], st_r[P];
  double chi2[P], chi2_r[P];
  fastinv_deepem_output o = deepem_out(em, model, st, chi2, tot);
  fastinv_aia_data yd = {y, FASTINV_FLOAT64, P, P, 1};
  fastinv_dem_errors e;
  fastinv_dem_errors_init(&e);
  e.mode = FASTINV_ERRORS_AIA;
  for (int c = 0; c < 6; ++c) e.exptime[c] = 2.0;
  check(fastinv_deepem_invert(d, &yd, &e, &o, 1) == FASTINV_OK, "deepem_invert");
  check(st[7] == 12 && st[0] == 0 && isnan(chi2[7]) && !isnan(chi2[0]), "deepem status / chi2");
  /* negative pixel stride: reversed */
  fastinv_aia_data yr = {y + (P - 1), FASTINV_FLOAT64, P, P, -1};
  fastinv_deepem_output orv = deepem_out(em_r, model_r, st_r, chi2_r, tot_r);
  check(fastinv_deepem_invert(d, &yr, &e, &orv, 1) == FASTINV_OK, "deepem_invert(negative stride)");
  int same = 1;
  for (int p = 0; p < P; ++p) {
    same &= st_r[p] == st[P - 1 - p] && tot_r[p] == tot[P - 1 - p];
    for (int k = 0; k < 18; ++k) same &= em_r[k * P + p] == em[k * P + P - 1 - p];
  }
  check(same, "deepem: negative stride gives the reversed pixels, bitwise");

  fastinv_deepem_output ob = o;
  ob.size = 0;
  check_error(fastinv_deepem_invert(d, &yd, &e, &ob, 1), FASTINV_INVALID_ARGUMENT, "size", "output size 0");
  ob = o;
  ob.chi2 = NULL;
  check_error(fastinv_deepem_invert(d, &yd, &e, &ob, 1), FASTINV_INVALID_ARGUMENT, "output->chi2", "NULL chi2");
  fastinv_aia_data yb = yd;
  yb.npix = -3;
  check_error(fastinv_deepem_invert(d, &yb, &e, &o, 1), FASTINV_INVALID_ARGUMENT, "negative", "npix < 0");
  yb = yd;
  yb.dtype = (fastinv_dtype)2;
  check_error(fastinv_deepem_invert(d, &yb, &e, &o, 1), FASTINV_TYPE_MISMATCH, "dtype", "dtype 2");
  fastinv_dem_errors eb = e;
  eb.exptime[4] = 0.0;
  check_error(fastinv_deepem_invert(d, &yd, &eb, &o, 1), FASTINV_INVALID_ARGUMENT, "exptime", "exptime 0");
  eb = e;
  eb.n_sample = 0.5;
  check_error(fastinv_deepem_invert(d, &yd, &eb, &o, 1), FASTINV_INVALID_ARGUMENT, "n_sample", "n_sample < 1");
  eb = e;
  eb.mode = (fastinv_error_model)9;
  check_error(fastinv_deepem_invert(d, &yd, &eb, &o, 1), FASTINV_INVALID_ARGUMENT, "mode", "error mode 9");
  eb = e;
  eb.mode = FASTINV_ERRORS_SIGMA;
  check_error(fastinv_deepem_invert(d, &yd, &eb, &o, 1), FASTINV_INVALID_ARGUMENT, "sigma", "NULL sigma");
  check_error(fastinv_deepem_invert(d, NULL, &e, &o, 1), FASTINV_INVALID_ARGUMENT, "y", "NULL y");
  check_error(fastinv_deepem_invert(NULL, &yd, &e, &o, 1), FASTINV_INVALID_ARGUMENT, "deepem", "NULL handle");
  check(fastinv_deepem_invert(d, &yd, NULL, &o, 1) == FASTINV_OK && isnan(chi2[0]), "no errors: chi2 NaN");

  /* API level 3: refinement and errors. A level-2 caller's struct (size up to total_em) is
     served and the fields after it are never read (here: garbage that would be rejected). */
  struct {
    fastinv_deepem_output o;
    char guard[64];
  } v2;
  memset(&v2, 0x5a, sizeof v2);
  memcpy(&v2.o, &o, offsetof(fastinv_deepem_output, refine));
  v2.o.size = offsetof(fastinv_deepem_output, refine);
  check(fastinv_deepem_invert(d, &yd, &e, &v2.o, 1) == FASTINV_OK && st[0] == 0, "deepem_invert(level-2 size)");
  fastinv_deepem_output o3 = deepem_out(em, model, st, chi2, tot);
  check(o3.size == sizeof o3 && o3.refine == 0 && o3.em_err == NULL && o3.tolfac == NULL, "deepem_output_init");
  float em_err[18 * P], logt_err[P], tot_err[P];
  double tolfac[P];
  int32_t iters[P];
  o3.refine = 1;
  o3.tolfac = tolfac;
  o3.iterations = iters;
  o3.em_err = em_err;
  o3.logt_err = logt_err;
  o3.total_em_err = tot_err;
  check(fastinv_deepem_invert(d, &yd, &e, &o3, 1) == FASTINV_OK, "deepem_invert(refine, errors)");
  check(st[7] == 12 && isnan(logt_err[7]) && (st[0] != 0 || (logt_err[0] > 0 && tot_err[0] > 0)),
        "refine/errors: NaN errors for bad input, positive ones where ok");
  check_error(fastinv_deepem_invert(d, &yd, NULL, &o3, 1), FASTINV_INVALID_ARGUMENT, "errors",
              "refine without the data's errors");
  fastinv_deepem_output o3b = o3;
  o3b.refine = 2;
  check_error(fastinv_deepem_invert(d, &yd, &e, &o3b, 1), FASTINV_INVALID_ARGUMENT, "refine", "refine = 2");
  o3b = o3;
  o3b.logt_err = NULL;
  check_error(fastinv_deepem_invert(d, &yd, &e, &o3b, 1), FASTINV_INVALID_ARGUMENT, "em_err", "errors half set");
  o3b = o3;
  o3b.refine = 0;
  check(fastinv_deepem_invert(d, &yd, &e, &o3b, 1) == FASTINV_OK && iters[0] == 0 && isnan(tolfac[0]),
        "no refine: iterations 0, tolfac NaN");

  /* fuzz of the AIA view and error fields; buffers cover |stride| <= 8 x 4 pixels */
  static double big[1024];
  static float fem[18 * 8], fmodel[6 * 8], ftot[8];
  static int8_t fst[8];
  static double fchi[8];
  for (int i = 0; i < 1024; ++i) big[i] = (double)rnd(-10, 1000);
  int statuses_ok = 1, accepted = 0;
  for (int it = 0; it < 2000; ++it) {
    fastinv_aia_data f = {big + 512, (fastinv_dtype)(rnd(0, 6) == 0 ? rnd(-1, 3) : 1), rnd(-2, 4), rnd(-8, 8),
                          rnd(-8, 8)};
    fastinv_dem_errors fe;
    fastinv_dem_errors_init(&fe);
    fe.size = rnd(0, 8) == 0 ? (size_t)rnd(0, 64) : sizeof fe;
    fe.mode = (fastinv_error_model)rnd(-1, 3);
    fe.sigma = rnd(0, 1) ? big + 512 : NULL;
    fe.sigma_stride_channel = rnd(-8, 8);
    fe.sigma_stride_pixel = rnd(-8, 8);
    for (int c = 0; c < 6; ++c) fe.exptime[c] = (double)rnd(-1, 3);
    fe.n_sample = (double)rnd(0, 4);
    fastinv_deepem_output fo = deepem_out(fem, fmodel, fst, fchi, ftot);
    if (rnd(0, 8) == 0) fo.size = (size_t)rnd(0, 100);
    const fastinv_status s = fastinv_deepem_invert(d, &f, rnd(0, 5) ? &fe : NULL, &fo, 1);
    statuses_ok &= s >= FASTINV_OK && s <= FASTINV_UNSUPPORTED;
    accepted += s == FASTINV_OK;
  }
  check(statuses_ok, "fuzz: every deepem_invert returned a known status");
  check(accepted > 0, "fuzz: some random DeepEM calls were valid");
  fastinv_deepem_destroy(d);
}

static void test_bp(void) {
  fastinv_bp* bp = NULL;
  fastinv_bp_options op;
  fastinv_bp_options_init(&op);
  check(op.size == sizeof op && op.tolfac == 1.4 && op.adaptive == 1, "bp_options_init");
  fastinv_bp_options ob = op;
  ob.tolfac = NAN;
  check_error(fastinv_bp_create(&ob, &bp), FASTINV_INVALID_ARGUMENT, "tolfac", "bp_create(tolfac NaN)");
  ob = op;
  const double w[2] = {0.1, -0.2};
  ob.widths = w;
  ob.n_widths = 2;
  check_error(fastinv_bp_create(&ob, &bp), FASTINV_INVALID_ARGUMENT, "widths", "bp_create(negative width)");
  ob = op;
  const double g[1] = {6.0};
  ob.logt = g;
  ob.n_logt = 1;
  check_error(fastinv_bp_create(&ob, &bp), FASTINV_INVALID_ARGUMENT, "n_logt", "bp_create(1 bin)");
  ob = op;
  ob.response = "no_such_table";
  check_error(fastinv_bp_create(&ob, &bp), FASTINV_INVALID_ARGUMENT, "no_such_table", "bp_create(bad table)");
  ob = op;
  ob.size = 3;
  check_error(fastinv_bp_create(&ob, &bp), FASTINV_INVALID_ARGUMENT, "size", "bp_create(size 3)");
  ob = op;
  ob.max_iterations = 0;
  check_error(fastinv_bp_create(&ob, &bp), FASTINV_INVALID_ARGUMENT, "max_iterations", "bp_create(0 iterations)");
  check_error(fastinv_bp_create(&op, NULL), FASTINV_INVALID_ARGUMENT, "bp", "bp_create(NULL out)");
  check(fastinv_bp_create(NULL, &bp) == FASTINV_OK, "bp_create(defaults)");
  int32_t nb = 0, nc = 0;
  check(fastinv_bp_sizes(bp, &nb, &nc) == FASTINV_OK && nb == 21 && nc == 84, "bp_sizes");

  enum { P = 3 };
  double y[6 * P];
  for (int i = 0; i < 6 * P; ++i) y[i] = 50.0 + (double)(i % 5) * 20.0;
  double em[21 * P], chi2[P];
  int8_t st[P];
  fastinv_bp_output o;
  fastinv_bp_output_init(&o);
  o.em = em;
  o.status = st;
  o.chi2 = chi2;
  fastinv_aia_data yd = {y, FASTINV_FLOAT64, P, P, 1};
  fastinv_dem_errors e;
  fastinv_dem_errors_init(&e);
  check_error(fastinv_bp_solve(bp, &yd, &e, &o, 1), FASTINV_INVALID_ARGUMENT, "sigma", "bp_solve(no errors)");
  check_error(fastinv_bp_solve(bp, &yd, NULL, &o, 1), FASTINV_INVALID_ARGUMENT, "errors", "bp_solve(NULL errors)");
  e.mode = FASTINV_ERRORS_AIA;
  for (int c = 0; c < 6; ++c) e.exptime[c] = 2.0;
  check(fastinv_bp_solve(bp, &yd, &e, &o, 1) == FASTINV_OK, "bp_solve");
  fastinv_bp_output bo = o;
  bo.em = NULL;
  check_error(fastinv_bp_solve(bp, &yd, &e, &bo, 1), FASTINV_INVALID_ARGUMENT, "em", "bp_solve(NULL em)");
  bo = o;
  bo.n_samples = -1;
  check_error(fastinv_bp_solve(bp, &yd, &e, &bo, 1), FASTINV_INVALID_ARGUMENT, "n_samples", "bp_solve(n_samples<0)");
  bo = o;
  bo.size = 0;
  check_error(fastinv_bp_solve(bp, &yd, &e, &bo, 1), FASTINV_INVALID_ARGUMENT, "size", "bp_solve(size 0)");
  fastinv_bp_destroy(bp);
  fastinv_bp_destroy(NULL);
}

static void test_stokes(void) {
  fastinv_stokes* s = NULL;
  check_error(fastinv_stokes_load(NULL, NULL, &s), FASTINV_INVALID_ARGUMENT, "instrument", "stokes_load(nothing)");
  check_error(fastinv_stokes_load(NULL, "sdo", &s), FASTINV_INVALID_ARGUMENT, "sdo", "stokes_load(bad instrument)");
  check(fastinv_stokes_load(NULL, "hinode", &s) == FASTINV_OK, "stokes_load(hinode)");
  int32_t nl = 0, nn = 0, nq = 0;
  check(fastinv_stokes_sizes(s, &nl, &nn, &nq) == FASTINV_OK && nl > 10 && nn == 7 && nq == 5, "stokes_sizes");
  const char *name = NULL, *unit = NULL;
  check(fastinv_stokes_quantity(s, 0, &name, &unit) == FASTINV_OK && strcmp(name, "temperature") == 0 &&
            strcmp(unit, "K") == 0,
        "stokes_quantity(0)");
  check_error(fastinv_stokes_quantity(s, nq, &name, &unit), FASTINV_INVALID_ARGUMENT, "index", "quantity(nq)");
  check_error(fastinv_stokes_quantity(s, -1, &name, &unit), FASTINV_INVALID_ARGUMENT, "index", "quantity(-1)");
  const int n = 2;
  float* x = calloc((size_t)(n * 4 * nl), sizeof(float));
  float* out = calloc((size_t)(nq * n * nn), sizeof(float));
  uint8_t st[2];
  for (int i = 0; i < n * 4 * nl; i += 4 * nl)
    for (int l = 0; l < nl; ++l) x[i + l] = 1.0f;
  x[4 * nl + 5] = NAN;
  fastinv_stokes_profiles p = {x, FASTINV_FLOAT32, n, 4 * nl, nl, 1};
  check(fastinv_stokes_predict(s, &p, out, st, 1) == FASTINV_OK, "stokes_predict");
  check(st[0] == 0 && st[1] == 1 && !isnan(out[0]) && isnan(out[nn]), "stokes status / NaN row");
  check_error(fastinv_stokes_predict(s, &p, NULL, st, 1), FASTINV_INVALID_ARGUMENT, "out", "predict(NULL out)");
  p.n = -1;
  check_error(fastinv_stokes_predict(s, &p, out, st, 1), FASTINV_INVALID_ARGUMENT, "negative", "predict(n < 0)");
  p.n = n;
  p.dtype = (fastinv_dtype)5;
  check_error(fastinv_stokes_predict(s, &p, out, st, 1), FASTINV_TYPE_MISMATCH, "dtype", "predict(dtype 5)");
  check_error(fastinv_stokes_predict(NULL, &p, out, st, 1), FASTINV_INVALID_ARGUMENT, "net", "predict(NULL)");
  free(x);
  free(out);
  fastinv_stokes_destroy(s);
  fastinv_stokes_destroy(NULL);
}

static void test_me(void) {
  double wl[60], x[2 * 4 * 60], init[2 * FASTINV_ME_PARAMETERS], sigma[4 * 60], par[2 * FASTINV_ME_PARAMETERS];
  int8_t st[2];
  for (int l = 0; l < 60; ++l) wl[l] = 6301.0 + 0.0215 * l;
  fastinv_me_options o;
  fastinv_me_options_init(&o);
  check(o.size == sizeof o && o.free[0] == 1 && o.free[9] == 0 && o.free[11] == 0 && o.restarts == 3,
        "me_options_init");
  fastinv_me* me = NULL;
  check_error(fastinv_me_create(&o, &me), FASTINV_INVALID_ARGUMENT, "n_wavelength", "me_create(no grid)");
  o.wavelength = wl;
  o.n_wavelength = 60;
  check_error(fastinv_me_create(NULL, &me), FASTINV_INVALID_ARGUMENT, "options", "me_create(NULL options)");
  check_error(fastinv_me_create(&o, NULL), FASTINV_INVALID_ARGUMENT, "me", "me_create(NULL out)");
  o.lines = "FeI_6301,,FeI_6302";
  check_error(fastinv_me_create(&o, &me), FASTINV_INVALID_ARGUMENT, "empty line", "me_create(empty name)");
  o.lines = "FeI_9999";
  check(fastinv_me_create(&o, &me) != FASTINV_OK, "me_create(unknown line)");
  o.lines = NULL;
  o.lsf_fwhm = -3.0;
  check_error(fastinv_me_create(&o, &me), FASTINV_INVALID_ARGUMENT, "lsf_fwhm", "me_create(lsf < 0)");
  o.lsf_fwhm = 0.0;
  o.free[10] = 1; /* a free vmac without an LSF: the smoothing pass is differentiated */
  check(fastinv_me_create(&o, &me) == FASTINV_OK, "me_create(free vmac, no LSF)");
  fastinv_me_destroy(me);
  me = NULL;
  o.lsf_fwhm = 30.0;
  wl[7] += 0.005; /* an LSF needs a uniform grid */
  check_error(fastinv_me_create(&o, &me), FASTINV_INVALID_ARGUMENT, "uniform", "me_create(non-uniform)");
  wl[7] -= 0.005;
  o.free[11] = 1; /* stray light: needs a profile at invert() */
  o.size = 3;
  check_error(fastinv_me_create(&o, &me), FASTINV_INVALID_ARGUMENT, "size", "me_create(size 3)");
  o.size = sizeof o;
  check(fastinv_me_create(&o, &me) == FASTINV_OK, "me_create(LSF, free vmac and stray light)");
  int64_t nw = 0, ns = 0;
  check(fastinv_me_sizes(me, &nw, &ns) == FASTINV_OK && nw == 60 && ns > 120, "me_sizes");
  const double truth[FASTINV_ME_PARAMETERS] = {1200, 50, 30, 0.3, 30, 0.2, 10, 0.2, 0.8, 1, 0.5, 0.1};
  for (int i = 0; i < 2; ++i)
    for (int k = 0; k < FASTINV_ME_PARAMETERS; ++k) init[i * FASTINV_ME_PARAMETERS + k] = truth[k];
  for (int k = 0; k < 2 * 4 * 60; ++k) x[k] = (k % (4 * 60)) < 60 ? 1.0 : 0.0;
  for (int k = 0; k < 4 * 60; ++k) sigma[k] = 1e-3;
  x[4 * 60 + 3] = NAN;
  fastinv_me_input in;
  fastinv_me_input_init(&in);
  fastinv_me_output out;
  fastinv_me_output_init(&out);
  in.n = 2;
  in.stokes = x;
  in.sigma = sigma;
  in.init = init;
  out.parameters = par;
  out.status = st;
  check_error(fastinv_me_invert(me, &in, &out, 1), FASTINV_INVALID_ARGUMENT, "stray", "me_invert(no stray profile)");
  in.stray = sigma; /* any finite (4, m) profile */
  check(fastinv_me_invert(me, &in, &out, 1) == FASTINV_OK && st[1] == 3 && isnan(par[FASTINV_ME_PARAMETERS]),
        "me_invert: status / NaN for a bad pixel");
  out.status = NULL;
  check_error(fastinv_me_invert(me, &in, &out, 1), FASTINV_INVALID_ARGUMENT, "status", "me_invert(NULL status)");
  out.status = st;
  in.n = -1;
  check_error(fastinv_me_invert(me, &in, &out, 1), FASTINV_INVALID_ARGUMENT, "negative", "me_invert(n < 0)");
  in.n = 2;
  in.init = NULL;
  check_error(fastinv_me_invert(me, &in, &out, 1), FASTINV_INVALID_ARGUMENT, "init", "me_invert(NULL init)");
  check_error(fastinv_me_invert(NULL, &in, &out, 1), FASTINV_INVALID_ARGUMENT, "me", "me_invert(NULL me)");
  check_error(fastinv_me_invert(me, NULL, &out, 1), FASTINV_INVALID_ARGUMENT, "input", "me_invert(NULL input)");
  fastinv_me_destroy(me);
  fastinv_me_destroy(NULL);
}

/* What programs built against API level 3 call (the header's fastinv_X_init is now a macro). */
void(fastinv_me_options_init)(fastinv_me_options* options);

/* bytes [from, to) of p all equal v */
static int all_bytes(const void* p, size_t from, size_t to, unsigned char v) {
  const unsigned char* b = (const unsigned char*)p;
  for (size_t i = from; i < to; ++i)
    if (b[i] != v) return 0;
  return 1;
}

/* API level 4: the *_init macros pass the caller's sizeof, so a struct that grows in the
   library is never written past the caller's end; level-3 programs keep their symbol. */
static void test_init_sizes(void) {
  const size_t level3 = offsetof(fastinv_me_options, precision);
  struct {
    fastinv_me_options o;
    unsigned char guard[64];
  } b;
  memset(&b, 0xa5, sizeof b);
  fastinv_me_options_init_sized(&b.o, level3);
  check(b.o.size == level3 && b.o.free[0] == 1 && b.o.restarts == 3 && b.o.restart_chi2 == 2.0,
        "me_options_init_sized(level-3 size): defaults");
  check(all_bytes(&b, level3, sizeof b, 0xa5), "me_options_init_sized(level-3 size) writes nothing past it");
  double wl[40];
  for (int l = 0; l < 40; ++l) wl[l] = 6301.0 + 0.0215 * l;
  b.o.wavelength = wl;
  b.o.n_wavelength = 40;
  fastinv_me* me = NULL;
  check(fastinv_me_create(&b.o, &me) == FASTINV_OK, "me_create(a level-3 caller's options)");
  fastinv_me_destroy(me);

  memset(&b, 0xa5, sizeof b);
  (fastinv_me_options_init)(&b.o);
  check(b.o.size == level3 && b.o.restarts == 3 && all_bytes(&b, level3, sizeof b, 0xa5),
        "the level-3 symbol fastinv_me_options_init writes the level-3 struct");

  memset(&b, 0xa5, sizeof b);
  fastinv_me_options_init_sized(&b.o, sizeof b.o + 16); /* a header newer than the library */
  check(b.o.size == sizeof b.o + 16 && b.o.precision == NULL && all_bytes(&b, sizeof b.o, sizeof b.o + 16, 0) &&
            all_bytes(&b, sizeof b.o + 16, sizeof b, 0xa5),
        "me_options_init_sized(a larger size): zeros to its end, nothing past");

  memset(&b, 0xa5, sizeof b);
  fastinv_me_options_init_sized(&b.o, 3);
  check(all_bytes(&b, 0, sizeof b, 0xa5), "init_sized(3 bytes) writes nothing");
  check_error(fastinv_me_create(&b.o, &me), FASTINV_INVALID_ARGUMENT, "size", "me_create(options never initialised)");

  fastinv_me_options o;
  fastinv_me_options_init(&o);
  check(o.size == sizeof o && o.precision == NULL, "me_options_init: precision NULL");
  o.wavelength = wl;
  o.n_wavelength = 40;
  o.precision = "float64";
  check(fastinv_me_create(&o, &me) == FASTINV_OK, "me_create(precision float64)");
  fastinv_me_destroy(me);
  o.precision = "bf16";
  check_error(fastinv_me_create(&o, &me), FASTINV_INVALID_ARGUMENT, "precision", "me_create(precision bf16)");

  fastinv_load_options lo;
  fastinv_dem_errors de;
  fastinv_deepem_output dout;
  fastinv_bp_options bo;
  fastinv_bp_output bout;
  fastinv_me_input mi;
  fastinv_me_output mo;
  fastinv_load_options_init(&lo);
  fastinv_dem_errors_init(&de);
  fastinv_deepem_output_init(&dout);
  fastinv_bp_options_init(&bo);
  fastinv_bp_output_init(&bout);
  fastinv_me_input_init(&mi);
  fastinv_me_output_init(&mo);
  check(lo.size == sizeof lo && de.size == sizeof de && dout.size == sizeof dout && bo.size == sizeof bo &&
            bout.size == sizeof bout && mi.size == sizeof mi && mo.size == sizeof mo,
        "every *_init macro sets size = sizeof");
  check(de.n_sample == 1.0 && de.mode == FASTINV_ERRORS_NONE && bo.tolfac == 1.4 && mi.stokes == NULL,
        "*_init macros: the defaults");
}

int main(void) {
  char dir[4096];
  if (fastinv_data_dir(dir, sizeof dir) != FASTINV_OK) {
    printf("FAIL: no data directory: %s\n0 passed, 1 failed\n", fastinv_last_error());
    return 1;
  }
  test_version();
  test_model(dir);
  test_load_options(dir);
  test_deepem(dir);
  test_bp();
  test_stokes();
  test_me();
  test_init_sizes();
  printf("%d passed, %d failed\n", passed, failed);
  return failed != 0;
}
