#!/usr/bin/env bash
# GPU checks for a machine WITHOUT TensorFlow (the lent GPU machines: Python 3.12, CUDA torch
# and jax, no internet). Keras and its two missing pure-Python deps travel as wheels in .whl/:
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 \
#       --implementation cp --platform manylinux_2_28_x86_64 -d .whl keras==3.15.1 namex optree
# Writes JSON and Markdown results under $OUT (default gpu-out/).
set -u
OUT="${OUT:-gpu-out}"
mkdir -p "$OUT"
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH="/tmp/site:$PWD" PYTHONUNBUFFERED=1 XLA_PYTHON_CLIENT_PREALLOCATE=false
nvidia-smi -L
python3 -c "import torch, jax; print('torch', torch.__version__, 'jax', jax.__version__)"

# 1. Parity tests with the models on the GPU. TF32 off so 1e-4 tolerances mean something.
for b in torch jax; do
    echo "=== tests, KERAS_BACKEND=$b on GPU"
    NVIDIA_TF32_OVERRIDE=0 JAX_DEFAULT_MATMUL_PRECISION=highest KERAS_BACKEND=$b \
        timeout 110 python3 -m pytest -q -p no:cacheprovider -m "not slow and not backend_agnostic" \
        tests/models/test_rrdbnet.py tests/models/test_discriminators.py tests/trainer/test_trainer.py 2>&1 | tail -8
done

# 2. PBaSR train step on GPU: RRDBNet 23 blocks, batch 16, 256x256 HR (issue 6 benchmark).
for b in torch jax; do
    echo "=== gpu_trainer, KERAS_BACKEND=$b"
    KERAS_BACKEND=$b timeout 150 python3 benchmarks/gpu_trainer.py --steps 10 \
        > "$OUT/gpu_trainer_$b.json" 2> "$OUT/gpu_trainer_$b.err"
    tail -4 "$OUT/gpu_trainer_$b.json"; tail -3 "$OUT/gpu_trainer_$b.err"
done

# 3. compare-backends on the GPU (issue 12 README table).
timeout 150 python3 -m keras_pbasr.cli compare-backends --device gpu --backends torch,jax \
    --arch rrdbnet --size 128x128 --train-steps 5 --repeats 10 --out "$OUT/compare" 2>&1 | tail -12
