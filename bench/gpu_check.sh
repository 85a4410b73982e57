#!/usr/bin/env bash
# Everything a GPU session must run for issue 6, in order, from the repository root:
#   1. build with the CUDA backend for this GPU's architecture too (FASTINV_CUDA=ON);
#   2. the test suite's GPU cases (tests/test_cuda.py) plus the CPU parity suite;
#   3. compute-sanitizer memcheck and racecheck over the GPU cases (a small, fixed seed
#      subset: the sanitizers slow kernels down 10-100x);
#   4. the benchmarks (bench/bench_cuda.py), which write bench/results/cuda_*.{json,md}.
# Usage: bench/gpu_check.sh [build|test|sanitize|bench|all]   (default all)
# Logs go to $OUT (the device tool's output folder) when set, else to /tmp/fastinv_gpu_check.
set -euo pipefail
cd "$(dirname "$0")/.."
LOG="${OUT:-${TMPDIR:-/tmp}/fastinv_gpu_check}"
mkdir -p "$LOG"
what="${1:-all}"
export FASTINV_TEST_SEED="${FASTINV_TEST_SEED:-12345}"
PY="${PYTHON:-python3}"

step_build() {
  nvidia-smi > "$LOG/nvidia-smi.txt" 2>&1 || true
  # --no-deps: the device machines have no package index (numpy, torch, scikit-build-core and
  # pybind11 are in their image; astropy is not needed by the CUDA tests or benchmarks).
  FASTINV_CUDA=ON CMAKE_BUILD_PARALLEL_LEVEL="$(nproc)" "$PY" -m pip install --no-build-isolation --no-deps -q . \
    2>&1 | tee "$LOG/build.log"
  "$PY" -c "import fastinv, json; print(json.dumps(fastinv.info())); print(fastinv._core.cuda_device_info(0))" \
    | tee "$LOG/info.txt"
}

step_test() {
  "$PY" -m pytest -q -ra tests/test_cuda.py 2>&1 | tee "$LOG/test_cuda.log"
  "$PY" -m pytest -q tests/test_parity.py 2>&1 | tail -3 | tee "$LOG/test_parity.log"
}

step_sanitize() {
  # (compute-sanitizer was seen working on this workplace's Firecracker machines, e.g. the
  # H100 kind, and refusing the device under gVisor: check sanitize.log.)
  command -v compute-sanitizer >/dev/null || { echo "compute-sanitizer not found" | tee "$LOG/sanitize.log"; return 1; }
  # A subset that reaches every kernel: fused (3 precisions), per-op (conv, pools, concat,
  # flatten, add, affine, every activation through the random nets), gather/scatter, streams.
  # FASTINV_CUDA_SANITIZE=1 makes tests/test_cuda.py use fewer random nets and smaller frames.
  local sel='test_gpu_shipped_deepem or test_gpu_muisca or test_gpu_device_arrays or test_gpu_random_architectures'
  for tool in memcheck racecheck; do
    FASTINV_CUDA_SANITIZE=1 compute-sanitizer --tool "$tool" --target-processes all --error-exitcode 99 \
      --print-limit 50 "$PY" -m pytest -q -x tests/test_cuda.py -k "$sel" -p no:cacheprovider \
      > "$LOG/sanitize_$tool.log" 2>&1 && echo "$tool: clean" | tee -a "$LOG/sanitize.log" \
      || { echo "$tool: FAILED (rc $?), see sanitize_$tool.log" | tee -a "$LOG/sanitize.log"; tail -40 "$LOG/sanitize_$tool.log"; }
  done
}

step_bench() {
  "$PY" bench/bench_cuda.py 2>&1 | tee "$LOG/bench.log"
  cp bench/results/cuda_* "$LOG/" 2>/dev/null || true
}

case "$what" in
  build) step_build ;;
  test) step_test ;;
  sanitize) step_sanitize ;;
  bench) step_bench ;;
  all) step_build; step_test; step_sanitize; step_bench ;;
  *) echo "usage: $0 [build|test|sanitize|bench|all]"; exit 2 ;;
esac
