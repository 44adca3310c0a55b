"""Resolving a `finetune-video` request: which config to train, from which weights, on which
scenes and clips; every flag and input checked before anything is rendered or trained.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path

from ..console import ui
from ..data.dataset import OccDataset
from ..errors import BadInput
from ..limits import MAX_VIDEO_FRAMES, check_int
from ..runtime.trainer import TrainSettings
from ..sensors.render import parse_resolution
from ..store import Workspace, find_artifact
from ..store.artifacts import read_manifest
from .configs import VideoConfig, get_config
from .finetune_data import SceneClips, camera_tracks, clip_span, frame_times_us, nuscenes_root
from .generation_inputs import PromptPlan, prompt_plan
from .loading import VAE_DIR, VIDEO_CONFIG_FILE, check_base_config, has_part, require_image_encoder
from .requests import DEFAULT_CONFIG, FinetuneVideoRequest
from .rollout import check_frames, check_resolution

KIND = "video-model"


@dataclass
class Plan:
    """A checked request: the config to train, the data and where the weights start."""

    config: VideoConfig
    dataset: OccDataset
    scenes: list[SceneClips]
    clip_frames: int
    clip_stride: int
    settings: TrainSettings
    init: Path | None = None  # a video model folder (--init)
    base: str | None = None  # a Wan2.1 folder or hub id (--base); neither: random weights
    inputs: dict = field(default_factory=dict)
    prompt: PromptPlan | None = None  # the --init model's (its umT5 gives the official prompt); None: zeros


def find_video_model(ws: Workspace, ref: str, flag: str = "--video-model") -> Path:
    """A video model folder by path (holding video_config.json) or by workspace reference."""
    folder = Path(ref).expanduser()
    if (folder / VIDEO_CONFIG_FILE).is_file():
        return folder
    return find_artifact(ws, KIND, ref, flag).path


def _read_config(folder: Path, flag: str) -> VideoConfig:
    path = folder / VIDEO_CONFIG_FILE
    try:
        return VideoConfig.from_dict(json.loads(path.read_text()), str(path))
    except (OSError, ValueError) as exc:
        raise BadInput(f"{flag} {folder}: cannot read {VIDEO_CONFIG_FILE} ({type(exc).__name__}); "
                       "re-run `gdrive finetune-video` to rewrite the model") from None


def _resolve_config(ws: Workspace, req: FinetuneVideoRequest) -> tuple[VideoConfig, Path | None]:
    if req.base and req.init:
        raise BadInput("--base/--init: give one: --base starts from a Wan2.1 model, --init continues a video model")
    if req.init is None:
        cfg = get_config(req.video_config or DEFAULT_CONFIG)
        if req.base:
            check_base_config(cfg, "--base")
        elif cfg.transformer.i2v:
            raise BadInput(f"--video-config {cfg.name}: the released layout trains on CLIP features of the first "
                           "frames, and random weights have no CLIP image encoder; import the released weights with "
                           "their base (gdrive import-weights --format geniedrive-video ... --base DIR) and pass "
                           "--init NAME, or train a text-only config (--video-config debug or wan2.1-1.3b-t2v)")
        return cfg, None
    folder = find_video_model(ws, req.init, "--init")
    cfg = _read_config(folder, "--init")
    if not has_part(folder, VAE_DIR):
        raise BadInput(f"--init {folder}: has no vae/ (imported without its base), and fine-tuning encodes video "
                       "with it; import the model again with --base DIR (gdrive import-weights --format geniedrive-video)")
    if cfg.transformer.i2v:
        require_image_encoder(folder, cfg, "--init")
    if req.video_config is not None and req.video_config != cfg.name:
        raise BadInput(f"--video-config {req.video_config}: the --init model is a '{cfg.name}' model; drop --video-config")
    return cfg, folder


def _resolve_training(cfg: VideoConfig, req: FinetuneVideoRequest) -> tuple[VideoConfig, int, TrainSettings]:
    """Apply --resolution, --clip-frames, --lr, --warmup and --grad-clip to the config's defaults;
    the checked loop settings (--steps, --batch-size, --lr)."""
    height, width = check_resolution(*parse_resolution(req.resolution), cfg.pixel_multiple) if req.resolution \
        else cfg.resolution
    frames = check_frames(cfg.optim.train_frames if req.clip_frames is None else req.clip_frames, "--clip-frames",
                          cfg.vae.temporal_stride)
    check_int(req.clip_stride, "--clip-stride", 1, 120)
    if frames > MAX_VIDEO_FRAMES:
        raise BadInput(f"--clip-frames {frames}: at most {MAX_VIDEO_FRAMES} frames a clip (official: 37)")
    if req.warmup is not None and req.warmup < 0:
        raise BadInput(f"--warmup {req.warmup}: must be 0 or more steps")
    if req.grad_clip is not None and not req.grad_clip >= 0:
        raise BadInput(f"--grad-clip {req.grad_clip}: must be 0 (off) or a positive norm")
    optim = dataclasses.replace(cfg.optim, lr=cfg.optim.lr if req.lr is None else req.lr, train_frames=frames,
                                warmup_steps=cfg.optim.warmup_steps if req.warmup is None else req.warmup,
                                grad_clip=cfg.optim.grad_clip if req.grad_clip is None else req.grad_clip)
    cfg = dataclasses.replace(cfg, resolution=(height, width), optim=optim)
    settings = dataclasses.replace(req, lr=optim.lr).settings(weight_decay=optim.weight_decay, grad_clip=optim.grad_clip,
                                                             warmup=optim.warmup_steps)
    return cfg, frames, settings


def _training_scenes(ws: Workspace, ds: OccDataset, cfg: VideoConfig, split: str, frames: int,
                     stride: int) -> list[SceneClips]:
    """The split's scenes long enough for a clip, each with its target image per frame and view."""
    names = ds.scene_names(split)
    if not names:
        have = sorted({s["split"] for s in ds.manifest.get("scenes", [])})
        raise BadInput(f"--split {split}: dataset '{ds.name}' has no {split} scenes (splits: {', '.join(have) or 'none'}); "
                       "pass one of them with --split")
    views = cfg.multiview.views
    for name in names:
        rig_names = [c.name for c in ds.scene(name).rig.cameras]
        missing = [v for v in views if v not in rig_names]
        if missing:
            raise BadInput(f"--dataset {ds.name}: scene '{name}' has no {', '.join(missing)}; the video model needs "
                           f"the views {', '.join(views)}")
    fps = float(cfg.sampling.fps)
    times = {n: frame_times_us(ws, ds, ds.scene(n), fps) for n in names}
    span = clip_span(frames, stride)
    usable = [n for n in names if len(times[n]) >= span]
    if not usable:
        longest = max(len(t) for t in times.values())
        best = ((longest - 1) // stride) // cfg.vae.temporal_stride * cfg.vae.temporal_stride + 1
        raise BadInput(f"--clip-frames {frames}: a clip spans {span} frames at {fps:g} Hz (stride {stride}), more than "
                       f"any {split} scene of '{ds.name}' (longest {longest}); use --clip-frames {best} or a smaller --clip-stride")
    if len(usable) < len(names):
        ui.warn(f"{len(names) - len(usable)} of {len(names)} {split} scenes are shorter than a clip ({span} frames); left out")
    tracks = camera_tracks(ds, usable, views)
    scenes, worst = [], 0.0
    for name in usable:
        per_view = [tracks[name][v].nearest(times[name]) for v in views]
        worst = max([worst] + [gap for _, gap in per_view])
        scenes.append(SceneClips(name, times[name], [list(row) for row in zip(*(paths for paths, _ in per_view))]))
    _check_images(scenes)
    if worst > 1.5 / fps:
        ui.warn(f"some targets are {worst:.2f} s from their frame time (the tables list no camera sweeps there); "
                "those frames repeat the nearest image")
    return scenes


def _check_images(scenes: list[SceneClips]) -> None:
    """Every target image must exist before training starts."""
    needed = sorted({p for s in scenes for row in s.images for p in row})
    missing = [p for p in needed if not p.is_file()]
    if missing:
        root = missing[0].parents[2]  # <dataroot>/samples|sweeps/<CAM>/<file>
        raise BadInput(f"{missing[0]}: camera image missing ({len(missing)} of {len(needed)} needed); download the "
                       f"nuScenes camera blobs (samples/ and sweeps/) into {root}")


def plan_finetune(ws: Workspace, req: FinetuneVideoRequest) -> Plan:
    """Check every flag and input; BadInput before anything is rendered or trained."""
    cfg, init = _resolve_config(ws, req)
    cfg, frames, settings = _resolve_training(cfg, req)
    ds = OccDataset.open(req.dataset, ws.root)
    nuscenes_root(ds)  # a dataset without camera images says so before anything else
    scenes = _training_scenes(ws, ds, cfg, req.split, frames, req.clip_stride)
    if init is not None:
        start = {"init": (read_manifest(init) or {}).get("id", str(init.resolve()))}
    else:  # a local base by absolute path, a hub id as given, None for random weights
        local = req.base is not None and Path(req.base).expanduser().is_dir()
        start = {"base": str(Path(req.base).expanduser().resolve()) if local else req.base}
    prompt = None if init is None else prompt_plan(init, None)
    inputs = {"dataset": ds.id, **start, "prompt": "none" if prompt is None else prompt.source,
              "clips": {"split": req.split, "stride": req.clip_stride, "scenes": [s.name for s in scenes]}}
    return Plan(cfg, ds, scenes, frames, req.clip_stride, settings, init, req.base, inputs, prompt)
