#!/usr/bin/env bash
# Everything measured on a CUDA GPU machine, in one sitting, written to DIR (default benchmarks/results/gpu):
#   <machine>-<date>.json/.md    benchmarks/run.py: all four stages on this machine (stage 3 on CPU and GPU,
#                                stage 4 as CUDA graph, without graph, one kernel per step, whole run in one launch)
#   (the stage folders' results_gpu*.json files are those GPU runs: run.py --stage-files DIR writes them)
#   gpu_profile.json             kernels launched per step (stage 3, stage 4) and kernel micro-benchmarks
#   scaling_gpu.json             step time against n_embd, stages 3 and 4 on the GPU
#   gpu.log                      everything printed
# Usage: bash benchmarks/run_gpu.sh [DIR]
# The tests on compiled kernels: TRITON_INTERPRET=0 python -m pytest tests/test_stage4.py tests/test_fused.py
set -u
cd "$(dirname "$0")/.."
DIR=${1:-benchmarks/results/gpu}
mkdir -p "$DIR"
export PYTHONUNBUFFERED=1
PY=${PYTHON:-python3}
{
  nvidia-smi -L
  $PY -c "import torch, triton, numpy; print('torch', torch.__version__, 'cuda', torch.version.cuda, 'triton', triton.__version__, 'numpy', numpy.__version__)"
  echo "== launches per step and kernel micro-benchmarks"
  timeout 120 $PY benchmarks/gpu_profile.py --out "$DIR/gpu_profile.json"
  echo "== width sweep"
  timeout 150 $PY benchmarks/scaling.py --stages 3_pytorch 4_triton --widths 16 32 64 128 256 --steps 200 \
    --stage-args "3_pytorch=--device cuda" --out "$DIR/scaling_gpu.json"
  echo "== all stages, one sitting"
  timeout 500 $PY benchmarks/run.py --out-dir "$DIR"
} 2>&1 | tee "$DIR/gpu.log"
