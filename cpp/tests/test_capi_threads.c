/* The C API's thread-safety promise: one handle each of DeepEM (refined, with error bars),
 * Basis Pursuit and a Stokes network, shared by 8 threads that call invert / solve / predict many times at once with
 * their own buffers; every result must equal a serial run's bitwise. Built with
 * -fsanitize=thread by tests/embedding (without OpenMP there: libgomp is not instrumented
 * for ThreadSanitizer, so each call runs on its calling thread). Needs FASTINV_DATA_DIR.
 * Prints "N passed, N failed". */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fastinv/fastinv.h"

enum { THREADS = 8, DEEPEM_CALLS = 60, BP_CALLS = 8, STOKES_CALLS = 60, NPIX = 64, NBP = 6, NPROF = 8, NT = 21 };

static const fastinv_deepem* deepem;
static const fastinv_bp* bp;
static const fastinv_stokes* stokes;
static double image[6 * NPIX];
static double* profiles;
static int32_t n_wl, n_nodes, n_q, n_bins_bp;

/* the serial results */
static float ref_em[NT * NPIX], ref_tot[NPIX], ref_logt_err[NPIX];
static double ref_bp_em[64 * NBP], ref_bp_err[NBP];
static float* ref_stokes;

/* the default model (deepem21), refined, with error bars (API level 3) */
static int run_deepem(float* em, float* tot, float* logt_err) {
  float model[6 * NPIX], em_err[NT * NPIX], tot_err[NPIX];
  int8_t st[NPIX];
  double chi2[NPIX];
  fastinv_deepem_output o;
  fastinv_deepem_output_init(&o);
  o.em = em;
  o.model = model;
  o.status = st;
  o.chi2 = chi2;
  o.total_em = tot;
  o.refine = 1;
  o.em_err = em_err;
  o.logt_err = logt_err;
  o.total_em_err = tot_err;
  fastinv_dem_errors e;
  fastinv_dem_errors_init(&e);
  e.mode = FASTINV_ERRORS_AIA;
  for (int c = 0; c < 6; ++c) e.exptime[c] = 2.0;
  const fastinv_aia_data y = {image, FASTINV_FLOAT64, NPIX, NPIX, 1};
  return fastinv_deepem_invert(deepem, &y, &e, &o, 1) == FASTINV_OK;
}

static int run_bp(double* em, double* logt_err) {
  int8_t st[NBP];
  fastinv_bp_output o;
  fastinv_bp_output_init(&o);
  o.em = em;
  o.status = st;
  o.n_samples = 8;
  o.seed = 7;
  o.logt_err = logt_err;
  fastinv_dem_errors e;
  fastinv_dem_errors_init(&e);
  e.mode = FASTINV_ERRORS_AIA;
  for (int c = 0; c < 6; ++c) e.exptime[c] = 2.0;
  const fastinv_aia_data y = {image, FASTINV_FLOAT64, NBP, NPIX, 1}; /* the first NBP pixels */
  return fastinv_bp_solve(bp, &y, &e, &o, 1) == FASTINV_OK;
}

static int run_stokes(float* out) {
  const fastinv_stokes_profiles p = {profiles, FASTINV_FLOAT64, NPROF, 4 * (int64_t)n_wl, n_wl, 1};
  uint8_t st[NPROF];
  return fastinv_stokes_predict(stokes, &p, out, st, 1) == FASTINV_OK;
}

static void* worker(void* arg) {
  int* mismatches = arg;
  float em[NT * NPIX], tot[NPIX], logt_err[NPIX];
  double bp_em[64 * NBP], bp_err[NBP];
  float* st = malloc(sizeof(float) * (size_t)(n_q * NPROF * n_nodes));
  for (int i = 0; i < DEEPEM_CALLS + BP_CALLS + STOKES_CALLS; ++i) {
    if (i % 13 == 5 && i / 13 < BP_CALLS) { /* interleave the slow BP calls */
      *mismatches += !run_bp(bp_em, bp_err) || memcmp(bp_em, ref_bp_em, sizeof(double) * (size_t)n_bins_bp * NBP) ||
                     memcmp(bp_err, ref_bp_err, sizeof bp_err);
    } else if (i % 2) {
      *mismatches += !run_deepem(em, tot, logt_err) || memcmp(em, ref_em, sizeof em) ||
                     memcmp(tot, ref_tot, sizeof tot) || memcmp(logt_err, ref_logt_err, sizeof logt_err);
    } else {
      *mismatches += !run_stokes(st) || memcmp(st, ref_stokes, sizeof(float) * (size_t)(n_q * NPROF * n_nodes));
    }
  }
  free(st);
  return NULL;
}

int main(void) {
  int passed = 0, failed = 0;
  fastinv_deepem* d = NULL;
  fastinv_bp* b = NULL;
  fastinv_stokes* s = NULL;
  if (fastinv_deepem_load(NULL, &d) || fastinv_bp_create(NULL, &b) || fastinv_stokes_load(NULL, "hinode", &s)) {
    printf("FAIL: loading: %s\n0 passed, 1 failed\n", fastinv_last_error());
    return 1;
  }
  deepem = d;
  bp = b;
  stokes = s;
  int32_t nc = 0;
  fastinv_stokes_sizes(stokes, &n_wl, &n_nodes, &n_q);
  fastinv_bp_sizes(bp, &n_bins_bp, &nc);
  uint64_t r = 99;
  for (int i = 0; i < 6 * NPIX; ++i) {
    r = r * 6364136223846793005ULL + 1442695040888963407ULL;
    image[i] = (double)(r >> 40) * 1e-4; /* 0 .. 1700 DN/s */
  }
  profiles = malloc(sizeof(double) * (size_t)(NPROF * 4 * n_wl));
  for (int i = 0; i < NPROF * 4 * n_wl; ++i) {
    r = r * 6364136223846793005ULL + 1442695040888963407ULL;
    const int stokes_index = (i / n_wl) % 4;
    profiles[i] = (stokes_index == 0 ? 1.0 : 0.0) + ((double)(r >> 40) / 16777216.0 - 0.5) * 0.02;
  }
  ref_stokes = malloc(sizeof(float) * (size_t)(n_q * NPROF * n_nodes));
  int32_t n_bins = 0;
  if (fastinv_deepem_bins(deepem, &n_bins, NULL) != FASTINV_OK || n_bins != NT) {
    printf("FAIL: the default DeepEM model has %d bins, expected %d\n0 passed, 1 failed\n", (int)n_bins, NT);
    return 1;
  }
  if (!run_deepem(ref_em, ref_tot, ref_logt_err) || !run_bp(ref_bp_em, ref_bp_err) || !run_stokes(ref_stokes)) {
    printf("FAIL: serial run: %s\n0 passed, 1 failed\n", fastinv_last_error());
    return 1;
  }
  pthread_t th[THREADS];
  int mismatches[THREADS] = {0};
  for (int t = 0; t < THREADS; ++t) pthread_create(&th[t], NULL, worker, &mismatches[t]);
  for (int t = 0; t < THREADS; ++t) pthread_join(th[t], NULL);
  for (int t = 0; t < THREADS; ++t) {
    if (mismatches[t]) {
      ++failed;
      printf("FAIL: thread %d: %d results differ from the serial run\n", t, mismatches[t]);
    } else {
      ++passed;
    }
  }
  printf("%d threads x %d calls on shared handles\n", THREADS, DEEPEM_CALLS + BP_CALLS + STOKES_CALLS);
  fastinv_deepem_destroy(d);
  fastinv_bp_destroy(b);
  fastinv_stokes_destroy(s);
  free(profiles);
  free(ref_stokes);
  printf("%d passed, %d failed\n", passed, failed);
  return failed != 0;
}
