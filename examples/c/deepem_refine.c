/* DeepEM from C with refinement and error bars (API level 3): load a DeepEM model, invert a
 * six-channel AIA image with the AIA error model, optionally refine each pixel's EM so that it
 * fits the data, and write every product.
 *
 *   deepem_refine MODEL PRECISION IMAGE NPIX EXPTIME REFINE OUTDIR
 *
 * MODEL: "-" for the default shipped model, a shipped name ("deepem18", "deepem21") or a file;
 * PRECISION: "fp32" or "bf16"; IMAGE: raw float64 (native byte order), shape (6, NPIX) in DN/s,
 * channels 94, 131, 171, 193, 211, 335 A; EXPTIME: seconds (all channels); REFINE: 0 or 1.
 * Writes OUTDIR/{em,model,total_em,em_err,logt_err,total_em_err}.f32, {chi2,tolfac}.f64,
 * status.i8 and iterations.i32 (raw, C order, npix innermost) and prints
 * "bins B pixels N ok K". Exits 3 when the library reports FASTINV_UNSUPPORTED. */
#include <fastinv/fastinv.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int fail(const char* what, fastinv_status s) {
  fprintf(stderr, "%s failed (status %d): %s\n", what, (int)s, fastinv_last_error());
  return s == FASTINV_UNSUPPORTED ? 3 : 1;
}

static int save(const char* dir, const char* name, const void* data, size_t bytes) {
  char path[4096];
  snprintf(path, sizeof path, "%s/%s", dir, name);
  FILE* f = fopen(path, "wb");
  const int ok = f && fwrite(data, 1, bytes, f) == bytes;
  if (f) fclose(f);
  if (!ok) fprintf(stderr, "cannot write %s\n", path);
  return ok;
}

int main(int argc, char** argv) {
  if (argc != 8) {
    fprintf(stderr, "usage: %s MODEL PRECISION IMAGE NPIX EXPTIME REFINE OUTDIR\n", argv[0]);
    return 2;
  }
  fastinv_status s = fastinv_check_api(FASTINV_API_VERSION);
  if (s != FASTINV_OK) return fail("fastinv_check_api", s);
  const size_t npix = (size_t)atoll(argv[4]);
  const char* outdir = argv[7];
  if (npix == 0) {
    fprintf(stderr, "NPIX must be > 0\n");
    return 2;
  }
  double* image = malloc(sizeof(double) * 6 * npix);
  FILE* f = fopen(argv[3], "rb");
  if (!image || !f || fread(image, sizeof(double), 6 * npix, f) != 6 * npix) {
    fprintf(stderr, "cannot read %zu x 6 float64 values from %s\n", npix, argv[3]);
    return 1;
  }
  fclose(f);

  fastinv_load_options load;
  fastinv_load_options_init(&load);
  load.precision = argv[2];
  fastinv_deepem* deepem = NULL;
  s = fastinv_deepem_load_with(strcmp(argv[1], "-") ? argv[1] : NULL, &load, &deepem);
  if (s != FASTINV_OK) return fail("fastinv_deepem_load_with", s);
  int32_t n_bins = 0;
  fastinv_deepem_bins(deepem, &n_bins, NULL);
  const size_t nb = (size_t)n_bins;

  fastinv_dem_errors err; /* BP's sigma: the AIA error model */
  fastinv_dem_errors_init(&err);
  err.mode = FASTINV_ERRORS_AIA;
  for (int c = 0; c < 6; ++c) err.exptime[c] = atof(argv[5]);

  fastinv_deepem_output out;
  fastinv_deepem_output_init(&out);
  out.em = malloc(sizeof(float) * nb * npix);
  out.model = malloc(sizeof(float) * 6 * npix);
  out.status = malloc(npix);
  out.chi2 = malloc(sizeof(double) * npix);
  out.total_em = malloc(sizeof(float) * npix);
  out.refine = atoi(argv[6]);
  out.tolfac = malloc(sizeof(double) * npix);
  out.iterations = malloc(sizeof(int32_t) * npix);
  out.em_err = malloc(sizeof(float) * nb * npix);
  out.logt_err = malloc(sizeof(float) * npix);
  out.total_em_err = malloc(sizeof(float) * npix);
  const fastinv_aia_data y = {image, FASTINV_FLOAT64, (int64_t)npix, (int64_t)npix, 1};
  s = fastinv_deepem_invert(deepem, &y, &err, &out, 0);
  if (s != FASTINV_OK) return fail("fastinv_deepem_invert", s);

  size_t ok = 0;
  for (size_t p = 0; p < npix; ++p) ok += out.status[p] == 0;
  printf("bins %d pixels %zu ok %zu\n", (int)n_bins, npix, ok);
  const int written = save(outdir, "em.f32", out.em, sizeof(float) * nb * npix) &&
                      save(outdir, "model.f32", out.model, sizeof(float) * 6 * npix) &&
                      save(outdir, "status.i8", out.status, npix) &&
                      save(outdir, "chi2.f64", out.chi2, sizeof(double) * npix) &&
                      save(outdir, "total_em.f32", out.total_em, sizeof(float) * npix) &&
                      save(outdir, "tolfac.f64", out.tolfac, sizeof(double) * npix) &&
                      save(outdir, "iterations.i32", out.iterations, sizeof(int32_t) * npix) &&
                      save(outdir, "em_err.f32", out.em_err, sizeof(float) * nb * npix) &&
                      save(outdir, "logt_err.f32", out.logt_err, sizeof(float) * npix) &&
                      save(outdir, "total_em_err.f32", out.total_em_err, sizeof(float) * npix);

  fastinv_deepem_destroy(deepem);
  free(out.em);
  free(out.model);
  free(out.status);
  free(out.chi2);
  free(out.total_em);
  free(out.tolfac);
  free(out.iterations);
  free(out.em_err);
  free(out.logt_err);
  free(out.total_em_err);
  free(image);
  return written ? 0 : 1;
}
