#!/usr/bin/env bash
# Real mixed-precision check on a CUDA machine: 16-mixed (gradient scaler, unscaled per-loss
# statistics), bf16-mixed, and 16-mixed with fp16 PDE derivatives; then the step-cost
# benchmark on the GPU. Usage: bash benchmarks/gpu_check.sh   (from the repository root)
set -euo pipefail
cd "$(dirname "$0")/.."
python -c "import lightning_pinn" 2>/dev/null || python -m pip install --quiet -e .
export WANDB_MODE=offline
python benchmarks/gpu_check.py
python benchmarks/step_cost.py --rounds 3 --steps 100 --strategies none reweight adapters surgery --accelerator cuda
python benchmarks/gpu_sync.py
