#!/usr/bin/env bash
# Trains on every host of a Cloud TPU pod slice: the same launch/train.py on each.
#
#   launch/tpu_pod.sh TPU_NAME ZONE CONFIG WORKDIR [more launch/train.py flags]
#   launch/tpu_pod.sh my-v5e-32 us-west4-a configs/cifar_fans.py gs://my-bucket/cifar_fans
#
# 1. copies this repository to ~/fans_jax on every worker (gcloud ... scp --worker=all),
# 2. installs it with the TPU build of jaxlib (once; SKIP_INSTALL=1 skips it),
# 3. runs launch/train.py on all workers at once (--worker=all); each host calls
#    jax.distributed.initialize() (--distributed=yes), which finds the other hosts
#    through the TPU metadata, and reads only its own slice of every global batch.
# WORKDIR must be visible to every host: a gs:// bucket (Orbax and the metric writers
# write there) or a shared file system. Rerunning the same command resumes. Logs of
# process 0 hold the metrics; TensorBoard: tensorboard --logdir=WORKDIR.
set -euo pipefail

if [[ $# -lt 4 ]]; then
  sed -n '2,15p' "$0"
  exit 2
fi
TPU_NAME=$1; ZONE=$2; CONFIG=$3; WORKDIR=$4; shift 4
EXTRA_FLAGS="$*"
REPO=$(cd "$(dirname "$0")/.." && pwd)
JAX_VERSION=${JAX_VERSION:-0.10.2}

echo "copying ${REPO} to ${TPU_NAME}:~/fans_jax on every worker"
gcloud compute tpus tpu-vm scp --recurse --zone="${ZONE}" --worker=all \
  "${REPO}" "${TPU_NAME}:~/fans_jax_upload"

if [[ -z "${SKIP_INSTALL:-}" ]]; then
  gcloud compute tpus tpu-vm ssh "${TPU_NAME}" --zone="${ZONE}" --worker=all --command="
    set -e
    rm -rf ~/fans_jax && mv ~/fans_jax_upload ~/fans_jax && cd ~/fans_jax
    python3 -m venv ~/fans_venv && source ~/fans_venv/bin/activate
    pip install -q --upgrade pip
    pip install -q -e . 'jax[tpu]==${JAX_VERSION}'
  "
else
  gcloud compute tpus tpu-vm ssh "${TPU_NAME}" --zone="${ZONE}" --worker=all --command="
    rm -rf ~/fans_jax && mv ~/fans_jax_upload ~/fans_jax"
fi

gcloud compute tpus tpu-vm ssh "${TPU_NAME}" --zone="${ZONE}" --worker=all --command="
  set -e
  source ~/fans_venv/bin/activate && cd ~/fans_jax
  python launch/train.py --config=${CONFIG} --workdir=${WORKDIR} --distributed=yes ${EXTRA_FLAGS}
"
