#!/usr/bin/env bash
# The GPU check of a 15-minute device window (issue 19; procedure in docs/cuda.md): one
# command that ends within ~570 s, from the repository root on the GPU machine.
#
#   bench/gpu_check.sh              all phases, in order
#   bench/gpu_check.sh smoke        one phase again (several may be named)
#
# Phases, each under its own `timeout` (seconds, GPU_CHECK_T_<PHASE> overrides), each exit
# code recorded, a failed phase never stopping the next; a phase is skipped when less than
# its minimum is left of the overall budget (GPU_CHECK_BUDGET, 570 s):
#   build      pip install for sm_90 only (CMAKE_CUDA_ARCHITECTURES=90, -Xptxas -v in the log)
#   smoke      bench/gpu_smoke.py: device vs same-precision emulation and vs the CPU engine
#   tests      tests/test_cuda.py -k gpu, per-test timeout (pytest-timeout where installed)
#   memcheck, racecheck, synccheck
#              compute-sanitizer on bench/gpu_smoke.py --quick (no torch CUDA calls)
#   bench      bench/bench_cuda.py without torch.compile, DeepEM 4096^2
#   bench_cnn  the same for the CNN cases, if time remains
# Every phase runs with FASTINV_CUDA_SYNC=1 except the benchmarks (it would time the syncs).
#
# Results: at most 6 files under $OUT (else /tmp/fastinv_gpu_check): summary.txt (one
# screen: each phase's exit code, seconds and last lines), logs.tar.gz (every log),
# bench_deepem.{json,md}, bench_cnn.{json,md}.
#
# GPU_CHECK_DRY=1: the dry run of CI (tests/test_gpu_check.py) on a machine without a GPU:
# no nvcc build (the installed fastinv is used), the CPU model stands in for the device in
# the smoke driver, the sanitizer phases run the quick driver without compute-sanitizer,
# and the benchmarks skip as they do without a device. Every phase's plumbing runs.
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
OUTDIR="${OUT:-${TMPDIR:-/tmp}/fastinv_gpu_check}"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/fastinv_gpu_check_work.XXXXXX")"
LOGS="$WORK/logs"
mkdir -p "$OUTDIR" "$LOGS"
PY="${PYTHON:-python3}"
DRY="${GPU_CHECK_DRY:-0}"
BUDGET="${GPU_CHECK_BUDGET:-570}"
START=$SECONDS
export PYTHONUNBUFFERED=1 FASTINV_TEST_SEED="${FASTINV_TEST_SEED:-12345}"
ALL_PHASES="build smoke tests memcheck racecheck synccheck bench bench_cnn"

# seconds each phase may take, and the least worth starting it with
declare -A LIMIT=([build]=140 [smoke]=95 [tests]=150 [memcheck]=40 [racecheck]=45 [synccheck]=30 [bench]=90 [bench_cnn]=120)
declare -A MIN=([build]=60 [smoke]=20 [tests]=40 [memcheck]=20 [racecheck]=20 [synccheck]=15 [bench]=45 [bench_cnn]=60)
declare -A RC SECS

phase_build() {
  nvidia-smi || true
  if [ "$DRY" = 1 ]; then
    echo "dry run: no nvcc build, the installed fastinv is used"
  else
    FASTINV_CUDA=ON CMAKE_BUILD_PARALLEL_LEVEL="$(nproc)" CUDAFLAGS="-Xptxas -v" \
      "$PY" -m pip install --no-build-isolation --no-deps -v . \
      -Ccmake.define.CMAKE_CUDA_ARCHITECTURES=90 -Cbuild-dir="$WORK/build" || return $?
  fi
  "$PY" -c "import fastinv; print(fastinv.__file__); print(fastinv.info())" || return $?
  [ "$DRY" = 1 ] && return 0
  "$PY" -c "import fastinv; print(fastinv._core.cuda_device_info(0))" || return $?
  # the tensor-core variants must hold HMMA instructions in their SASS
  local so
  so=$("$PY" -c "import fastinv._core as c; print(c.__file__)") &&
    echo "SASS: $(cuobjdump -sass "$so" 2>/dev/null | grep -c HMMA) HMMA and" \
      "$(cuobjdump -sass "$so" 2>/dev/null | grep -c LDSM) LDSM (ldmatrix and pipeline variants) instructions in $so"
}

need_device() {  # a GPU run whose tests all skip must not read as a pass
  [ "$DRY" = 1 ] || "$PY" -c "import fastinv, sys; sys.exit(fastinv.info()['cuda_devices'] == 0)" ||
    { echo "no usable CUDA device: fastinv.info()['cuda_devices'] == 0 (see the build log)"; return 3; }
}

phase_smoke() {
  need_device || return $?
  if [ "$DRY" = 1 ]; then "$PY" bench/gpu_smoke.py --device cpu --tmp "$WORK"; else "$PY" bench/gpu_smoke.py --tmp "$WORK"; fi
}

phase_tests() {
  need_device || return $?
  local per_test=()
  "$PY" -c "import pytest_timeout" 2>/dev/null && per_test=(--timeout 60)
  "$PY" -m pytest -q -ra -p no:cacheprovider "${per_test[@]}" tests/test_cuda.py -k gpu
}

sanitize() {  # compute-sanitizer --tool $1 on the quick driver (no torch CUDA calls)
  if [ "$DRY" = 1 ]; then
    echo "dry run: the quick driver without compute-sanitizer --tool $1"
    "$PY" bench/gpu_smoke.py --device cpu --quick --tmp "$WORK"
    return $?
  fi
  command -v compute-sanitizer >/dev/null || { echo "compute-sanitizer not found"; return 127; }
  # two blocks, so each loops over several tiles (the persistent kernel's tile loop is checked)
  FASTINV_CUDA_FUSED_GRID=2 compute-sanitizer --tool "$1" --error-exitcode 99 --print-limit 50 \
    "$PY" bench/gpu_smoke.py --quick --tmp "$WORK"
}
phase_memcheck() { sanitize memcheck; }
phase_racecheck() { sanitize racecheck; }
phase_synccheck() { sanitize synccheck; }

bench() {  # $1: result name, $2: FASTINV_BENCH_CASES
  rm -rf "$WORK/bench_$1"
  FASTINV_CUDA_SYNC=0 FASTINV_BENCH_NO_COMPILE=1 FASTINV_BENCH_CASES="$2" FASTINV_BENCH_RESULTS="$WORK/bench_$1" \
    FASTINV_BENCH_QUICK="${FASTINV_BENCH_QUICK:-0}" "$PY" bench/bench_cuda.py
  local rc=$?
  for f in "$WORK/bench_$1"/cuda_*.json "$WORK/bench_$1"/cuda_*.md; do
    [ -e "$f" ] && cp "$f" "$OUTDIR/bench_$1.${f##*.}"
  done
  [ -e "$OUTDIR/bench_$1.json" ] || echo "no benchmark results (bench_cuda.py skips without a usable CUDA device)"
  return $rc
}
phase_bench() { bench deepem deepem; }
phase_bench_cnn() { bench cnn visp,hinode; }

run_phase() {
  local name=$1 left=$((BUDGET - (SECONDS - START)))
  local limit=${LIMIT[$name]}
  local var="GPU_CHECK_T_${name^^}"
  limit=${!var:-$limit}
  if [ "$left" -lt "${MIN[$name]}" ] && [ -z "${!var:-}" ]; then
    RC[$name]=skipped
    SECS[$name]=0
    echo "$name: skipped, ${left} s left of the ${BUDGET} s budget" >"$LOGS/$name.log"
    return
  fi
  [ "$limit" -gt "$left" ] && [ -z "${!var:-}" ] && limit=$left
  local t0=$SECONDS
  echo "== $name (limit ${limit} s, $(date -u +%H:%M:%S))" | tee "$LOGS/$name.log"
  # FASTINV_CUDA_SYNC=1: a kernel fault is reported at its launch, named
  FASTINV_CUDA_SYNC=1 timeout --kill-after=5 "$limit" bash -c "$(declare -f)"'; '"phase_$name" \
    >>"$LOGS/$name.log" 2>&1
  RC[$name]=$?
  SECS[$name]=$((SECONDS - t0))
  [ "${RC[$name]}" = 124 ] && echo "TIMEOUT after ${limit} s" >>"$LOGS/$name.log"
  echo "$name: rc ${RC[$name]}, ${SECS[$name]} s"
}

key_lines() {  # $1 phase, $2 its log: what the summary shows of it
  case $1 in
    build) grep -E 'error|Successfully installed|[1-9][0-9]* bytes spill|dry run|cuda_devices|^SASS' "$2" | tail -n 5 ;;
    smoke) grep -E '^FAIL|^SMOKE:' "$2" | tail -n 6 ;;
    tests) grep -E '^FAILED|^ERROR|passed|failed' "$2" | tail -n 6 ;;
    bench*) grep -E '^\| .*fastinv|no benchmark|^FAILED|Error' "$2" | tail -n 6 ;;
    *) grep -E 'ERROR SUMMARY|^FAIL|^SMOKE:|dry run|not found' "$2" | tail -n 4 ;;
  esac
  grep -E 'TIMEOUT|skipped, [0-9]+ s left' "$2"
}

summary() {
  {
    echo "fastinv GPU check $(date -u +%Y-%m-%dT%H:%M:%SZ) $(git rev-parse --short HEAD 2>/dev/null)" \
      "$([ "$DRY" = 1 ] && echo '(DRY RUN: CPU stand-in, no GPU)')"
    nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null | head -1
    echo "total $((SECONDS - START)) s of a ${BUDGET} s budget"
    for name in "$@"; do
      printf '%-10s rc %-8s %4s s\n' "$name" "${RC[$name]}" "${SECS[$name]}"
    done
    for name in "$@"; do
      echo "--- $name"
      key_lines "$name" "$LOGS/$name.log" | cut -c1-160
    done
  } >"$OUTDIR/summary.txt"
  cat "$OUTDIR/summary.txt"
}

phases=("$@")
[ ${#phases[@]} = 0 ] || [ "${phases[0]}" = all ] && phases=($ALL_PHASES)
for name in "${phases[@]}"; do
  case " $ALL_PHASES " in
    *" $name "*) ;;
    *) echo "usage: $0 [all | phase...]; phases: $ALL_PHASES" >&2; exit 2 ;;
  esac
done
export PY DRY WORK OUTDIR ROOT
for name in "${phases[@]}"; do run_phase "$name"; done
summary "${phases[@]}"
tar -C "$WORK" -czf "$OUTDIR/logs.tar.gz" logs
rm -rf "$WORK"
status=0
for name in "${phases[@]}"; do [ "${RC[$name]}" = 0 ] || status=1; done
exit $status
