#!/usr/bin/env bash
# Trains the demo world model of assets/demo/world-small on a 2-core CPU (about 90 minutes alone).
# Usage: GDRIVE_WORKSPACE=/tmp/demo-ws bash assets/demo/reproduce.sh
#
# The shipped weights: the VAE is the one these VAE settings trained on the first synthetic
# generator (16 scenes x 40 frames, before generator 2's districts and houses); the forecaster and
# its fusion table were trained by the two train-forecaster commands below, with --init pointing at
# that VAE (assets/demo/world-small), on train24 (predict 44 min, fuse 5.5 min on 2 cores).
set -euo pipefail
G=${GDRIVE:-gdrive}
$G prepare-occ --source synthetic --scenes 24 --frames 48 --seed 0 --name train24 --no-previews
$G train-vae --dataset train24 --model-config small --steps 1200 --batch-size 1 --lr 1e-3 \
   --val-every 600 --ckpt-every 50 --name vae-small
# Horizon curriculum: 12-keyframe windows, the rolled-out horizon growing 6 -> 12 over the first 1000 steps.
$G train-forecaster --stage predict --dataset train24 --init vae-small --motion-prior warp --future 12 --steps 2000 \
   --batch-size 1 --lr 1e-3 --warmup 50 --val-every 1000 --ckpt-every 100 --name world-predict
# Observation-fusion table only (VAE and forecaster frozen; 64 windows, 32k voxels per future frame).
$G train-forecaster --stage fuse --dataset train24 --init world-predict --steps 300 --batch-size 2 --lr 0.1 \
   --warmup 20 --weight-decay 0 --val-every 1000 --ckpt-every 50 --name world-small
# Held-out scenes (a seed not used in training) for heldout-metrics.json and counterfactual-metrics.json.
$G prepare-occ --source synthetic --scenes 4 --frames 40 --seed 1 --name heldout --no-previews
$G evaluate occ --dataset heldout --model world-small --max-windows 24 --out heldout-metrics.json
$G evaluate occ --dataset heldout --model world-small --counterfactual --out counterfactual-metrics.json
