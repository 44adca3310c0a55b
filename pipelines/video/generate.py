"""The `generate` stage: forecast -> render -> multi-view video, each stage a cached artifact.

1. forecast: `occworld.forecast.run_forecast` for enough 2 Hz keyframes to cover the requested
   12 fps frames: N frames span (N - 1) / 12 s, so H = ceil((N - 1) / 6) future keyframes
   (241 frames = 20 s = 40 keyframes). Without control adherence (`gdrive forecast` measures it),
   which would cost more than the forecast itself.
2. occupancy: the current (observed) keyframe followed by the H forecast keyframes, as one
   `OccupancySequence` (data/sequence.py) read from the dataset and the forecast artifact, poses in
   the current ego frame. The forecast artifact holds the future only; the video starts at the
   present, as the official rollout does (its first frame is the current one).
3. render: `sensors.render.run_render` of that sequence at 12 fps (ego pose interpolated between
   keyframes), the six cameras in the video model's ring order, LiDAR on: 6H + 1 >= N frames, of
   which the first N are the conditions.
4. video: with a video model, the colourised conditions (`finetune_data.condition_frames`, the
   same colours the model was trained on) go through `rollout.generate_video` in chunks seeded by
   the last frame of the previous chunk. Without one, the condition video itself is written.

generations/<name>/
    manifest.json     resolved request, ids (dataset, world model, video model), the forecast and
                      render artifacts used, "video": "generated" | "conditions"
    run.json          the run's keyframes (token, time, observed | forecast, labels.npz file), where
                      its forecast, render (LiDAR) and video model are, and per video frame its time,
                      source keyframe, occupancy file and LiDAR sweep
    CAM_*.mp4         one per view (ring order), N frames, 12 fps, H.264
    grid.mp4          the six views as a 2 x 3 ring mosaic, view names and time on every frame
    side_by_side.mp4  top-down occupancy with the ego path | the six views | LiDAR bird's-eye view

The artifact id hashes the request (scene, start frame, trajectory, frames, resolution, views,
sampling settings) and the input ids (dataset, world model, video model, prompt embeddings), so it
is known before any stage runs: a repeated request is reused at once, and a --name clash is
reported before anything is written. Every flag is checked before the first stage runs.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..console import ui
from ..data.dataset import OccDataset, Scene
from ..data.demo_world import open_dataset
from ..data.sequence import OccupancySequence
from ..data.preview import write_mp4
from ..errors import BadInput, TrajectoryTooShort
from ..limits import MAX_HORIZON, MAX_VIDEO_FRAMES, check_memory
from ..runtime.distributed import resolve_device
from ..occworld.forecast import (Trajectory, check_speed, default_start, plan_trajectory,
                                 report_safety, resolve_world, run_forecast, world_model_folder, world_model_id)
from ..data.scene import KEYFRAME_DT
from ..sensors.camera import colorize, labelled_grid, render_memory_bytes
from .requests import GenerateRequest
from .side_by_side import SideBySide
from ..occworld.requests import ForecastRequest
from ..sensors.render import parse_resolution, render as render_sequence, run_render
from ..sensors.render_request import RenderRequest
from ..store import Workspace, artifact_id, publish
from ..store.artifacts import read_manifest, reusable_artifact, say_reused
from ..store.fingerprint import folder_fingerprint
from ..store.names import check_name, default_name
from .configs import OFFICIAL_VIEWS, VideoConfig
from .finetune_data import condition_frames
from .finetune_plan import find_video_model
from .generation_inputs import (FirstFrames, PromptPlan, check_image_encoder, first_frames, prompt_plan,
                                resolve_prompts)
from .loading import IMAGE_ENCODER_DIR, VideoModel, load_encoder, load_video_model, require_vae
from .rollout import (ChunkReport, GenerationSettings, check_frames, check_resolution, chunk_starts,
                      generate_video)

SCHEMA = 4  # 2: side_by_side.mp4, labelled grid.mp4, the safety report; 3: first frames, CLIP, full_ref, umT5 prompts; 4: run.json lists the keyframes (no occupancy folder)
KIND = "generation"
FPS = 12.0  # video rate (official: 12 fps); keyframes are 2 Hz, so 6 frames per keyframe interval
FRAMES_PER_KEYFRAME = 6
DEFAULT_RESOLUTION = (256, 512)  # official video resolution (height, width)
TEMPORAL_MULTIPLE = 4  # Wan VAE: frame counts 4k + 1
MAX_FRAMES = MAX_VIDEO_FRAMES  # 3601: 5 minutes
MAX_SAMPLING_STEPS = 1000
MAX_GUIDANCE = 100.0


@dataclass
class Plan:
    """A request with every flag checked and every reference resolved; nothing written yet."""

    ds: OccDataset
    scene: Scene
    start: int
    horizon: int  # future keyframes to forecast
    trajectory: Trajectory  # the commanded ego poses [H, 4, 4] in the start frame, commands, description
    resolution: tuple[int, int]
    views: tuple[str, ...]
    video: VideoModel | None
    video_dir: Path | None
    settings: GenerationSettings | None
    prompts: PromptPlan | None  # with a video model: where its prompt embeddings come from
    first: FirstFrames | None  # with a video model: the reference frame of round 0
    id_fields: dict
    inputs: dict
    ident: str
    name: str


# --------------------------------------------------------------------------------------------
# Checking the request
# --------------------------------------------------------------------------------------------


def video_memory_bytes(views: int, frames: int, height: int, width: int, sampled: bool) -> float:
    """Memory a generation holds at once: the uint8 condition video [V, N, H, W, 3] and, when a video
    model samples it, the float32 output and its uint8 copy, plus one frame of the camera renderer."""
    pixels = views * frames * height * width
    return pixels * 3 * (1 + (5 if sampled else 0)) + render_memory_bytes(views, height, width)


def forecast_horizon(frames: int) -> int:
    """Future 2 Hz keyframes that cover `frames` 12 fps frames counted from the current keyframe."""
    return max(1, math.ceil((frames - 1) / FRAMES_PER_KEYFRAME))


def _check_resolution(text: str | None, config: VideoConfig | None) -> tuple[int, int]:
    if text is None:
        return tuple(config.resolution) if config is not None else DEFAULT_RESOLUTION
    height, width = parse_resolution(text)
    if config is not None:
        return check_resolution(height, width, config.pixel_multiple)
    if height % 2 or width % 2:
        # H.264 in yuv420p halves the chroma planes: odd sizes cannot be encoded
        even = sorted({(max(2, height // 2 * 2), max(2, width // 2 * 2)), (height + height % 2, width + width % 2)})
        raise BadInput(f"--resolution {text}: H.264 video needs an even height and width; nearest valid: "
                       + " or ".join(f"{h}x{w}" for h, w in even))
    return height, width


def _settings(req: GenerateRequest, config: VideoConfig) -> GenerationSettings:
    """The video model's sampling defaults with the given flags applied, each checked."""
    base = GenerationSettings.from_config(config)
    settings = dataclasses.replace(
        base,
        steps=base.steps if req.steps is None else req.steps,
        guidance=base.guidance if req.guidance is None else req.guidance,
        chunk_frames=base.chunk_frames if req.chunk_frames is None else req.chunk_frames,
        seed=base.seed if req.seed is None else req.seed,
    )
    if not 1 <= settings.steps <= MAX_SAMPLING_STEPS:
        raise BadInput(f"--steps {settings.steps}: must be at least 1 sampling step and at most {MAX_SAMPLING_STEPS} "
                       "(official: 50)")
    if not (math.isfinite(settings.guidance) and 0 < settings.guidance <= MAX_GUIDANCE):
        raise BadInput(f"--guidance {settings.guidance}: must be a number in (0, {MAX_GUIDANCE:g}] (official: 6.0; 1.0 = none)")
    stride = config.vae.temporal_stride
    check_frames(settings.chunk_frames, "--chunk-frames", stride)
    if settings.chunk_frames < 1 + stride:
        # a one-frame chunk is all seam: rollout would never advance
        raise BadInput(f"--chunk-frames {settings.chunk_frames}: must be at least {1 + stride} (official: 81)")
    return settings


def _read_prompts(path: str, config: VideoConfig) -> tuple[dict[str, torch.Tensor], str]:
    """Precomputed prompt embeddings: {"prompt": [1, L, D], "negative"?: [1, L, D]}, and a digest."""
    from safetensors.torch import load_file

    file = Path(path)
    if not file.is_file():
        raise BadInput(f"--prompt-embeds {file}: no such file; pass a safetensors file with a 'prompt' tensor "
                       f"[L, {config.transformer.text_dim}] (and optionally 'negative')")
    try:
        tensors = load_file(str(file))
    except Exception as exc:  # a pickle, garbage, a truncated file
        raise BadInput(f"--prompt-embeds {file}: not a readable safetensors file ({type(exc).__name__}); "
                       "write it with safetensors.torch.save_file") from None
    if "prompt" not in tensors:
        raise BadInput(f"--prompt-embeds {file}: no 'prompt' tensor (has {', '.join(sorted(tensors)) or 'none'})")
    out = {}
    for key in ("prompt", "negative"):
        if key not in tensors:
            continue
        t = tensors[key].float()
        t = t[None] if t.ndim == 2 else t
        if t.ndim != 3 or t.shape[0] != 1 or t.shape[-1] != config.transformer.text_dim:
            raise BadInput(f"--prompt-embeds {file}: '{key}' has shape {tuple(tensors[key].shape)}, the video "
                           f"model needs [L, {config.transformer.text_dim}]")
        out[key] = t
    return out, hashlib.sha256(file.read_bytes()).hexdigest()[:16]


def _video_model_id(folder: Path) -> str:
    """A finetune-video artifact's id; for a loose folder, a digest of its files' names, sizes and times
    (hashing gigabytes of weights on every run would cost more than the check is worth)."""
    manifest = read_manifest(folder)
    if manifest and manifest.get("id"):
        return manifest["id"]
    return artifact_id("video-model-folder", 2, {"path": str(folder.resolve()), "files": folder_fingerprint(folder)})


def _check_rig(scene: Scene, views: tuple[str, ...]) -> None:
    have = [c.name for c in scene.rig.cameras]
    missing = [v for v in views if v not in have]
    if missing:
        raise BadInput(f"--scene {scene.name}: its rig lacks {', '.join(missing)} (has {', '.join(have)}); "
                       "video needs the six ring cameras")


def _trajectory(req: GenerateRequest, scene: Scene, start: int, horizon: int) -> Trajectory:
    """The commanded trajectory, planned once (run_forecast is given it).

    Unknown names and bad waypoint files exit 2 here. A logged (`gt`) or waypoint trajectory too
    short for the frames is reported against --frames, the flag this command has (not --horizon).
    """
    try:
        return plan_trajectory(scene, start, req.traj, horizon, req.speed)
    except TrajectoryTooShort as exc:
        if req.traj == "gt" and exc.available < 1:
            raise BadInput(f"--traj gt: scene '{scene.name}' has no logged keyframe after the start frame "
                           f"{start}; choose a named trajectory or a waypoint file") from None
        most = (exc.available * FRAMES_PER_KEYFRAME) // TEMPORAL_MULTIPLE * TEMPORAL_MULTIPLE + 1
        raise BadInput(f"--frames {req.frames}: --traj {req.traj} covers {exc.available} keyframes "
                       f"({exc.available * KEYFRAME_DT:g} s) after frame {start}, {horizon} needed; "
                       f"pass --frames {most} or fewer") from None


def plan_generation(ws: Workspace, req: GenerateRequest) -> Plan:
    """Check every flag and resolve every reference, in flag order; raises BadInput, writes nothing."""
    if req.name is not None:
        check_name(req.name)
    check_frames(req.frames, "--frames", TEMPORAL_MULTIPLE)
    if req.frames > MAX_FRAMES:
        raise BadInput(f"--frames {req.frames}: at most {MAX_FRAMES} ({MAX_HORIZON} forecast keyframes, "
                       f"{(MAX_FRAMES - 1) / FPS:g} s at {FPS:g} fps)")
    video, video_dir, settings, prompts, prompt_id = None, None, None, None, None
    if req.video_model is not None:
        video_dir = find_video_model(ws, req.video_model)
        video = load_video_model(video_dir, encoders=False)  # the encoders are loaded when used
        require_vae(video, video_dir)
        settings = _settings(req, video.config)
        embeds = None
        if req.prompt_embeds is not None:
            embeds, prompt_id = _read_prompts(req.prompt_embeds, video.config)
        prompts = prompt_plan(video_dir, embeds)
    elif req.prompt_embeds is not None:
        raise BadInput("--prompt-embeds: only used with --video-model; drop it or pass a video model")
    config = None if video is None else video.config
    resolution = _check_resolution(req.resolution, config)
    views = config.multiview.views if config else OFFICIAL_VIEWS
    check_memory(video_memory_bytes(len(views), req.frames, *resolution, video is not None),
                 f"{req.frames} frames x {len(views)} views at {resolution[0]}x{resolution[1]}",
                 "--resolution/--frames", "pass a smaller --resolution or fewer --frames")

    check_speed(req.speed)
    ds = open_dataset(req.dataset, ws.root)
    names = ds.scene_names()
    if not names:
        raise BadInput(f"--dataset {ds.name}: holds no scenes; make one with `gdrive prepare-occ`")
    scene = ds.scene(req.scene or names[0])
    start = default_start(scene)  # where run_forecast starts
    horizon = forecast_horizon(req.frames)
    trajectory = _trajectory(req, scene, start, horizon)
    poses, traj_desc = trajectory.poses, trajectory.description
    _check_rig(scene, views)
    first = None
    if video is not None:
        first = first_frames(ds, scene, start, views)
        check_image_encoder(video_dir, video, first)
    world = resolve_world(req.world, scene)
    inputs = {"dataset": ds.id}
    if world == "model":
        inputs["world_model"] = world_model_id(world_model_folder(ws, req.model))

    id_fields = {"scene": scene.name, "frame": start, "traj": traj_desc, "horizon": horizon, "world": world,
                 "poses": np.round(poses, 6).tolist(), "frames": req.frames, "fps": FPS,
                 "resolution": list(resolution), "views": list(views),
                 "video": "conditions" if video is None else "generated"}
    if video is not None:
        id_fields["settings"] = dataclasses.asdict(settings)
        id_fields["prompts"] = prompts.source
        id_fields["first_frame"] = first.id_field()
        inputs["video_model"] = _video_model_id(video_dir)
        if prompt_id:
            inputs["prompt_embeds"] = prompt_id
    ident = artifact_id("generate", SCHEMA, id_fields, inputs)
    label = traj_desc.get("name", traj_desc["kind"])
    name = req.name or default_name(f"{ds.name}-{scene.name}-{label}-{req.frames}f", ident)  # the dataset too
    reusable_artifact(ws, KIND, name, ident, req.force)  # a --name clash exits 2 before any stage runs
    return Plan(ds, scene, start, horizon, trajectory, resolution, views, video, video_dir, settings, prompts,
                first, id_fields, inputs, ident, name)


# --------------------------------------------------------------------------------------------
# Video
# --------------------------------------------------------------------------------------------


class _GridFrames:
    """The 2 x 3 ring mosaic of frame i of video [V, N, H, W, 3], made when the MP4 writer asks."""

    def __init__(self, video: np.ndarray, views: tuple[str, ...]):
        self.video, self.views = video, views

    def __len__(self) -> int:
        return self.video.shape[1]

    def __getitem__(self, i: int) -> np.ndarray:
        if not 0 <= i < len(self):
            raise IndexError(i)
        return labelled_grid(self.video[:, i], self.views, i / FPS)


def sample_video(video: VideoModel, video_dir: Path, conditions: np.ndarray, settings: GenerationSettings,
                 prompts: PromptPlan, first: FirstFrames | None, device: torch.device) -> np.ndarray:
    """conditions uint8 [V, N, H, W, 3] -> generated uint8 [V, N, H, W, 3], by chunked rollout of the
    video model (views in its ring order); `first`: the reference frames of round 0, or None."""
    embeds = resolve_prompts(prompts, video_dir, video, device)
    size = conditions.shape[2:4]
    reference, clip_images = first.load(size) if first is not None else (None, None)
    if reference is not None and video.config.transformer.i2v:
        video.image_encoder = load_encoder(video_dir, IMAGE_ENCODER_DIR)
    model = video.to(device)
    rounds = len(chunk_starts(conditions.shape[1], settings.chunk_frames))
    with ui.progress(f"generating {conditions.shape[1]} frames x {conditions.shape[0]} views", rounds) as bar:
        def on_chunk(report: ChunkReport) -> None:
            bar.advance(status=f"frames {report.start}-{report.start + report.frames.shape[1] - 1}")

        # uint8 stays uint8 (encode_video reads it as 0..255): a quarter of the memory of floats
        cond = torch.from_numpy(conditions).permute(0, 1, 4, 2, 3)
        # on CUDA the networks compute in bfloat16 as the official pipeline (weight_dtype bf16); the
        # Euler updates stay float32 (sample_latents); on the CPU everything is float32
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=device.type == "cuda"):
            out = generate_video(model.transformer, model.vae, model.config, cond, settings,
                                 first_frame=reference, first_clip_image=clip_images, image_encoder=model.image_encoder,
                                 prompt_embeds=embeds.get("prompt"), negative_embeds=embeds.get("negative"),
                                 on_chunk=on_chunk)
    return (out.clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 1, 3, 4, 2).numpy()


@dataclass
class Video:
    """Multi-view video: frames uint8 [V, N, H, W, 3] of `views` at `fps`; `generated` False when it
    is the condition video (no video model)."""

    frames: np.ndarray
    views: tuple[str, ...]
    fps: float
    generated: bool


def frames_covered(sequence: OccupancySequence) -> int:
    """The most 4k + 1 frames at 12 fps that a sequence's keyframes span."""
    n = (len(sequence) - 1) * FRAMES_PER_KEYFRAME + 1
    return (n - 1) // TEMPORAL_MULTIPLE * TEMPORAL_MULTIPLE + 1


def generate(sequence: OccupancySequence, frames: int | None = None, video_model: str | Path | None = None,
             resolution: tuple[int, int] | None = None, settings: GenerationSettings | None = None,
             prompt_embeds: dict[str, torch.Tensor] | None = None, first: FirstFrames | None = None,
             device: str = "auto") -> Video:
    """Multi-view driving video of `sequence` (e.g. a scene's current keyframe then a forecast:
    `forecast(...).sequence(with_current=True)`): its six cameras rendered at 12 fps, colourised as
    the video model sees them, and sampled by the video model in `video_model` (a finetune-video or
    import-weights folder) or, without one, returned as the condition video. `frames`: 4k + 1
    (default: as many as the keyframes span)."""
    frames = frames_covered(sequence) if frames is None else frames
    check_frames(frames, "--frames", TEMPORAL_MULTIPLE)
    if frames > frames_covered(sequence):
        raise BadInput(f"--frames {frames}: {len(sequence)} keyframes span {frames_covered(sequence)} frames at "
                       f"{FPS:g} fps; forecast a longer horizon or ask for fewer")
    video = load_video_model(Path(video_model), encoders=False) if video_model is not None else None
    if video is not None:
        require_vae(video, Path(video_model))
        settings = settings or GenerationSettings.from_config(video.config)
    config = None if video is None else video.config
    height, width = _check_resolution(None if resolution is None else "x".join(map(str, resolution)), config)
    views = config.multiview.views if config else OFFICIAL_VIEWS
    check_memory(video_memory_bytes(len(views), frames, height, width, video is not None),
                 f"{frames} frames x {len(views)} views at {height}x{width}", "--resolution/--frames",
                 "pass a smaller --resolution or fewer --frames")
    rendering = render_sequence(sequence, list(views), (height, width), FPS, lidar=False, device=device)
    conditions = np.stack([colorize(f.cameras) for f, _ in zip(rendering, range(frames))], 1)  # [V, N, H, W, 3]
    if video is None:
        return Video(conditions, tuple(views), FPS, False)
    out = sample_video(video, Path(video_model), conditions, settings, prompt_plan(Path(video_model), prompt_embeds),
                       first, resolve_device(device))
    return Video(out, tuple(views), FPS, True)


def _frame_links(render: Path, sequence: OccupancySequence, frames: int) -> list[dict]:
    """Per video frame: its time, source keyframe, occupancy file and LiDAR sweep (render-relative)."""
    meta = json.loads((render / "frames.json").read_text())
    files = dict(zip(sequence.tokens, sequence.files))
    return [{"index": i, "t_s": f["t_s"], "keyframe": f["keyframe"], "occupancy": str(files[f["keyframe"]]),
             "cameras": f["cameras"], "lidar": f.get("lidar")}
            for i, f in enumerate(meta["frames"][:frames])]


# --------------------------------------------------------------------------------------------
# The stage
# --------------------------------------------------------------------------------------------


def _summary(art_path: Path, manifest: dict, reused: bool) -> dict:
    keys = ("video", "frames", "fps", "resolution", "views", "files", "world", "forecast", "render", "occupancy",
            "video_model", "safety")
    return {"name": art_path.name, "id": manifest["id"], "path": str(art_path), "reused": reused,
            **{k: manifest.get(k) for k in keys if k in manifest}}


def run_generate(ws: Workspace, req: GenerateRequest) -> dict:
    """Forecast, render and generate (or reuse each); returns a summary for printing and --json."""
    plan = plan_generation(ws, req)
    ident = plan.ident
    existing = reusable_artifact(ws, KIND, plan.name, ident, req.force)
    if existing is not None:
        say_reused(KIND, plan.name, ident)
        report_safety(existing.manifest.get("safety"))
        return _summary(existing.path, existing.manifest, True)
    n, (height, width) = req.frames, plan.resolution
    world = ("the simulator (re-simulated along the trajectory)" if plan.id_fields["world"] == "simulator"
             else "the world model")
    ui.info(f"generate: {n} frames ({(n - 1) / FPS:g} s at {FPS:g} fps) of '{plan.scene.name}' under {req.traj}: "
            f"{plan.horizon} keyframes from {world}, render at {height}x{width}, "
            + ("condition video (no --video-model)" if plan.video is None else f"video model {plan.video_dir}"))
    if plan.video is not None:
        ui.info(f"first frame: {plan.first.note}; prompts: {plan.prompts.note}")

    forecast = run_forecast(ws, ForecastRequest(
        scene=plan.scene.name, traj=req.traj, dataset=str(plan.ds.root), model=req.model, horizon=plan.horizon,
        speed=req.speed, adherence=False, device=req.device, force=req.force, world=plan.id_fields["world"]),
        plan.trajectory)
    # the video starts at the present, as the official rollout does: the current keyframe, then the forecast
    future = OccupancySequence.from_folder(Path(forecast["path"]), plan.scene.rig, "forecast")
    occupancy = OccupancySequence.from_scene(plan.scene, [plan.start]).then(future)
    render = run_render(ws, RenderRequest(
        cameras=",".join(plan.views), resolution=f"{height}x{width}", lidar=True, fps=FPS,
        previews=False, device=req.device, force=req.force), occupancy)
    render_dir = Path(render["path"])
    if render["frames"] < n:  # 6H + 1 >= N by construction; a wrong cached render must not pass silently
        raise RuntimeError(f"render '{render['name']}' has {render['frames']} frames, {n} needed")

    config = dataclasses.asdict(req)
    config["resolved"] = {"scene": plan.scene.name, "start_frame": plan.start, "horizon": plan.horizon,
                          "resolution": list(plan.resolution), "views": list(plan.views), "fps": FPS}
    if plan.video is not None:
        config["resolved"]["settings"] = dataclasses.asdict(plan.settings)
        # generate_video skips CFG without a prompt
        config["resolved"]["guidance_applied"] = plan.prompts.source != "none"
        config["resolved"]["prompts"] = plan.prompts.note
        config["resolved"]["first_frame"] = plan.first.note

    def build(w) -> dict:
        ui.info(f"reading {n} condition frames from render '{render['name']}'")
        frames = condition_frames(render_dir, plan.views, list(range(n)))  # [V, N, H, W, 3] uint8
        if plan.video is not None:
            frames = sample_video(plan.video, plan.video_dir, frames, plan.settings, plan.prompts, plan.first,
                                  resolve_device(req.device))
        files = []
        with ui.progress("writing video", len(plan.views) + 1) as bar:
            for v, view in enumerate(plan.views):
                write_mp4(w.path(f"{view}.mp4"), list(frames[v]), FPS)
                files.append(f"{view}.mp4")
                bar.advance()
            write_mp4(w.path("grid.mp4"), _GridFrames(frames, plan.views), FPS)
            files.append("grid.mp4")
            write_mp4(w.path("side_by_side.mp4"), SideBySide(frames, plan.views, occupancy, render_dir, FPS), FPS)
            files.append("side_by_side.mp4")
            bar.advance()
        stages = {
            "forecast": {k: forecast[k] for k in ("name", "id", "path")},
            "render": {**{k: render[k] for k in ("name", "id", "path")}, "lidar": str(render_dir / "lidar")},
            "occupancy": [{"token": t, "t_s": float(ts), "source": src, "file": str(f)}
                          for t, ts, src, f in zip(occupancy.tokens, occupancy.times, occupancy.sources, occupancy.files)],
            "safety": forecast.get("safety"),  # the forecast stage's report (metrics/safety.py)
            "video_model": None if plan.video is None else {
                "path": str(plan.video_dir), "id": plan.inputs["video_model"], "config": plan.video.config.to_dict(),
                "first_frame": plan.first.note, "prompts": plan.prompts.note},
        }
        w.write_json("run.json", {
            "workspace": str(ws.root), "scene": plan.scene.name, "dataset": plan.ds.name, "fps": FPS, "frames": n,
            "video": plan.id_fields["video"], "views": list(plan.views), **stages,
            "frame_links": _frame_links(render_dir, occupancy, n)})
        return {"video": plan.id_fields["video"], "frames": n, "fps": FPS, "resolution": list(plan.resolution),
                "views": list(plan.views), "files": files, "world": plan.id_fields["world"], **stages}

    # (reused here: another run published it while this one forecast and rendered)
    res = publish(ws, KIND, "generate", SCHEMA, plan.name, config, plan.id_fields, plan.inputs, build, force=req.force,
                  noun=KIND)
    return _summary(res.artifact.path, res.artifact.manifest, res.reused)
