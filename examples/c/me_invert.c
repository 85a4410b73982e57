/* Milne-Eddington inversion from C: Hinode SP-like Fe I 630 nm profiles, Gaussian LSF.
 *
 *   me_invert WAVELENGTH STOKES INIT NPIX LSF_FWHM_MA SIGMA [STRAY] PARAMS_OUT STATUS_OUT [PRECISION]
 *
 * Inputs are raw float64 (native byte order): WAVELENGTH (m) air A, uniform; STOKES (NPIX, 4,
 * m); INIT (NPIX, FASTINV_ME_PARAMETERS) initial guesses. SIGMA is the noise of every point.
 * STRAY, when given ("-" for none), is a (4, m) stray-light profile, and the stray-light
 * fraction is then fitted as well. Writes the fitted parameters (NPIX, FASTINV_ME_PARAMETERS)
 * float64 and the statuses (NPIX) int8; prints the number of pixels with status 0. PRECISION,
 * when given, is the Jacobian kernel's arithmetic: "float32" (the default) or "float64". */
#include <fastinv/fastinv.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int fail(const char* what, fastinv_status s) {
  fprintf(stderr, "%s failed (status %d): %s\n", what, (int)s, fastinv_last_error());
  return 1;
}

/* Reads exactly n float64 values; NULL on failure. */
static double* read_f64(const char* path, size_t n) {
  double* v = malloc(sizeof(double) * (n ? n : 1));
  FILE* f = fopen(path, "rb");
  const int ok = v && f && fread(v, sizeof(double), n, f) == n && fgetc(f) == EOF;
  if (f) fclose(f);
  if (!ok) {
    fprintf(stderr, "cannot read exactly %zu float64 values from %s\n", n, path);
    free(v);
    return NULL;
  }
  return v;
}

static long file_values(const char* path) {
  FILE* f = fopen(path, "rb");
  if (!f || fseek(f, 0, SEEK_END) != 0) return -1;
  const long n = ftell(f) / (long)sizeof(double);
  fclose(f);
  return n;
}

int main(int argc, char** argv) {
  if (argc != 10 && argc != 11) {
    fprintf(stderr,
            "usage: %s WAVELENGTH STOKES INIT NPIX LSF_FWHM_MA SIGMA STRAY|- PARAMS_OUT STATUS_OUT [PRECISION]\n",
            argv[0]);
    return 2;
  }
  fastinv_status s = fastinv_check_api(FASTINV_API_VERSION);
  if (s != FASTINV_OK) return fail("fastinv_check_api", s);
  const long m = file_values(argv[1]);
  const int64_t n = atoll(argv[4]);
  if (m < 2 || n < 1) {
    fprintf(stderr, "need >= 2 wavelengths and NPIX >= 1\n");
    return 2;
  }
  double* wl = read_f64(argv[1], (size_t)m);
  double* stokes = read_f64(argv[2], (size_t)(n * 4 * m));
  double* init = read_f64(argv[3], (size_t)(n * FASTINV_ME_PARAMETERS));
  double* stray = strcmp(argv[7], "-") ? read_f64(argv[7], (size_t)(4 * m)) : NULL;
  double* sigma = malloc(sizeof(double) * 4 * (size_t)m);
  double* params = malloc(sizeof(double) * (size_t)(n * FASTINV_ME_PARAMETERS));
  int8_t* status = malloc((size_t)n);
  if (!wl || !stokes || !init || !sigma || !params || !status || (strcmp(argv[7], "-") && !stray)) return 1;
  for (long k = 0; k < 4 * m; ++k) sigma[k] = atof(argv[6]);

  fastinv_me_options options;
  fastinv_me_options_init(&options); /* Python's defaults: 9 free parameters, 3 restarts */
  options.wavelength = wl;
  options.n_wavelength = m;
  options.lsf_fwhm = atof(argv[5]);
  if (stray) options.free[11] = 1; /* the stray-light fraction */
  if (argc == 11) options.precision = argv[10];
  fastinv_me* me = NULL;
  s = fastinv_me_create(&options, &me);
  if (s != FASTINV_OK) return fail("fastinv_me_create", s);

  fastinv_me_input in;
  fastinv_me_input_init(&in);
  in.n = n;
  in.stokes = stokes;
  in.sigma = sigma;
  in.init = init;
  in.stray = stray;
  fastinv_me_output out;
  fastinv_me_output_init(&out);
  out.parameters = params;
  out.status = status;
  s = fastinv_me_invert(me, &in, &out, 0);
  if (s != FASTINV_OK) return fail("fastinv_me_invert", s);
  fastinv_me_destroy(me);

  int64_t ok = 0;
  for (int64_t i = 0; i < n; ++i) ok += status[i] == 0;
  printf("pixels %lld ok %lld\n", (long long)n, (long long)ok);
  FILE* fp = fopen(argv[8], "wb");
  FILE* fs = fopen(argv[9], "wb");
  if (!fp || !fs ||
      fwrite(params, sizeof(double), (size_t)(n * FASTINV_ME_PARAMETERS), fp) != (size_t)(n * FASTINV_ME_PARAMETERS) ||
      fwrite(status, 1, (size_t)n, fs) != (size_t)n) {
    fprintf(stderr, "cannot write the outputs\n");
    return 1;
  }
  fclose(fp);
  fclose(fs);
  free(wl);
  free(stokes);
  free(init);
  free(stray);
  free(sigma);
  free(params);
  free(status);
  return 0;
}
