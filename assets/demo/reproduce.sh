#!/usr/bin/env bash
# Reproduces the demo world model in assets/demo/world-small on a 2-core CPU (about 65 minutes).
# Usage: GDRIVE_WORKSPACE=/tmp/demo-ws bash assets/demo/reproduce.sh
set -euo pipefail
G=${GDRIVE:-gdrive}
$G prepare-occ --source synthetic --scenes 16 --frames 40 --seed 0 --name train16 --no-previews
$G train-vae --dataset train16 --model-config small --steps 1200 --batch-size 1 --lr 1e-3 \
   --val-every 600 --ckpt-every 50 --name vae-small
$G train-forecaster --stage predict --dataset train16 --init vae-small --motion-prior warp --steps 2000 \
   --batch-size 1 --lr 1e-3 --warmup 50 --val-every 1000 --ckpt-every 100 --name world-predict
# Observation-fusion table only (VAE and forecaster frozen; 64 windows, 32k voxels per future frame).
$G train-forecaster --stage fuse --dataset train16 --init world-predict --steps 300 --batch-size 2 --lr 0.1 \
   --warmup 20 --weight-decay 0 --val-every 1000 --ckpt-every 50 --name world-small
# Held-out scenes (a seed not used in training) for the metrics in metrics.json.
$G prepare-occ --source synthetic --scenes 4 --frames 40 --seed 1 --name heldout --no-previews
$G evaluate occ --dataset heldout --model world-small --max-windows 24 --out heldout-metrics.json
