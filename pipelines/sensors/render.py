"""`gdrive render`: camera conditions and LiDAR sweeps from one occupancy sequence.

The source is a dataset scene (`--dataset D --scene X`) or any folder in Occ3D layout
(`gts/<scene>/<token>/labels.npz`, such as a forecast or an edited scene; `--occ`). Frames between
2 Hz keyframes are rendered from the nearest keyframe's occupancy at the interpolated ego pose
(`--fps 12`: 6 frames per keyframe interval); `--repeat N` instead repeats each keyframe N times,
as the official conditions do. Camera and LiDAR come from the same grid and ego pose per frame.

renders/<name>/
    manifest.json
    rig.json                     the rig with the cameras at the rendered resolution
    frames.json                  per output frame: time, source keyframe token, ego pose, files
    cameras/<k>.npz              labels [V, H, W] uint8, depth [V, H, W] float16 (m, inf = none),
                                 alpha [V, H, W] uint8 (0-255), views in frames.json "cameras" order
    lidar/<k>.pcd.bin            nuScenes points (x, y, z, intensity, ring) in the LiDAR frame
    lidar/<k>.labels.npz         label, instance, range per point
    preview.png, cameras.mp4     6-view ring grid (official palette, shaded by depth), view names
                                 and time on every frame
    lidar_topdown.mp4            the LiDAR bird's-eye view of every frame (whenever LiDAR is rendered)
    lidar_topdown.png, lidar_range.png   the first frame's sweep
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
import torch
from PIL import Image
from scipy.spatial.transform import Rotation, Slerp

from ..console import ui
from ..data.dataset import frame_range
from ..data.demo_world import open_dataset
from ..data.sequence import OccupancySequence
from ..data.occ3d import npz_bytes
from ..data.preview import write_mp4
from ..data.rig import Rig, read_rig_file
from ..data.scene import KEYFRAME_HZ
from ..errors import BadInput
from ..limits import MAX_FPS, MAX_IMAGE_SIDE, check_memory
from ..runtime.distributed import resolve_device
from .camera import CameraRender, colorize, labelled_grid, render_cameras, render_memory_bytes
from .lidar import LidarSweep, lidar_sweep, range_image, topdown_image, write_pcd_bin, write_point_labels
from .render_request import RenderRequest
from ..store import Workspace, artifact_id, publish
from ..store.artifacts import find_artifact
from ..store.names import check_name, default_name

SCHEMA = 2  # 2: labelled camera grids, lidar_topdown.mp4


def parse_resolution(text: str) -> tuple[int, int]:
    try:
        h, w = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise BadInput(f"--resolution '{text}': give HEIGHTxWIDTH, e.g. 256x512 or 450x800") from None
    return _check_size(h, w, text)


def _check_size(h: int, w: int, text: str) -> tuple[int, int]:
    if not (0 < h <= MAX_IMAGE_SIDE and 0 < w <= MAX_IMAGE_SIDE):
        raise BadInput(f"--resolution {text}: height and width must be 1..{MAX_IMAGE_SIDE} pixels, e.g. 256x512 "
                       "or 900x1600 (nuScenes)")
    return h, w


def _occ_folder(ws: Workspace, ref: str) -> Path:
    folder = Path(ref)
    if folder.is_dir():
        return folder
    return find_artifact(ws, "forecast", ref, "--occ").path


def open_sequence(ws: Workspace, req: RenderRequest) -> OccupancySequence:
    """The keyframes a render request names: a dataset scene or an Occ3D-layout folder (a forecast)."""
    if (req.occ is None) == (req.scene is None):
        raise BadInput("--scene/--occ: give either --dataset D --scene X or --occ FOLDER (Occ3D layout), not both")
    rig = read_rig_file(Path(req.rig), "--rig") if req.rig else None
    if req.scene is not None:
        seq = OccupancySequence.from_scene(open_dataset(req.dataset or "latest", ws.root).scene(req.scene))
        return seq if rig is None else dataclasses.replace(seq, rig=rig)
    return OccupancySequence.from_folder(_occ_folder(ws, req.occ), rig)


def interpolate_pose(a: np.ndarray, b: np.ndarray, w: float) -> np.ndarray:
    """Pose between `a` (w = 0) and `b` (w = 1): linear translation, spherical rotation."""
    rots = Rotation.from_matrix(np.stack([a[:3, :3], b[:3, :3]]))
    out = np.eye(4)
    out[:3, :3] = Slerp([0.0, 1.0], rots)([w]).as_matrix()[0]
    out[:3, 3] = (1 - w) * a[:3, 3] + w * b[:3, 3]
    return out


def output_frames(seq: OccupancySequence, keys: list[int], fps: float, repeat: int | None) -> list[dict]:
    """One entry per output frame: {'key': keyframe rendered, 'ego_pose': 4x4 in that keyframe's
    ego frame, 't_s', 'render': bool (False: repeats the previous render)}."""
    out = []
    if repeat:
        for k in keys:
            for r in range(repeat):
                out.append({"key": k, "ego_pose": np.eye(4), "t_s": float(seq.times[k]) + r / (KEYFRAME_HZ * repeat),
                            "render": r == 0})
        return out
    per = int(round(fps / KEYFRAME_HZ))
    for n, k in enumerate(keys):
        last = n == len(keys) - 1
        for s in range(1 if last else per):
            w = s / per
            nxt = keys[n + 1] if not last else k
            src = k if w < 0.5 else nxt  # the nearest keyframe's occupancy
            pose = interpolate_pose(seq.poses[k], seq.poses[nxt], w)
            t = (1 - w) * seq.times[k] + w * seq.times[nxt]
            out.append({"key": src, "ego_pose": np.linalg.inv(seq.poses[src]) @ pose, "t_s": float(t), "render": True})
    return out


def check_options(resolution: str | tuple[int, int], fps: float, repeat: int | None) -> tuple[int, int]:
    """(height, width) of a valid resolution ('HxW' or a pair); BadInput for a bad size, fps or repeat."""
    if isinstance(resolution, str):
        hw = parse_resolution(resolution)
    else:
        h, w = (int(v) for v in resolution)
        hw = _check_size(h, w, f"{h}x{w}")
    if repeat is not None and not 1 <= repeat <= MAX_FPS:
        raise BadInput(f"--repeat {repeat}: must be a positive number of copies per keyframe, at most "
                       f"{MAX_FPS:g} (official: 6)")
    if not (0 < fps <= MAX_FPS and math.isfinite(fps)) or abs(fps / KEYFRAME_HZ - round(fps / KEYFRAME_HZ)) > 1e-9:
        raise BadInput(f"--fps {fps}: must be a positive multiple of the 2 Hz keyframe rate, at most {MAX_FPS:g} "
                       "(2, 4, ..., 12)")
    return hw


@dataclass
class RenderedFrame:
    """One output frame: cameras (views in `Rendering.names` order) and the LiDAR sweep (None without
    LiDAR), rendered from keyframe `keyframe` of the sequence at `ego_in_keyframe` [4, 4]. With
    `repeated` (--repeat) they are the previous frame's, not rendered again."""

    index: int
    t_s: float
    keyframe: int
    token: str
    ego_in_keyframe: np.ndarray
    cameras: CameraRender
    lidar: LidarSweep | None
    repeated: bool


class Rendering:
    """The frames of a sequence as the cameras and the LiDAR see them, rendered one by one as they
    are iterated (the whole video would not fit in memory at full size)."""

    def __init__(self, sequence: OccupancySequence, names: list[str], height: int, width: int, keyframes: list[int],
                 fps: float, repeat: int | None, lidar: bool, device: torch.device):
        self.sequence, self.names, self.height, self.width = sequence, names, height, width
        self.keyframes, self.repeat, self.lidar, self.device = keyframes, repeat, lidar, device
        self.fps = KEYFRAME_HZ * repeat if repeat else fps
        self._cams = [sequence.rig.camera(n) for n in names]  # unknown names exit 2 listing the rig's cameras
        self.rig = Rig([c.scaled(width, height) for c in self._cams], sequence.rig.lidar, sequence.rig.name,
                       sequence.rig.meta)  # the cameras at the rendered size
        self.plan = output_frames(sequence, keyframes, fps, repeat)

    def __len__(self) -> int:
        return len(self.plan)

    def __iter__(self) -> Iterator[RenderedFrame]:
        seq, loaded, last = self.sequence, None, None
        for i, f in enumerate(self.plan):
            key = f["key"]
            if f["render"] or last is None:
                if loaded is None or loaded[0] != key:  # consecutive frames share their keyframe's grid
                    inst = seq.instances[key] if seq.instances is not None else None
                    loaded = (key, seq.labels[key], inst)
                _, sem, inst = loaded
                cams = render_cameras(sem, self._cams, self.width, self.height, device=self.device,
                                      ego_pose=f["ego_pose"])
                sweep = lidar_sweep(sem, seq.rig.lidar, inst, f["ego_pose"]) if self.lidar else None
                last = (cams, sweep)
            yield RenderedFrame(i, f["t_s"], key, seq.tokens[key], f["ego_pose"], last[0], last[1], not f["render"])


def render(sequence: OccupancySequence, cameras: list[str] | None = None, resolution: str | tuple[int, int] = (256, 512),
           fps: float = 12.0, repeat: int | None = None, lidar: bool = True, keyframes: str | list[int] | None = None,
           device: str = "auto") -> Rendering:
    """The cameras (default: all of the rig's) and LiDAR of `sequence` at `fps` (a multiple of 2 Hz;
    poses interpolated between keyframes) or each keyframe `repeat` times; `keyframes` an 'a:b'
    range or indices (default: all). Checks everything, renders nothing until iterated."""
    height, width = check_options(resolution, fps, repeat)
    names = list(cameras) if cameras else [c.name for c in sequence.rig.cameras]
    check_memory(render_memory_bytes(len(names), height, width), f"rendering {len(names)} cameras at {height}x{width}",
                 f"--resolution {height}x{width}", "pass a smaller --resolution or fewer --cameras")
    if keyframes is None or isinstance(keyframes, str):
        keys = list(frame_range(keyframes, len(sequence)))
    else:
        keys = [int(k) for k in keyframes]
        if not keys or not all(0 <= k < len(sequence) for k in keys):
            raise BadInput(f"keyframes {keys}: the sequence has keyframes 0..{len(sequence) - 1}")
    return Rendering(sequence, names, height, width, keys, fps, repeat, lidar, resolve_device(device))


def run_render(ws: Workspace, req: RenderRequest, sequence: OccupancySequence | None = None) -> dict:
    """`gdrive render`: `render` of the request's sequence (or of `sequence`, as `generate` passes its
    current keyframe and forecast), written as a cached render artifact."""
    if req.name is not None:
        check_name(req.name)
    check_options(req.resolution, req.fps, req.repeat)  # every flag before the scene is read
    seq = sequence if sequence is not None else open_sequence(ws, req)
    names = [c.strip() for c in req.cameras.split(",") if c.strip()] if req.cameras else None
    rendering = render(seq, names, req.resolution, req.fps, req.repeat, req.lidar, req.frames, req.device)
    height, width, names = rendering.height, rendering.width, rendering.names
    id_fields = {"source": seq.provenance, "keyframes": rendering.keyframes, "cameras": names,
                 "resolution": [height, width], "lidar": req.lidar, "fps": rendering.fps, "repeat": req.repeat,
                 "rig": rendering.rig.to_dict()}
    ident = artifact_id("render", SCHEMA, id_fields, {})
    # the default name carries where the keyframes come from: three renders of one scene from three
    # datasets differed only by their hash
    name = req.name or default_name(f"{seq.label or seq.scene}-{height}x{width}", ident)

    def build(w) -> dict:
        w.write_json("rig.json", rendering.rig.to_dict())
        frames, grid_frames, bev_frames = [], [], []
        src = 0
        with ui.progress(f"rendering {seq.scene}", len(rendering)) as bar:
            for f in rendering:
                entry = {"index": f.index, "t_s": f.t_s, "keyframe": f.token, "ego_in_keyframe": f.ego_in_keyframe.tolist()}
                if not f.repeated:
                    src = f.index
                    r = f.cameras
                    labels, depth, alpha = (t.cpu().numpy() for t in (r.labels, r.depth, r.alpha))
                    w.write_bytes(f"cameras/{src:06d}.npz", npz_bytes({
                        "labels": labels, "depth": depth.astype(np.float16),
                        "alpha": np.round(alpha * 255).astype(np.uint8)}))
                    if req.previews:
                        views = colorize(r)  # [V, H, W, 3], labelled per output frame below
                    if f.lidar is not None:
                        write_pcd_bin(w.path(f"lidar/{src:06d}.pcd.bin"), f.lidar)
                        write_point_labels(w.path(f"lidar/{src:06d}.labels.npz"), f.lidar)
                        bev = topdown_image(f.lidar)  # the bird's-eye video is part of the LiDAR output
                        if f.index == 0 and req.previews:
                            Image.fromarray(bev).save(w.path("lidar_topdown.png"))
                            Image.fromarray(range_image(f.lidar)).save(w.path("lidar_range.png"))
                entry["cameras"] = f"cameras/{src:06d}.npz"
                if req.lidar:
                    entry["lidar"] = f"lidar/{src:06d}.pcd.bin"
                    bev_frames.append(bev)
                frames.append(entry)
                if req.previews:
                    grid_frames.append(labelled_grid(views, names, f.t_s))
                bar.advance()
        w.write_json("frames.json", {"scene": seq.scene, "cameras": names, "resolution": [height, width],
                                     "fps": rendering.fps, "repeat": req.repeat, "frames": frames})
        if req.previews:
            Image.fromarray(grid_frames[0]).save(w.path("preview.png"))
            write_mp4(w.path("cameras.mp4"), grid_frames, rendering.fps)
        if bev_frames:
            write_mp4(w.path("lidar_topdown.mp4"), bev_frames, rendering.fps)
        return {"frames": len(frames), "keyframes": len(rendering.keyframes), "scene": seq.scene}

    res = publish(ws, "render", "render", SCHEMA, name, dataclasses.asdict(req), id_fields, {}, build, force=req.force,
                  noun="render")
    return {"name": name, "id": ident, "path": str(res.artifact.path), "reused": res.reused,
            "frames": res.artifact.manifest.get("frames"), "keyframes": res.artifact.manifest.get("keyframes")}
