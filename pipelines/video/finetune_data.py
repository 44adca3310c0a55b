"""The data `finetune-video` trains on: clips of camera video paired with rendered conditions.

Pairs, per training scene and 12 Hz frame (the config's sampling fps):
- condition: the scene's `gdrive render` at the training resolution (run here, or reused when it
  exists), colourised with `sensors.camera.colorize` (palette shaded by depth), as `generate` does;
- target: the dataset's camera image nearest in time to that frame, per camera (nuScenes: the
  keyframe `samples/` and the `sweeps/` in between, ~12 Hz), resized to the resolution.
Views follow the config's ring order. A clip is `--clip-frames` (4k + 1) frames taken every
`--clip-stride` frames (official: 37 frames, stride 2), starting anywhere that keeps it inside
10-90 % of the scene (the whole scene when that window is too short).

The nuScenes camera images are read through the tables the dataset was prepared from (`camera_tracks`);
`generate` reads its first frames with the same `nuscenes_source` and `read_camera_image`.
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ..data.dataset import OccDataset, Scene
from ..errors import BadInput
from ..sensors.camera import CameraRender, colorize
from ..sensors.render import RenderRequest, open_sequence, output_frames
from ..store import Workspace

CLIP_WINDOW = (0.1, 0.9)  # official: clips start and end inside 10-90 % of the video


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


def nuscenes_root(ds: OccDataset) -> tuple[dict, Path]:
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

    cfg, root = nuscenes_root(ds)
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
