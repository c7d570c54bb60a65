#!/usr/bin/env bash
# Every check that needs a CUDA GPU, in one run: the test suite with CUDA present, the trainer
# benchmark (ResNet-20 at 32, ResNet-18 at 224), the memory estimates against the CUDA caching
# allocator, `convnet compare --device cuda` with NVML power, dense evaluation, and the main job.
# Usage: bash benchmarks/cuda_checks.sh OUTDIR   (from the repository root, torch with CUDA)
set -u
out=${1:?usage: cuda_checks.sh OUTDIR}
mkdir -p "$out"
export PYTHONPATH=$PWD/src PYTHONUNBUFFERED=1
py=${PYTHON:-python3}
log="$out/checks.log"
step() { echo "=== $* ($(date -u +%T))" | tee -a "$log"; }
step machine
{ nvidia-smi -L; $py -c 'import torch; print(torch.__version__, torch.version.cuda, torch.cuda.get_device_name())'
  $py -m pip list 2>/dev/null | grep -i -E "^(torch|numpy|optuna|nvidia-ml-py|hypothesis|pytest) "; nproc; } >>"$log" 2>&1
step tests
timeout 150 $py -m pytest -q -n 16 -p no:cacheprovider --timeout 120 tests -rs >"$out/pytest.log" 2>&1
echo "pytest rc $?" | tee -a "$log"; tail -40 "$out/pytest.log" >>"$log"
step compare; timeout 150 $py -m convnet compare --family classic --device cuda --repeats 20 --max-seconds 1 -o "$out/compare" >>"$log" 2>&1
step bench_memory_cuda; timeout 100 $py benchmarks/bench_memory_cuda.py >>"$log" 2>&1
step bench_train resnet20; timeout 50 $py benchmarks/bench_train.py --device cuda >>"$log" 2>&1
step bench_train resnet18 224; timeout 90 $py benchmarks/bench_train.py --device cuda --model resnet18 --size 224 --batch 128 >>"$log" 2>&1
step bench_dense; timeout 30 $py benchmarks/bench_dense.py --device cuda >>"$log" 2>&1
step main job; timeout 40 $py -m convnet train lenet5 --device cuda -o /tmp/lenet5-cuda >>"$log" 2>&1
step done
