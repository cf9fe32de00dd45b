#!/bin/bash
# One short GPU lease (one H100/H200, one `run` call of at most 10 minutes): the GPU
# benchmark first (its JSON is rewritten after every section), then the `:gpu` study
# until the time is up (SIGTERM stops it cleanly; the report is aggregated from what
# finished). Everything lands in $OUT; the study's report as one .tgz, without checkpoints.
#
# Staging, on the CPU machine, once per session (all ignored by git; see
# benchmarks/README.md, "A GPU lease"):
#   .whl/        wheels the device image lacks (grain, array-record, portpicker,
#                ml-collections, tensorboardX) for CPython 3.12
#   .gpu/data/   cifar10_train10k_uint8.npz, resnet20_cifar10_akamaster.npz and SHA256SUMS from
#                ../shared/data (29.5 MB; ../shared does not travel)
# The converted Inception weights are 87 MB, more than the 64 MiB a call may carry, so on
# the device the study's `auto` metrics are the spectral ones and FD-ResNet20, not FID/KID.
#
#   run(command="bash benchmarks/gpu_lease.sh 540", carry=[".whl", ".gpu/data"], timeout_s=600)
#
# Argument: the seconds this command may take in all (default 540).
set -u
TOTAL=${1:-540}
START=$(date +%s)
OUT=${OUT:-workdirs/gpu_out}
mkdir -p "$OUT"
elapsed() { echo $(( $(date +%s) - START )); }

if ls .whl/*.whl > /dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target workdirs/gpu_site .whl/*.whl || exit 1
  export PYTHONPATH="$PWD/workdirs/gpu_site:$PWD"
else
  export PYTHONPATH="$PWD"
fi
export PYTHONUNBUFFERED=1 TF_CPP_MIN_LOG_LEVEL=2
[ -d .gpu/data ] && export FANS_DATA_DIR="$PWD/.gpu/data"

{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>&1
  python3 -c "import jax, flax, optax; print('jax', jax.__version__, 'flax', flax.__version__,
'optax', optax.__version__, jax.devices())" 2>&1; } | tee "$OUT/versions.txt"

python3 benchmarks/bench_gpu.py --budget_s=200 --output="$OUT/gpu.json" 2>&1 \
  | tee "$OUT/bench_gpu.log"
echo "bench_gpu done at $(elapsed) s"

LEFT=$(( TOTAL - $(elapsed) - 60 ))  # 60 s for the aggregation and the tar
if [ "$LEFT" -gt 120 ]; then
  timeout -s TERM "$LEFT" python3 launch/study.py --config=configs/study.py:gpu \
    --outdir=workdirs/study_gpu > "$OUT/study.log" 2>&1
  echo "study stopped or finished at $(elapsed) s (exit $?)" | tee -a "$OUT/study.log"
  python3 launch/study.py --config=configs/study.py:gpu --outdir=workdirs/study_gpu \
    --aggregate_only >> "$OUT/study.log" 2>&1
  tar czf "$OUT/study_gpu.tgz" --exclude=checkpoints --exclude='*.npz' -C workdirs study_gpu
else
  echo "no time left for the study ($LEFT s)" | tee "$OUT/study.log"
fi
echo "done at $(elapsed) s"
