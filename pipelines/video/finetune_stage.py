"""The `finetune-video` stage: fine-tune the multi-view video model on a dataset's camera video.

Pairs, per training scene and 12 Hz frame (the config's sampling fps):
- condition: the scene's `gdrive render` at the training resolution (run here, or reused when it
  exists), colourised with `sensors.camera.colorize` (palette shaded by depth), as `generate` does;
- target: the dataset's camera image nearest in time to that frame, per camera (nuScenes: the
  keyframe `samples/` and the `sweeps/` in between, ~12 Hz), resized to the resolution.
Views follow the config's ring order. A clip is `--clip-frames` (4k + 1) frames taken every
`--clip-stride` frames (official: 37 frames, stride 2), starting anywhere that keeps it inside
10-90 % of the scene (the whole scene when that window is too short).

The loop is the shared trainer (`runtime.trainer`: batches as a pure function of (seed, step),
safetensors checkpoints with optimiser state, `--resume`, DDP through torchrun) with the video
library's `finetune_step` as its step: flow matching, AdamW with the config's weight decay and
eps, linear warm-up, gradient-norm clipping; bf16 autocast and gradient checkpointing on CUDA only.
Every random draw of a step (clip starts, noise, timestep, condition dropout) comes from a
generator seeded by (seed, step, rank), so a resumed run ends identical to an uninterrupted one.

What else a step feeds the transformer, as the official trainer (`train_control.py`,
`--train_mode control_ref --control_ref_image first_frame --add_full_ref_image_in_self_attention`):
the clip's first frame per view as the reference (its latents in the first-frame channels); for
the released layout (i2v + ref_conv, only by --init from an imported model, which holds the CLIP
image encoder) the CLIP features of that frame and a zero `full_ref` (the official trainer zeroes
it whenever the reference is the first frame); condition video, first-frame latents and CLIP
features each dropped per view with p = 0.1. The prompt is the one `generate` samples the result
with: the official empty prompt by the --init model's umT5 when it has one with its tokenizer,
else zero embeddings.

video-models/<name>/   save_video_model's diffusers folder (video_config.json, transformer/, vae/; the
                       --init model's text_encoder/, image_encoder/, tokenizer/ when it has them)
                       + manifest.json (resolved request and config) + metrics.json;
                       loadable by `loading.load_video_model`.
runs/<name>/last/      the resumable run state.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ..console import ui
from ..data.dataset import OccDataset, Scene
from ..errors import BadInput, RunFailure
from ..limits import MAX_VIDEO_FRAMES, check_int
from ..runtime.distributed import init_distributed
from ..runtime.model_artifact import TrainingJob, TrainRequest, run_training
from ..runtime.trainer import Stage, TrainSettings
from ..sensors.camera import CameraRender, colorize
from ..sensors.render import RenderRequest, open_sequence, output_frames, parse_resolution, run_render
from ..store import Workspace, find_artifact
from ..store.artifacts import ArtifactWriter, read_manifest
from .configs import VideoConfig, get_config
from .finetune import encode_training_batch, finetune_step, make_optimizer, set_gradient_checkpointing
from .loading import (
    IMAGE_ENCODER_DIR,
    TEXT_ENCODER_DIR,
    TOKENIZER_DIR,
    VAE_DIR,
    VIDEO_CONFIG_FILE,
    VideoModel,
    build_video_model,
    check_base_config,
    has_part,
    load_encoder,
    load_base_model,
    load_video_model,
    require_image_encoder,
    require_vae,
    save_video_model,
)
from .generation_inputs import PromptPlan, prompt_plan, resolve_prompts
from .rollout import check_frames, check_resolution

KIND = "video-model"
DEFAULT_CONFIG = "wan2.1-1.3b-t2v"  # the layout a T2V base (--base) widens into
CLIP_WINDOW = (0.1, 0.9)  # official: clips start and end inside 10-90 % of the video
DECODE_THREADS = 8  # JPEG decoding releases the GIL; threads keep the GPU fed


@dataclass
class FinetuneVideoRequest(TrainRequest):
    video_config: str | None = None  # default: the --init model's, else DEFAULT_CONFIG
    base: str | None = None  # a Wan2.1 diffusers folder or hub id
    init: str | None = None  # a video model (name, id, 'latest' or folder) to continue
    split: str = "train"
    clip_frames: int | None = None  # default: config.optim.train_frames (official 37)
    clip_stride: int = 2
    resolution: str | None = None  # default: the config's (256x512)
    steps: int = 1000
    batch_size: int = 1
    lr: float | None = None  # default: config.optim.lr (official 2e-5)
    warmup: int | None = None  # default: config.optim.warmup_steps (official 100)
    grad_clip: float | None = None  # default: config.optim.grad_clip (official 0.05); 0 = off
    ckpt_every: int = 250
    ema: bool = False  # the official recipe keeps none


# --------------------------------------------------------------------------------------------
# Camera images of a nuScenes dataset
# --------------------------------------------------------------------------------------------


@dataclass
class CameraTrack:
    """The images of one camera in one scene, in time order."""

    times_us: np.ndarray  # [M] int64
    paths: list[Path]  # [M]

    def nearest(self, times_us: np.ndarray) -> tuple[list[Path], float]:
        """(the image nearest to each time [N], the largest time gap in seconds)."""
        after = np.searchsorted(self.times_us, times_us)
        lo = np.clip(after - 1, 0, len(self.times_us) - 1)
        hi = np.clip(after, 0, len(self.times_us) - 1)
        pick = np.where(np.abs(self.times_us[lo] - times_us) <= np.abs(self.times_us[hi] - times_us), lo, hi)
        gap = float(np.abs(self.times_us[pick] - times_us).max(initial=0)) / 1e6
        return [self.paths[i] for i in pick], gap


def _nuscenes_root(ds: OccDataset) -> tuple[dict, Path]:
    """The dataset's prepare config and its nuScenes folder, or BadInput when it has no images."""
    cfg = ds.manifest.get("config", {})
    source = cfg.get("source", "unknown")
    if source != "nuscenes":
        raise BadInput(f"--dataset {ds.name}: a {source} dataset has no camera images, and fine-tuning learns from "
                       "real camera video; use a nuScenes dataset with its samples/ and sweeps/ images "
                       "(gdrive prepare-occ --source nuscenes --dataroot DIR)")
    root = Path(cfg.get("resolved_source", {}).get("dataroot") or cfg.get("dataroot") or "")
    if not root.is_dir():
        raise BadInput(f"--dataset {ds.name}: its nuScenes folder {root} (where the camera images are) is gone; "
                       "restore it, or prepare the dataset again from where it is now")
    return cfg, root


def nuscenes_source(ds: OccDataset):
    """The nuScenes tables the dataset was prepared from (BadInput when it has no images)."""
    from ..data.sources.nuscenes import NuScenesSource

    cfg, root = _nuscenes_root(ds)
    gts = cfg.get("resolved_source", {}).get("gts") or cfg.get("occ_root")
    return NuScenesSource(root, cfg.get("version", "v1.0-trainval"), gts)


def camera_tracks(ds: OccDataset, scenes: list[str], views: tuple[str, ...]) -> dict[str, dict[str, CameraTrack]]:
    """scene -> camera -> every image of that camera in the scene (keyframes and sweeps).

    Read from the nuScenes tables the dataset was prepared from: each camera's `sample_data`
    chain from the image before the first keyframe to one frame past the last keyframe.
    """
    source = nuscenes_source(ds)
    out: dict[str, dict[str, CameraTrack]] = {}
    for name in scenes:
        samples = source.samples(name)
        end_us = samples[-1]["timestamp"] + 1e6 / 12  # one camera period (12 Hz) past the last keyframe
        out[name] = {}
        for view in views:
            token = samples[0]["data"].get(view)
            if token is None:
                raise BadInput(f"{source.table_root / 'sample_data.json'}: scene '{name}' has no {view} images; "
                               "fine-tuning needs all six cameras")
            times, paths = source.camera_images(name, token, end_us)
            out[name][view] = CameraTrack(np.asarray(times, np.int64), paths)
    return out


# --------------------------------------------------------------------------------------------
# Training clips
# --------------------------------------------------------------------------------------------


@dataclass
class SceneClips:
    """One training scene: its 12 Hz frames and, per frame and view, the target image."""

    name: str
    times_us: np.ndarray  # [N] int64, the render's frame times
    images: list[list[Path]]  # [N][V] in the config's view order
    render: Path | None = None  # the render artifact, once made
    render_meta: dict | None = None  # its frames.json

    @property
    def frames(self) -> int:
        return len(self.times_us)


def frame_times_us(ws: Workspace, ds: OccDataset, scene: Scene, fps: float) -> np.ndarray:
    """[N] absolute times (µs) of the scene's frames as `gdrive render --fps fps` writes them."""
    seq = open_sequence(ws, RenderRequest(dataset=str(ds.root), scene=scene.name))
    plan = output_frames(seq, list(range(len(seq.tokens))), fps, None)
    return int(scene.timestamps_us[0]) + np.round(np.array([f["t_s"] for f in plan]) * 1e6).astype(np.int64)


def clip_span(frames: int, stride: int) -> int:
    """12 Hz frames a clip covers."""
    return (frames - 1) * stride + 1


def clip_start(n_frames: int, span: int, generator: torch.Generator) -> int:
    """A uniform start that keeps [start, start + span) inside 10-90 % of the scene when that
    window is long enough, else inside the scene (the scene must hold `span` frames)."""
    lo, hi = int(CLIP_WINDOW[0] * n_frames), int(CLIP_WINDOW[1] * n_frames)
    if hi - lo < span:
        lo, hi = 0, n_frames
    return lo + int(torch.randint(0, hi - lo - span + 1, (1,), generator=generator))


def condition_frames(render: Path, views: tuple[str, ...], indices: list[int], meta: dict | None = None) -> np.ndarray:
    """Colourised condition frames of a render artifact: uint8 [V, n, H, W, 3] in `views` order.

    indices: frame numbers in the render's frames.json (`meta`, read when not given). The colours
    are `colorize`'s (palette shaded by depth), as `generate` feeds the model.
    """
    meta = meta or json.loads((render / "frames.json").read_text())
    missing = [v for v in views if v not in meta["cameras"]]
    if missing:
        raise BadInput(f"{render}: render has no {', '.join(missing)}; render all six cameras")
    order = [meta["cameras"].index(v) for v in views]
    out = []
    for i in indices:
        with np.load(render / meta["frames"][i]["cameras"]) as z:
            labels, depth = z["labels"][order], z["depth"][order].astype(np.float32)
        out.append(colorize(CameraRender(torch.from_numpy(labels), torch.from_numpy(depth),
                                         torch.from_numpy(np.ones_like(depth)))))
    return np.stack(out, 1)


def read_camera_image(path: Path, size: tuple[int, int]) -> np.ndarray:
    """One camera image -> uint8 [H, W, 3] at size (height, width)."""
    h, w = size
    try:
        with Image.open(path) as img:
            img.draft("RGB", (w, h))  # JPEG: decode at the smallest 1/2^k scale still >= the size
            return np.asarray(img.convert("RGB").resize((w, h), Image.BILINEAR))
    except OSError as exc:
        raise BadInput(f"{path}: unreadable camera image ({exc}); re-download the nuScenes camera blobs") from None


def camera_frames(images: list[list[Path]], size: tuple[int, int], pool: ThreadPoolExecutor) -> np.ndarray:
    """Target frames: images [n][V] -> uint8 [V, n, H, W, 3], each resized to size (height, width)
    without keeping the aspect ratio (the rendered cameras' intrinsics are scaled the same way)."""
    flat = list(pool.map(lambda p: read_camera_image(p, size), [p for row in images for p in row]))
    n, v = len(images), len(images[0])
    return np.stack(flat).reshape(n, v, *flat[0].shape).swapaxes(0, 1)


def to_video_tensor(frames: list[np.ndarray]) -> torch.Tensor:
    """uint8 [V, n, H, W, 3] per sample -> float [B, V, n, 3, H, W] in [0, 1]."""
    return torch.from_numpy(np.stack(frames)).permute(0, 1, 2, 5, 3, 4).float() / 255.0


# --------------------------------------------------------------------------------------------
# Resolving the request
# --------------------------------------------------------------------------------------------


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
    _nuscenes_root(ds)  # a dataset without camera images says so before anything else
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


# --------------------------------------------------------------------------------------------
# Training
# --------------------------------------------------------------------------------------------


def _render_scenes(ws: Workspace, plan: Plan, device: torch.device) -> None:
    """Render (or reuse) every training scene's conditions at the training resolution and fps.

    Under torchrun each rank starts with its own share of the scenes, then passes over the rest,
    which the artifact lock makes it wait for and reuse, so all ranks end with every render.
    """
    info = init_distributed(device)
    order = plan.scenes[info.rank::info.world] + [s for i, s in enumerate(plan.scenes) if i % info.world != info.rank]
    height, width = plan.config.resolution
    for s in order:
        req = RenderRequest(dataset=str(plan.dataset.root), scene=s.name, resolution=f"{height}x{width}", lidar=False,
                            fps=float(plan.config.sampling.fps), previews=False, device=str(device))
        s.render = Path(run_render(ws, req)["path"])
        s.render_meta = json.loads((s.render / "frames.json").read_text())
        got = len(s.render_meta["frames"])
        if got != s.frames:
            raise RunFailure(f"{s.render}: {got} frames, expected {s.frames} for scene '{s.name}'; re-render it with --force")


def _stream_seed(seed: int, step: int, rank: int) -> int:
    """A well-mixed seed per (seed, step, rank): the randomness of a step does not depend on history."""
    return int(np.random.SeedSequence([seed, step, rank]).generate_state(1)[0])


def _start_model(plan: Plan, seed: int) -> VideoModel:
    if plan.init is not None:
        model = load_video_model(plan.init, "--init", encoders=False)  # write() copies their folders
        require_vae(model, plan.init, "--init")
        # the frozen CLIP gives the first frames' features (i2v); the umT5 is used once, for the prompt
        image_encoder = load_encoder(plan.init, IMAGE_ENCODER_DIR, "--init") if plan.config.transformer.i2v else None
        # the resolved resolution / clip length / optimiser settings are what this run records
        return VideoModel(plan.config, model.transformer, model.vae, image_encoder=image_encoder)
    if plan.base:
        return load_base_model(plan.base, plan.config, "--base", seed)
    ui.warn("no --base or --init: training from random weights (tests, debugging); for real runs pass "
            f"--base {plan.config.base_model or 'a Wan2.1 diffusers folder'}")
    return build_video_model(plan.config, seed)


def training_prompt(plan: Plan, model: VideoModel, device: torch.device) -> torch.Tensor | None:
    """[1, text_len, text_dim]: the official (empty) prompt by the --init model's umT5 when it has
    one with its tokenizer, the prompt `generate` samples it with; else None (zero embeddings)."""
    if plan.prompt is None or plan.prompt.source != "umt5":
        return None
    return resolve_prompts(plan.prompt, plan.init, model, device)["prompt"]


def _carry_frozen_parts(init: Path | None, folder: Path) -> None:
    """The --init model's text / image encoders and tokenizer go with the fine-tuned model (copied
    as files: fine-tuning does not change them, and loading a full umT5 would cost 11 GB)."""
    if init is None:
        return
    for sub in (TEXT_ENCODER_DIR, IMAGE_ENCODER_DIR, TOKENIZER_DIR):
        if (init / sub).is_dir():
            shutil.copytree(init / sub, folder / sub)


def video_stage(ws: Workspace, plan: Plan, seed: int, device: torch.device) -> tuple[Stage, VideoModel]:
    """The shared trainer's Stage for the video transformer (the VAE stays frozen outside it)."""
    cfg, stride = plan.config, plan.clip_stride
    span = clip_span(plan.clip_frames, stride)
    model = _start_model(plan, seed)
    _render_scenes(ws, plan, device)
    info = init_distributed(device)
    vae = model.vae.to(device).eval().requires_grad_(False)
    image_encoder = None if model.image_encoder is None else model.image_encoder.to(device).eval().requires_grad_(False)
    prompt = training_prompt(plan, model, device)
    transformer = model.transformer
    cuda = device.type == "cuda"
    set_gradient_checkpointing(transformer, cuda)
    pool = ThreadPoolExecutor(min(DECODE_THREADS, os.cpu_count() or 1))
    clip = cfg.optim.grad_clip if cfg.optim.grad_clip > 0 else float("inf")

    def load_clips(items: np.ndarray, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        videos, conds = [], []
        for i in items:
            s = plan.scenes[int(i)]
            start = clip_start(s.frames, span, gen)
            idx = list(range(start, start + span, stride))
            videos.append(camera_frames([s.images[j] for j in idx], cfg.resolution, pool))
            conds.append(condition_frames(s.render, cfg.multiview.views, idx, s.render_meta))
        return to_video_tensor(videos), to_video_tensor(conds)

    def step(net: torch.nn.Module, opt: torch.optim.Optimizer, batch: dict, index: int) -> torch.Tensor:
        gen = torch.Generator().manual_seed(_stream_seed(seed, index, info.rank))
        videos, conds = load_clips(batch["items"], gen)  # [B, V, N, 3, H, W] in [0, 1]
        flow_batch = encode_training_batch(vae, videos, conds, cfg, prompt, image_encoder)
        if not hasattr(net, "config"):
            net.config = transformer.config  # DDP: the flow loss reads the wrapped model's view count
        result = finetune_step(net, opt, flow_batch, cfg, generator=gen, grad_clip=clip,
                               autocast_dtype=torch.bfloat16 if cuda else None)
        return torch.tensor(result.loss, device=device)

    stage = Stage(transformer, len(plan.scenes), lambda idx: {"items": idx}, step=step,
                  optimizer=lambda params: make_optimizer(transformer, cfg.optim, cfg.optim.lr))
    return stage, model


def run_finetune_video(ws: Workspace, req: FinetuneVideoRequest) -> dict:
    plan = plan_finetune(ws, req)
    cfg, settings = plan.config, plan.settings
    holder: dict[str, VideoModel] = {}

    def build_stage(device: torch.device):
        stage, model = video_stage(ws, plan, req.seed, device)
        holder["model"] = model
        return stage, lambda trained: {"transformer": trained}

    def write(w: ArtifactWriter, parts: dict[str, torch.nn.Module]) -> None:
        _carry_frozen_parts(plan.init, w.tmp)
        save_video_model(VideoModel(cfg, parts["transformer"], holder["model"].vae), w.tmp)

    request = {**dataclasses.asdict(req), "video_config": cfg.name, "resolved": {
        "config": cfg.to_dict(), "clip_frames": plan.clip_frames, "clip_stride": req.clip_stride,
        "scenes": [s.name for s in plan.scenes], "views": list(cfg.multiview.views)}}
    job = TrainingJob("finetune-video", "video", cfg, settings, plan.inputs, request, req.name, req.resume,
                      req.force, req.device, build_stage, kind=KIND, write=write)
    return run_training(ws, job)
