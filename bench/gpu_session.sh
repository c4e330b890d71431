#!/usr/bin/env bash
# Every GPU figure of bench/RESULTS.md in one short, capped session on a lent GPU machine (see ../shared/GPU.md):
# the machine has CUDA PyTorch, numba-cuda, JAX and NumPyro; the pure-Python dependencies it lacks travel as wheels in
# gpu_carry/wheels and the MNIST/PTB files in gpu_carry/data (both git-ignored; carry them). Each step has its own
# time cap, so one slow step cannot eat the others; every log lands in $OUT (default runs/gpu_session).
#
#   bash bench/gpu_session.sh            # on the GPU machine, from the repository root
#   ONLY="10" bash bench/gpu_session.sh  # just those steps (the extra ones at the end run only when named)
set -u
OUT=${OUT:-runs/gpu_session}
mkdir -p "$OUT"
DEPS=/tmp/landscape-deps
python -m pip install --quiet --no-index --no-deps --target "$DEPS" gpu_carry/wheels/*.whl > "$OUT/00-setup.log" 2>&1
export PYTHONPATH="$PWD:$DEPS" MCMC_LANDSCAPE_DATA="$PWD/gpu_carry/data" PYTHONUNBUFFERED=1
LANDSCAPE="python -m landscape_cli"

step() {  # step NAME CAP_SECONDS COMMAND...: run it under its cap, log to $OUT/NAME.log, note status and wall time
    local name=$1 cap=$2
    shift 2
    if [ -n "${ONLY:-}" ] && [[ " $ONLY " != *" ${name%%-*} "* ]]; then return; fi  # ONLY="10 50": just those steps
    local t0=$SECONDS
    echo "\$ $*" > "$OUT/$name.log"
    timeout --signal=INT --kill-after=10 "$cap" "$@" >> "$OUT/$name.log" 2>&1
    local rc=$?
    echo "$name rc=$rc wall=$((SECONDS - t0))s cap=${cap}s" | tee -a "$OUT/steps.txt"
}

extra() {  # extra NAME CAP COMMAND...: a step outside the default session (too long for one), run only when ONLY names it
    if [ -z "${ONLY:-}" ]; then return; fi
    step "$@"
}

{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv; python -c "import torch, numba, numpy, sys; \
print(sys.version.split()[0], 'torch', torch.__version__, 'numba', numba.__version__, 'numpy', numpy.__version__, torch.cuda.get_device_name())"; \
nproc; } > "$OUT/01-machine.log" 2>&1

# issue 14 item 1: fused trajectory throughput up to 2^20 chains, and ESS of U per second against NumPyro's NUTS
step 10-hmc-numpyro 220 python bench/hmc.py --device cuda --numpyro-only
# issue 14 item 2: the store keeps pace at 65,536 chains (the --verbose split of the wall time)
step 20-store-65536 40 $LANDSCAPE -v sample --sampler hmc --device cuda --chains 65536 --draws 100 --warmup 100 \
    --compression none --out /tmp/big.h5 --force
# issue 14 item 5: the convnet's energy against plain PyTorch forward+backward on the same images
step 30-convnet-energy 60 python bench/hmc.py --model mnist-convnet --device cuda --model-chains 64 --n-train 1000 \
    --chain-chunk 64 --example-chunk 256
# issue 13: bead training against the plain training loop, the paper's models
step 40-dss-mnist-throughput 45 python bench/dss_scale.py --task mnist --device cuda --throughput-only \
    --out "$OUT/dss_mnist"
step 41-dss-ptb-throughput 45 python bench/dss_scale.py --task ptb --device cuda --throughput-only --out "$OUT/dss_ptb"
# issue 14 item 4 on a GPU: HMC on the report's convnet (p = 206,954), as far as the cap allows (the store keeps
# every committed block; the log's rate gives the time of the whole 20,000 draws)
step 50-convnet-hmc 150 $LANDSCAPE -v sample --model mnist-convnet --width 0.25 --data mnist --n-train 1000 \
    --sampler hmc --leapfrog 4 --chains 20 --warmup 100 --draws 1000 --device cuda --out /tmp/convnet.h5 --force
[ -f /tmp/convnet.h5 ] && python - > "$OUT/51-convnet-file.log" 2>&1 <<'EOF'
import os
from mcmc_landscape.storage.store import ChainReader
with ChainReader("/tmp/convnet.h5") as r:
    print("committed draws per chain", r.committed_draws, "file bytes", os.path.getsize("/tmp/convnet.h5"))
EOF
# figures still unmeasured on a GPU, each alone in a session of its own: ONLY="60" (census), ONLY="70" / "71" (DSS)
extra 60-census-gpu 420 python bench/census.py --device cuda --out "$OUT/census"
extra 70-dss-mnist-quick 540 python bench/dss_scale.py --task mnist --device cuda --quick --out "$OUT/dss_mnist_quick"
extra 71-dss-ptb-quick 300 python bench/dss_scale.py --task ptb --device cuda --quick --out "$OUT/dss_ptb_quick"
echo "done" >> "$OUT/steps.txt"
cat "$OUT/steps.txt"
