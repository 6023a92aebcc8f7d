#!/usr/bin/env bash
# The GPU figures of BENCHMARKS.md in one short run (a few minutes on one CUDA device):
#   bash benchmarks/gpu.sh [OUT_DIR]
# 1. the large-panel benchmark on CUDA: windows gathered by index on the device, 30,000 series
#    x 1,000 hourly steps, training windows/s and peak CUDA memory, then a real fit;
# 2. the ETTh1 protocol (benchmarks.ett) on CUDA for the GRU with every recurrent decoder
#    (bf16 autocast is on whenever the device is CUDA) and for the ESN.
# Each step prints JSON lines; they are also written under OUT_DIR (default: gpu-results/).
# Needs a CUDA build of torch and `make install` (or the same packages) on the machine.
set -euo pipefail
out="${1:-gpu-results}"
mkdir -p "$out"
python="${PYTHON:-python}"
"$python" -c 'import torch, sys; sys.exit(0 if torch.cuda.is_available() else "no CUDA device: run this on a GPU machine")'
"$python" -c 'import torch; print({"torch": torch.__version__, "gpu": torch.cuda.get_device_name(0)})' | tee "$out/device.txt"
"$python" -m benchmarks.large_panel --device cuda --materialised 1000 --batch-size 1024 --batches 300 --fit \
    | tee "$out/large_panel.jsonl"
for decoder in segments direct seq2seq; do
    "$python" -m benchmarks.ett --family gru --horizon 24,96 --device cuda --decoder "$decoder" --json \
        | tee -a "$out/ett_gru.jsonl"
done
"$python" -m benchmarks.ett --family esn --horizon 24,96 --device cuda --json | tee "$out/ett_esn.jsonl"
