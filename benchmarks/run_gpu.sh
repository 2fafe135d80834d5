#!/usr/bin/env bash
# Everything measured on a CUDA GPU, in one sitting on one device. Writes to ${OUT:-benchmarks/results/gpu}:
#   results_gpu_3_pytorch.json   stage 3, eager PyTorch on the GPU (float32)
#   results_gpu_4_triton.json    stage 4, our kernels, whole step replayed as one CUDA graph
#   results_gpu_4_triton_no_graph.json   stage 4, every kernel launched from Python
#   results_fused_gpu.json       stage 4, the whole step as one kernel, one launch per step
#   results_fused_run_gpu.json   stage 4, the whole 1000-step run as one launch
#   gpu_profile.json             kernels launched per step (stage 3, stage 4), kernel micro-benchmarks
#   scaling_gpu.json             step time against n_embd, stages 3 and 4
#   gpu.log                      the stage-4 tests on compiled kernels, and every run's output
# Usage: MICROGPT_DATA=path/to/names.txt bash benchmarks/run_gpu.sh
set -u
cd "$(dirname "$0")/.."
OUT=${OUT:-benchmarks/results/gpu}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
PY=${PYTHON:-python3}
{
  nvidia-smi -L
  $PY -c "import torch, triton; print('torch', torch.__version__, 'cuda', torch.version.cuda, 'triton', triton.__version__)"
  echo "== stage-4 tests on compiled kernels"
  TRITON_INTERPRET=0 timeout 300 $PY -m pytest tests/test_stage4.py tests/test_fused.py -q -p no:cacheprovider 2>&1 | tail -25
  echo "== stage 3 eager"
  timeout 120 $PY 3_pytorch/main.py --device cuda --out "$OUT/results_gpu_3_pytorch.json" | tail -3
  echo "== stage 4, CUDA graph"
  timeout 120 $PY 4_triton/main.py --out "$OUT/results_gpu_4_triton.json" | tail -3
  echo "== stage 4, no graph"
  timeout 120 $PY 4_triton/main.py --no-cuda-graph --out "$OUT/results_gpu_4_triton_no_graph.json" | tail -3
  echo "== stage 4, one kernel per step"
  timeout 120 $PY 4_triton/main.py --fused step --out "$OUT/results_fused_gpu.json" | tail -3
  echo "== stage 4, the whole run in one launch"
  timeout 120 $PY 4_triton/main.py --fused run --out "$OUT/results_fused_run_gpu.json" | tail -3
  echo "== launches per step and kernel micro-benchmarks"
  timeout 120 $PY benchmarks/gpu_profile.py --out "$OUT/gpu_profile.json"
  echo "== width sweep"
  timeout 240 $PY benchmarks/scaling.py --stages 3_pytorch 4_triton --widths 16 32 64 128 256 --steps 200 \
    --stage-args "3_pytorch=--device cuda" --out "$OUT/scaling_gpu.json"
} 2>&1 | tee "$OUT/gpu.log"
