"""Video metrics: FID (InceptionV3 pool features) and FVD (I3D logits) between two folders of MP4s.

Folder layout. Each folder holds per-camera MP4s at any depth, e.g. what `gdrive generate` writes:

    DIR/<scene or run>/.../CAM_FRONT.mp4, CAM_FRONT_LEFT.mp4, ...

Videos are matched by their path relative to DIR (`scene-0103/CAM_FRONT.mp4` on both sides), so
that both sets cover the same scenes and views; videos on one side only are left out with a
warning. `unpaired=True` compares every video of each folder instead.

Protocol (peers-and-protocols.md; FVD as Unterthiner et al. / StyleGAN-V, FID as pytorch-fid):

* Views are pooled, as W-CODA / MagicDrive do: each view's clip is one FVD sample, and every
  frame of every view is one FID sample (`frame_stride` keeps every k-th frame).
* FVD: the first `clip_frames` frames of each video (16 by default; the table's frame count in
  GenieDrive, e.g. 8 for its S model; `all_clips` takes every non-overlapping clip instead),
  each frame resized to 224×224, values in [-1, 1], I3D Kinetics-400 logits (400-d, mean over
  time).
* FID: each frame resized to 299×299, values in [-1, 1], InceptionV3 2048-d pool features.
* Resizing is bilinear without antialiasing and squeezes the frame to a square, as both
  reference implementations do. Frame rates are not resampled.
* Fréchet distance between Gaussians fitted to the two feature sets (unbiased covariance).

This module runs the evaluation; its parts: `metrics_videos` (finding, pairing and reading the
videos), `metrics_networks` (the InceptionV3 and I3D networks and their weights),
`metrics_frechet` (the Fréchet distance and running feature statistics).
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch

from ..console import ui
from ..errors import BadInput
from ..limits import check_int
from . import i3d, inception
from .metrics_frechet import FeatureStats, frechet_distance_of
from .metrics_networks import FID_NET, FVD_NET, NETWORKS, load_network
from .metrics_videos import batches, clips_of, find_videos, pair_videos, read_video
from .requests import METRICS, VideoEvalRequest



def check_request(req: VideoEvalRequest) -> None:
    """Every flag problem as one line, before anything is read or computed."""
    bad = [m for m in req.metrics if m not in METRICS]
    if bad or not req.metrics:
        raise BadInput(f"--metrics '{','.join(req.metrics)}': choose from fid, fvd (comma-separated)")
    if "fid" in req.metrics and req.fid_weights is None:
        raise BadInput("--fid-weights: FID needs InceptionV3 weights; give " + FID_NET.layout
                       + ", or leave FID out with --metrics fvd")
    if "fvd" in req.metrics and req.fvd_weights is None:
        raise BadInput("--fvd-weights: FVD needs I3D weights; give " + FVD_NET.layout + ", or leave FVD out with --metrics fid")
    for flag, value, most in (("--clip-frames", req.clip_frames, 1024), ("--frame-stride", req.frame_stride, 10_000),
                              ("--batch-size", req.batch_size, 1024)):
        check_int(value, flag, 1, most)


def _check_samples(name: str, counts: dict[str, int], dim: int, dirs: dict[str, Path]) -> None:
    """At least 2 samples a side (a covariance); a warning when they do not span the feature space."""
    for side, n in counts.items():
        if n < 2:
            raise BadInput(f"--{side} {dirs[side]}: gives {n} {name} sample(s); a covariance needs at least 2 (add videos"
                           + (", or pass --all-clips)" if name == "FVD" else ")"))
    if min(counts.values()) <= dim:
        ui.warn(f"{name} from {counts['real']} real / {counts['generated']} generated samples (≤ {dim} feature dims): the "
                "covariances are rank-deficient and the score is biased high; compare only scores from equal sample counts")


def run_evaluate_video(req: VideoEvalRequest) -> dict:
    """FID and/or FVD of the generated folder against the real one; the report as a dict."""
    from ..runtime.distributed import resolve_device

    check_request(req)
    real_dir, gen_dir = Path(req.real), Path(req.generated)
    real_all, gen_all = find_videos(real_dir, "--real"), find_videos(gen_dir, "--generated")
    real_videos, gen_videos, left_out = pair_videos(real_all, gen_all, real_dir, gen_dir, req.unpaired)
    device = resolve_device(req.device)
    weights = {"fid": req.fid_weights, "fvd": req.fvd_weights}
    nets = {m: load_network(NETWORKS[m], Path(weights[m]), device) for m in req.metrics}
    # Read at call time, not bound as defaults: the protocol sizes live with the networks.
    fid_size, fvd_size = inception.FID_INPUT_SIZE, i3d.FVD_INPUT_SIZE

    t0 = time.perf_counter()
    sides: dict[str, dict] = {}
    stats: dict[str, dict[str, FeatureStats]] = {}
    with ui.progress("video features", total=len(real_videos) + len(gen_videos)) as bar, torch.inference_mode():
        for side, videos, root in (("real", real_videos, real_dir), ("generated", gen_videos, gen_dir)):
            fid_stats, fvd_stats = FeatureStats(inception.FID_FEATURE_DIM), FeatureStats(i3d.FVD_FEATURE_DIM)
            frames_seen = 0
            for path in videos:
                video = read_video(path)
                frames_seen += len(video)
                if "fid" in nets:
                    for batch in batches(video[::req.frame_stride], req.batch_size):
                        x = inception.fid_input(torch.from_numpy(np.ascontiguousarray(batch)).to(device), fid_size)
                        fid_stats.update(nets["fid"](x))
                if "fvd" in nets:
                    for batch in batches(clips_of(video, req.clip_frames, req.all_clips, path), req.batch_size):
                        x = i3d.fvd_input(torch.from_numpy(np.ascontiguousarray(batch)).to(device), fvd_size)
                        fvd_stats.update(nets["fvd"](x))
                bar.advance(status=side)
            sides[side] = {"dir": str(root), "videos": len(videos), "frames_read": frames_seen,
                           "views": sorted({p.stem for p in videos}),
                           "fid_frames": fid_stats.n if "fid" in nets else None,
                           "fvd_clips": fvd_stats.n if "fvd" in nets else None}
            stats[side] = {"fid": fid_stats, "fvd": fvd_stats}
    seconds = time.perf_counter() - t0

    result: dict = {"fid": None, "fvd": None}
    for metric, name, dim in (("fid", "FID", inception.FID_FEATURE_DIM), ("fvd", "FVD", i3d.FVD_FEATURE_DIM)):
        if metric in nets:
            _check_samples(name, {side: stats[side][metric].n for side in stats}, dim, {"real": real_dir, "generated": gen_dir})
            result[metric] = frechet_distance_of(stats["real"][metric], stats["generated"][metric])
    return {
        **result,
        "real": sides["real"], "generated": sides["generated"],
        "paired": not req.unpaired, "left_out": left_out,
        "protocol": {
            "views": "pooled: each view's clip is one FVD sample; every frame of every view one FID sample",
            "fvd": {"network": "I3D Kinetics-400", "features": "logits, 400-d, mean over time",
                    "clip_frames": req.clip_frames, "clips": "all non-overlapping" if req.all_clips else "first",
                    "input": [req.clip_frames, fvd_size, fvd_size], "range": [-1, 1]},
            "fid": {"network": "InceptionV3 (TF 2015-12-05 graph)", "features": "pool, 2048-d",
                    "frame_stride": req.frame_stride, "input": [fid_size, fid_size], "range": [-1, 1]},
            "resize": "bilinear, no antialias, squeezed to square",
        },
        "weights": {m: str(weights[m]) for m in req.metrics},
        "timing": {"seconds": round(seconds, 3), "videos_per_s": round((len(real_videos) + len(gen_videos)) / max(seconds, 1e-9), 3),
                   "device": str(device)},
    }


def report_rows(res: dict) -> list[list[str]]:
    """Rows for the console table: metric, value, samples per side, features."""
    rows = []
    p = res["protocol"]
    if res["fid"] is not None:
        rows.append(["FID", f"{res['fid']:.3f}", f"{res['real']['fid_frames']} frames", f"{res['generated']['fid_frames']} frames",
                     f"InceptionV3 pool 2048-d @ {p['fid']['input'][0]}²"])
    if res["fvd"] is not None:
        rows.append(["FVD", f"{res['fvd']:.3f}", f"{res['real']['fvd_clips']} clips", f"{res['generated']['fvd_clips']} clips",
                     f"I3D logits 400-d @ {p['fvd']['clip_frames']}×{p['fvd']['input'][1]}²"])
    return rows
