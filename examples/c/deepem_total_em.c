/* DeepEM from C: load the shipped model, invert a six-channel AIA image, print the total EM.
 *
 *   deepem_total_em IMAGE NPIX [TOTAL_EM_OUT]
 *
 * IMAGE: raw float64 (native byte order), shape (6, NPIX) in DN/s, channels 94, 131, 171,
 * 193, 211, 335 A. Prints the number of pixels, of pixels with status 0 and the image's summed
 * total EM; with TOTAL_EM_OUT also writes each pixel's total EM (cm^-5, float64). */
#include <fastinv/fastinv.h>
#include <stdio.h>
#include <stdlib.h>

static int fail(const char* what, fastinv_status s) {
  fprintf(stderr, "%s failed (status %d): %s\n", what, (int)s, fastinv_last_error());
  return 1;
}

int main(int argc, char** argv) {
  if (argc < 3) {
    fprintf(stderr, "usage: %s IMAGE NPIX [TOTAL_EM_OUT]\n", argv[0]);
    return 2;
  }
  const int64_t npix = atoll(argv[2]);
  fastinv_status s = fastinv_check_api(FASTINV_API_VERSION);
  if (s != FASTINV_OK) return fail("fastinv_check_api", s);
  if (npix <= 0) {
    fprintf(stderr, "NPIX must be > 0\n");
    return 2;
  }

  double* image = malloc(sizeof(double) * 6 * (size_t)npix);
  FILE* f = fopen(argv[1], "rb");
  if (!image || !f || fread(image, sizeof(double), 6 * (size_t)npix, f) != 6 * (size_t)npix) {
    fprintf(stderr, "cannot read %lld x 6 float64 values from %s\n", (long long)npix, argv[1]);
    return 1;
  }
  fclose(f);

  fastinv_deepem* deepem = NULL;
  s = fastinv_deepem_load(NULL, &deepem); /* NULL: the default shipped model (deepem21) */
  if (s != FASTINV_OK) return fail("fastinv_deepem_load", s);
  int32_t n_bins = 0;
  fastinv_deepem_bins(deepem, &n_bins, NULL);

  /* Caller-owned outputs, reused frame after frame in a real pipeline. */
  fastinv_deepem_output out;
  fastinv_deepem_output_init(&out);
  out.em = malloc(sizeof(float) * (size_t)n_bins * (size_t)npix);
  out.model = malloc(sizeof(float) * 6 * (size_t)npix);
  out.status = malloc((size_t)npix);
  out.chi2 = malloc(sizeof(double) * (size_t)npix);
  out.total_em = malloc(sizeof(float) * (size_t)npix);
  const fastinv_aia_data y = {image, FASTINV_FLOAT64, npix, npix, 1}; /* (6, npix), C order */
  s = fastinv_deepem_invert(deepem, &y, NULL, &out, 0);
  if (s != FASTINV_OK) return fail("fastinv_deepem_invert", s);

  /* total EM per pixel in cm^-5: the sum over the bins, as Python's BPResult.total_em */
  double* total = malloc(sizeof(double) * (size_t)npix);
  double sum = 0.0;
  int64_t ok = 0;
  for (int64_t p = 0; p < npix; ++p) {
    float t = 0.0f;
    for (int32_t k = 0; k < n_bins; ++k) t += out.em[(int64_t)k * npix + p];
    total[p] = t;
    sum += t;
    ok += out.status[p] == 0;
  }
  printf("fastinv %s DeepEM: %lld pixels, %lld ok, total EM summed %.6e cm^-5\n", fastinv_version(), (long long)npix,
         (long long)ok, sum);
  if (argc > 3) {
    FILE* o = fopen(argv[3], "wb");
    if (!o || fwrite(total, sizeof(double), (size_t)npix, o) != (size_t)npix) {
      fprintf(stderr, "cannot write %s\n", argv[3]);
      return 1;
    }
    fclose(o);
  }

  fastinv_deepem_destroy(deepem);
  free(total);
  free(out.em);
  free(out.model);
  free(out.status);
  free(out.chi2);
  free(out.total_em);
  free(image);
  return 0;
}
