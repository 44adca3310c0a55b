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
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
from PIL import Image
from scipy.spatial.transform import Rotation, Slerp

from ..console import ui
from ..data.dataset import frame_range
from ..data.demo_world import open_dataset
from ..data.occ3d import load_labels, npz_bytes
from ..data.preview import write_mp4
from ..data.rig import Rig, default_rig, read_rig_file
from ..data.scene import KEYFRAME_HZ
from ..errors import BadInput
from ..limits import MAX_FPS, MAX_IMAGE_SIDE, check_memory
from ..runtime.distributed import resolve_device
from .camera import colorize, labelled_grid, render_cameras, render_memory_bytes
from .lidar import lidar_sweep, range_image, topdown_image, write_pcd_bin, write_point_labels
from ..store import Workspace, artifact_id, publish
from ..store.artifacts import find_artifact, read_manifest
from ..store.names import check_component, check_name, default_name

SCHEMA = 2  # 2: labelled camera grids, lidar_topdown.mp4


@dataclass
class RenderRequest:
    dataset: str | None = None
    scene: str | None = None
    occ: str | None = None  # an Occ3D-layout folder or a forecast name
    rig: str | None = None  # a rig JSON file (default: the scene's rig, or the folder's rig.json, or nuScenes)
    cameras: str | None = None  # comma-separated names; None: all
    resolution: str = "256x512"  # HEIGHTxWIDTH
    lidar: bool = True
    fps: float = 12.0
    repeat: int | None = None
    frames: str | None = None  # keyframe slice a:b
    name: str | None = None
    previews: bool = True
    device: str = "auto"
    force: bool = False


@dataclass
class Sequence:
    """Keyframes to render: occupancy loader, tokens, ego poses in one frame, times, rig, instances."""

    name: str
    tokens: list[str]
    poses: np.ndarray  # [K, 4, 4]
    times: np.ndarray  # [K] seconds
    rig: Rig
    load: Callable[[int], np.ndarray]  # i -> semantics [200, 200, 16]
    instances: Callable[[int], np.ndarray | None]  # i -> [200, 200, 16] uint16 or None
    source: dict  # id fields describing the source
    label: str = ""  # what default names start with: where the keyframes come from, and the scene


def parse_resolution(text: str) -> tuple[int, int]:
    try:
        h, w = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise BadInput(f"--resolution '{text}': give HEIGHTxWIDTH, e.g. 256x512 or 450x800") from None
    if not (0 < h <= MAX_IMAGE_SIDE and 0 < w <= MAX_IMAGE_SIDE):
        raise BadInput(f"--resolution {text}: height and width must be 1..{MAX_IMAGE_SIDE} pixels, e.g. 256x512 "
                       "or 900x1600 (nuScenes)")
    return h, w


def _occ_folder(ws: Workspace, ref: str) -> Path:
    folder = Path(ref)
    if folder.is_dir():
        return folder
    return find_artifact(ws, "forecast", ref, "--occ").path


def open_sequence(ws: Workspace, req: RenderRequest) -> Sequence:
    if (req.occ is None) == (req.scene is None):
        raise BadInput("--scene/--occ: give either --dataset D --scene X or --occ FOLDER (Occ3D layout), not both")
    if req.scene is not None:
        ds = open_dataset(req.dataset or "latest", ws.root)
        scene = ds.scene(req.scene)
        rig = read_rig_file(Path(req.rig), "--rig") if req.rig else scene.rig
        times = (scene.timestamps_us - scene.timestamps_us[0]) / 1e6
        frames = scene.frames
        return Sequence(scene.name, [f.token for f in frames], scene.poses, times, rig,
                        scene.semantics, lambda i: frames[i].instance_grid(),
                        {"dataset": ds.id, "scene": scene.name}, f"{ds.name}-{scene.name}")
    folder = _occ_folder(ws, req.occ)
    files = sorted(folder.glob("gts/*/*/labels.npz"))
    if not files:
        raise BadInput(f"--occ {folder}: no gts/<scene>/<token>/labels.npz inside; give an Occ3D-layout folder "
                       f"(a forecast: gdrive forecast --scene X --traj straight)")
    scenes = sorted({f.parent.parent.name for f in files})
    for n in scenes:
        check_component(n, f"--occ {folder}", "scene folder name")
    if len(scenes) > 1:
        raise BadInput(f"--occ {folder}: holds scenes {', '.join(scenes)}; render one at a time from a folder with one scene")
    poses, times, dataset = None, None, None
    meta = folder / "frames.json"
    if meta.is_file():  # a forecast: keyframe order, times and poses in its start frame
        order, poses, times, dataset = _forecast_frames(meta)
        by_token = {f.parent.name: f for f in files}
        files = [by_token[t] for t in order if t in by_token]
    if poses is None or len(poses) != len(files):
        poses = np.repeat(np.eye(4)[None], len(files), 0)  # unknown motion: keyframes in place
        times = np.arange(len(files)) / KEYFRAME_HZ
    if req.rig:
        rig = read_rig_file(Path(req.rig), "--rig")
    elif (folder / "rig.json").is_file():
        rig = read_rig_file(folder / "rig.json", "--occ")
    else:
        rig = default_rig()
    digest = artifact_id("occ-folder", 1, {"files": [str(f.relative_to(folder)) for f in files],
                                            "sizes": [f.stat().st_size for f in files],
                                            "mtimes": [f.stat().st_mtime_ns for f in files]}, {})
    return Sequence(scenes[0], [f.parent.name for f in files], poses, times, rig,
                    lambda i: load_labels(files[i], require_masks=False)["semantics"], lambda i: None,
                    {"occ": str(folder.resolve()), "content": digest}, _occ_label(folder, scenes[0], dataset))


def _occ_label(folder: Path, scene: str, dataset: str | None) -> str:
    """What renders of an --occ folder are named after: a forecast's name (it carries its dataset
    and scene), the dataset named in generate's own occupancy's frames.json, else the folder."""
    manifest = read_manifest(folder) or {}
    if manifest.get("kind") == "forecast" and manifest.get("name"):
        return str(manifest["name"])
    return f"{dataset or folder.name}-{scene}"


def _forecast_frames(meta: Path) -> tuple[list[str], np.ndarray, np.ndarray, str | None]:
    """A forecast's frames.json: (tokens, ego poses [K, 4, 4] in its start frame, times [K] s, the
    dataset it names or None)."""
    try:
        info = json.loads(meta.read_text())
        dataset = info.get("dataset") if isinstance(info.get("dataset"), str) and info.get("dataset") else None
        order = [check_component(e["token"], str(meta), "frame token") for e in info["frames"]]
        poses = np.array([e["ego_in_start"] for e in info["frames"]], np.float64).reshape(len(order), 4, 4)
        times = np.array([e["t_s"] for e in info["frames"]], np.float64).reshape(len(order))
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise BadInput(f"--occ {meta}: not a forecast's frames.json ({type(exc).__name__}); remove it to render the "
                       "folder's keyframes in place, or forecast again") from None
    if not (np.isfinite(poses).all() and np.isfinite(times).all()):
        raise BadInput(f"--occ {meta}: holds a non-finite pose or time; forecast again")
    return order, poses, times, dataset


def interpolate_pose(a: np.ndarray, b: np.ndarray, w: float) -> np.ndarray:
    """Pose between `a` (w = 0) and `b` (w = 1): linear translation, spherical rotation."""
    rots = Rotation.from_matrix(np.stack([a[:3, :3], b[:3, :3]]))
    out = np.eye(4)
    out[:3, :3] = Slerp([0.0, 1.0], rots)([w]).as_matrix()[0]
    out[:3, 3] = (1 - w) * a[:3, 3] + w * b[:3, 3]
    return out


def output_frames(seq: Sequence, keys: list[int], fps: float, repeat: int | None) -> list[dict]:
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


def _check(req: RenderRequest) -> tuple[int, int]:
    if req.name is not None:
        check_name(req.name)
    hw = parse_resolution(req.resolution)
    if req.repeat is not None and not 1 <= req.repeat <= MAX_FPS:
        raise BadInput(f"--repeat {req.repeat}: must be a positive number of copies per keyframe, at most "
                       f"{MAX_FPS:g} (official: 6)")
    if not (0 < req.fps <= MAX_FPS and math.isfinite(req.fps)) or abs(req.fps / KEYFRAME_HZ - round(req.fps / KEYFRAME_HZ)) > 1e-9:
        raise BadInput(f"--fps {req.fps}: must be a positive multiple of the 2 Hz keyframe rate, at most {MAX_FPS:g} "
                       "(2, 4, ..., 12)")
    return hw


def run_render(ws: Workspace, req: RenderRequest) -> dict:
    height, width = _check(req)
    seq = open_sequence(ws, req)
    names = [c.strip() for c in req.cameras.split(",") if c.strip()] if req.cameras else [c.name for c in seq.rig.cameras]
    cams = [seq.rig.camera(n) for n in names]  # unknown names exit 2 listing the rig's cameras
    check_memory(render_memory_bytes(len(cams), height, width), f"rendering {len(cams)} cameras at {height}x{width}",
                 f"--resolution {req.resolution}", "pass a smaller --resolution or fewer --cameras")
    keys = list(frame_range(req.frames, len(seq.tokens)))
    fps = KEYFRAME_HZ * req.repeat if req.repeat else req.fps
    plan = output_frames(seq, keys, req.fps, req.repeat)
    scaled = [c.scaled(width, height) for c in cams]
    rig_out = Rig(scaled, seq.rig.lidar, seq.rig.name, seq.rig.meta)
    id_fields = {"source": seq.source, "keyframes": keys, "cameras": names, "resolution": [height, width],
                 "lidar": req.lidar, "fps": fps, "repeat": req.repeat, "rig": rig_out.to_dict()}
    ident = artifact_id("render", SCHEMA, id_fields, {})
    # the default name carries where the keyframes come from: three renders of one scene from three
    # datasets differed only by their hash
    name = req.name or default_name(f"{seq.label or seq.name}-{height}x{width}", ident)
    device = resolve_device(req.device)

    def build(w) -> dict:
        w.write_json("rig.json", rig_out.to_dict())
        frames, grid_frames, bev_frames, cache = [], [], [], {}
        with ui.progress(f"rendering {seq.name}", len(plan)) as bar:
            for i, f in enumerate(plan):
                entry = {"index": i, "t_s": f["t_s"], "keyframe": seq.tokens[f["key"]], "ego_in_keyframe": f["ego_pose"].tolist()}
                if f["render"]:
                    if f["key"] not in cache:
                        cache.clear()
                        cache[f["key"]] = (seq.load(f["key"]), seq.instances(f["key"]))
                    sem, inst = cache[f["key"]]
                    r = render_cameras(sem, cams, width, height, device=device, ego_pose=f["ego_pose"])
                    labels, depth, alpha = (t.cpu().numpy() for t in (r.labels, r.depth, r.alpha))
                    w.write_bytes(f"cameras/{i:06d}.npz", npz_bytes({
                        "labels": labels, "depth": depth.astype(np.float16),
                        "alpha": np.round(alpha * 255).astype(np.uint8)}))
                    src = i
                    if req.previews:
                        views = colorize(r)  # [V, H, W, 3], labelled per output frame below
                    if req.lidar:
                        sweep = lidar_sweep(sem, seq.rig.lidar, inst, f["ego_pose"])
                        write_pcd_bin(w.path(f"lidar/{i:06d}.pcd.bin"), sweep)
                        write_point_labels(w.path(f"lidar/{i:06d}.labels.npz"), sweep)
                        bev = topdown_image(sweep)  # the bird's-eye video is part of the LiDAR output
                        if i == 0 and req.previews:
                            Image.fromarray(bev).save(w.path("lidar_topdown.png"))
                            Image.fromarray(range_image(sweep)).save(w.path("lidar_range.png"))
                entry["cameras"] = f"cameras/{src:06d}.npz"
                if req.lidar:
                    entry["lidar"] = f"lidar/{src:06d}.pcd.bin"
                frames.append(entry)
                if req.previews:
                    grid_frames.append(labelled_grid(views, names, f["t_s"]))
                if req.lidar:
                    bev_frames.append(bev)
                bar.advance()
        w.write_json("frames.json", {"scene": seq.name, "cameras": names, "resolution": [height, width], "fps": fps,
                                     "repeat": req.repeat, "frames": frames})
        if req.previews:
            Image.fromarray(grid_frames[0]).save(w.path("preview.png"))
            write_mp4(w.path("cameras.mp4"), grid_frames, fps)
        if bev_frames:
            write_mp4(w.path("lidar_topdown.mp4"), bev_frames, fps)
        return {"frames": len(frames), "keyframes": len(keys), "scene": seq.name}

    res = publish(ws, "render", "render", SCHEMA, name, dataclasses.asdict(req), id_fields, {}, build, force=req.force)
    if res.reused:
        ui.info(f"reusing render '{name}' (id {ident}); pass --force to recompute")
    else:
        ui.info(f"wrote render '{name}' (id {ident}) to {res.artifact.path}")
    return {"name": name, "id": ident, "path": str(res.artifact.path), "reused": res.reused,
            "frames": res.artifact.manifest.get("frames"), "keyframes": res.artifact.manifest.get("keyframes")}
