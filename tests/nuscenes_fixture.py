"""A tiny nuScenes-format folder (tables + maps + Occ3D gts) for tests, with its ground truth.

`build_nuscenes_folder(root)` writes `root/<version>/*.json` (every table `nuscenes.NuScenes`
opens), a map mask PNG per log under `root/maps/`, and Occ3D `root/gts/<scene>/<token>/labels.npz`.
Each scene has its own log with its own calibration (translations, rotations, intrinsics and
image sizes differ per log), an ego that drives and turns with small pitch and roll, camera
keyframes and LiDAR sweeps whose ego poses differ from the LiDAR keyframe's, and annotated boxes
of several categories (some appear late, some leave early; table rows are shuffled). The first
two instances are cars parked side by side, touching, so their grown boxes overlap. Object voxels
are written inside the boxes (the bottom layer of each box is road, not object), plus two small
object blobs outside every box.

Everything is computed here with pyquaternion and plain numpy, independently of the code under
test, and returned so that tests can compare exactly.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
from pyquaternion import Quaternion

from geniedrive.pipelines.data import rig as rig_mod

GRID = (200, 200, 16)
VOXEL = 0.4
RMIN = np.array([-40.0, -40.0, -1.0])

CAMERAS = ("CAM_FRONT", "CAM_FRONT_RIGHT", "CAM_BACK_RIGHT", "CAM_BACK", "CAM_BACK_LEFT", "CAM_FRONT_LEFT")
CHANNELS = (*CAMERAS, "LIDAR_TOP")

# nuScenes category rows written to category.json (the real 23 names, in their usual order).
CATEGORIES = (
    "human.pedestrian.adult", "human.pedestrian.child", "human.pedestrian.wheelchair",
    "human.pedestrian.stroller", "human.pedestrian.personal_mobility", "human.pedestrian.police_officer",
    "human.pedestrian.construction_worker", "animal", "vehicle.car", "vehicle.motorcycle",
    "vehicle.bicycle", "vehicle.bus.bendy", "vehicle.bus.rigid", "vehicle.truck", "vehicle.construction",
    "vehicle.emergency.ambulance", "vehicle.emergency.police", "vehicle.trailer", "movable_object.barrier",
    "movable_object.trafficcone", "movable_object.pushable_pullable", "movable_object.debris",
    "static_object.bicycle_rack",
)
# The categories instances cycle through (first two: the touching cars).
INSTANCE_CATEGORIES = (
    "vehicle.car", "vehicle.car", "human.pedestrian.adult", "vehicle.truck", "movable_object.trafficcone",
    "vehicle.bus.rigid", "animal", "vehicle.emergency.police", "human.pedestrian.police_officer",
    "movable_object.barrier", "vehicle.bicycle", "vehicle.trailer", "vehicle.construction",
    "vehicle.motorcycle", "human.pedestrian.child", "movable_object.debris",
)
# nuScenes size order: width, length, height.
SIZES_WLH = {
    "vehicle.car": (1.9, 4.5, 1.6), "human.pedestrian.adult": (0.7, 0.8, 1.8), "vehicle.truck": (2.5, 7.0, 3.0),
    "movable_object.trafficcone": (0.45, 0.45, 1.0), "vehicle.bus.rigid": (2.9, 11.0, 3.4), "animal": (0.5, 1.0, 0.8),
    "vehicle.emergency.police": (2.0, 5.0, 1.8), "human.pedestrian.police_officer": (0.7, 0.8, 1.8),
    "movable_object.barrier": (2.0, 0.5, 1.0), "vehicle.bicycle": (0.7, 1.8, 1.3), "vehicle.trailer": (2.8, 10.0, 3.5),
    "vehicle.construction": (2.8, 6.5, 3.2), "vehicle.motorcycle": (0.9, 2.2, 1.5),
    "human.pedestrian.child": (0.5, 0.5, 1.2), "movable_object.debris": (0.8, 0.8, 0.9),
}
# Occ3D label written into a box of each category (the fixture's own table).
OCC_LABEL = {
    "vehicle.car": 4, "human.pedestrian.adult": 7, "vehicle.truck": 10, "movable_object.trafficcone": 8,
    "vehicle.bus.rigid": 3, "animal": 0, "vehicle.emergency.police": 0, "human.pedestrian.police_officer": 7,
    "movable_object.barrier": 1, "vehicle.bicycle": 2, "vehicle.trailer": 9, "vehicle.construction": 5,
    "vehicle.motorcycle": 6, "human.pedestrian.child": 7, "movable_object.debris": 0,
}
LOCATIONS = ("singapore-onenorth", "boston-seaport", "singapore-queenstown", "singapore-hollandvillage")
# Box slots in the ego frame: x in 6 columns 14 m apart, y in 10 rows 8 m apart.
SLOT_X = (-35.0, -21.0, -7.0, 7.0, 21.0, 35.0)
SLOT_Y = (-36.0, -28.0, -20.0, -12.0, -4.0, 4.0, 12.0, 20.0, 28.0, 36.0)
# Object voxels outside every box: (ego x, y, z centre of a 2x2x2 blob, Occ3D label).
OUTSIDE_BLOBS = ((0.0, 0.0, 1.4, 0), (0.0, 16.0, 1.4, 4))


def _token(seed: int, *parts) -> str:
    return hashlib.md5(f"{seed}:{':'.join(str(p) for p in parts)}".encode()).hexdigest()


def _quat(yaw: float, pitch: float = 0.0, roll: float = 0.0) -> Quaternion:
    return (
        Quaternion(axis=[0, 0, 1], angle=yaw)
        * Quaternion(axis=[0, 1, 0], angle=pitch)
        * Quaternion(axis=[1, 0, 0], angle=roll)
    ).normalised


def _qlist(q: Quaternion) -> list[float]:
    return [float(v) for v in q.elements]


def _matrix(q_wxyz, t) -> np.ndarray:
    m = np.eye(4)
    m[:3, :3] = Quaternion(*q_wxyz).rotation_matrix
    m[:3, 3] = t
    return m


def _axes():
    return [RMIN[d] + (np.arange(GRID[d]) + 0.5) * VOXEL for d in range(3)]


def build_nuscenes_folder(
    root: Path,
    version: str = "v1.0-mini",
    scenes=("scene-0061", "scene-0103"),
    frames: int = 4,
    seed: int = 0,
    instances: int = 8,
) -> dict:
    """Write the folder and return its ground truth (see the module docstring)."""
    root = Path(root)
    rng = np.random.default_rng(seed)
    table_root = root / version
    table_root.mkdir(parents=True, exist_ok=True)
    (root / "maps").mkdir(exist_ok=True)
    assert 2 <= instances <= len(SLOT_X) * len(SLOT_Y) - 2

    tables: dict[str, list] = {k: [] for k in (
        "category", "attribute", "visibility", "instance", "sensor", "calibrated_sensor", "ego_pose", "log",
        "scene", "sample", "sample_data", "sample_annotation", "map")}
    cat_tokens = {}
    for i, name in enumerate(CATEGORIES):
        cat_tokens[name] = _token(seed, "category", name)
        tables["category"].append({"token": cat_tokens[name], "name": name, "description": f"{name} (fixture)", "index": i})
    tables["attribute"].append({"token": _token(seed, "attribute", 0), "name": "vehicle.parked", "description": ""})
    vis_token = _token(seed, "visibility", 4)
    tables["visibility"].append({"token": vis_token, "level": "v80-100", "description": "visibility of whole object is between 80 and 100%"})
    sensor_tokens = {}
    for ch in CHANNELS:
        sensor_tokens[ch] = _token(seed, "sensor", ch)
        tables["sensor"].append({"token": sensor_tokens[ch], "channel": ch, "modality": "lidar" if ch == "LIDAR_TOP" else "camera"})

    truth: dict = {"root": root, "version": version, "gts": root / "gts", "logs": {}, "scenes": {}, "sensors": sensor_tokens}
    anns_all: list[dict] = []
    axes = _axes()
    ii, jj, kk = np.meshgrid(*[np.arange(n) for n in GRID], indexing="ij")

    for si, scene_name in enumerate(scenes):
        # ---- log, map, calibration --------------------------------------------------------
        log_token = _token(seed, "log", si)
        location = LOCATIONS[si % len(LOCATIONS)]
        logfile = f"n{15 + si:03d}-2018-07-{10 + si:02d}-11-22-45+0800"
        tables["log"].append({"token": log_token, "logfile": logfile, "vehicle": f"n{15 + si:03d}",
                              "date_captured": f"2018-07-{10 + si:02d}", "location": location})
        map_token = _token(seed, "map", si)
        map_file = f"maps/{map_token}.png"
        _write_png(root / map_file)
        tables["map"].append({"token": map_token, "log_tokens": [log_token], "category": "semantic_prior", "filename": map_file})
        width, height = (1600, 900) if si % 2 == 0 else (1280, 720)
        calib = {}
        for ch in CHANNELS:
            if ch == "LIDAR_TOP":
                t = np.array([0.943713, 0.0, 1.84023]) + rng.uniform(-0.05, 0.05, 3) + 0.01 * si
                q = Quaternion(0.70780, -0.00649, 0.01065, -0.70631).normalised
                k = None
                w = h = 0
            else:
                base = rig_mod.nuscenes_camera(ch)
                t = base.sensor_to_ego[:3, 3] + rng.uniform(-0.05, 0.05, 3) + 0.01 * si
                q = Quaternion(matrix=base.sensor_to_ego[:3, :3], atol=1e-4)
                f = base.intrinsic[0, 0] + rng.uniform(-15, 15) + 11.0 * si
                k = [[f, 0.0, width / 2 + rng.uniform(-20, 20)], [0.0, f, height / 2 + rng.uniform(-20, 20)], [0.0, 0.0, 1.0]]
                w, h = width, height
            q = (q * Quaternion(axis=rng.normal(size=3), angle=rng.uniform(0.002, 0.02) * (1 + si))).normalised
            cs_token = _token(seed, "calibrated_sensor", si, ch)
            row = {"token": cs_token, "sensor_token": sensor_tokens[ch], "translation": [float(v) for v in t],
                   "rotation": _qlist(q), "camera_intrinsic": k if k is not None else []}
            tables["calibrated_sensor"].append(row)
            calib[ch] = {"token": cs_token, "translation": row["translation"], "rotation": row["rotation"],
                         "intrinsic": None if k is None else np.array(k), "width": w, "height": h,
                         "sensor_to_ego": _matrix(row["rotation"], row["translation"])}
        truth["logs"][log_token] = {"logfile": logfile, "location": location, "calibration": calib}

        # ---- ego poses and samples ---------------------------------------------------------
        x, y = 300.0 + 500.0 * si + rng.uniform(-5, 5), 1100.0 - 200.0 * si + rng.uniform(-5, 5)
        yaw = rng.uniform(-np.pi, np.pi)
        speed, yaw_rate = 5.0 + si, (0.25 if si % 2 == 0 else -0.3)
        ts0 = 1531281439800013 + si * 10**9
        sample_tokens = [_token(seed, "sample", si, f) for f in range(frames)]
        scene_token = _token(seed, "scene", si)
        timestamps, poses, ego_rows = [], [], []
        # Poses at 4 sub-steps per keyframe interval: 0 = keyframe, 1 = camera, 2 = sweep.
        for f in range(frames):
            tsf = ts0 + f * 500_000 + int(rng.integers(-3000, 3000))
            timestamps.append(tsf)
            sub = []
            for s in range(3):
                yy = yaw + yaw_rate * 0.5 * (f + s / 4)
                xx = x + speed * 0.5 * (f + s / 4) * np.cos(yaw + 0.1 * f)
                yv = y + speed * 0.5 * (f + s / 4) * np.sin(yaw + 0.1 * f)
                q = _quat(yy, rng.uniform(-0.03, 0.03), rng.uniform(-0.03, 0.03))
                trans = [float(xx), float(yv), 0.0]
                ep_token = _token(seed, "ego_pose", si, f, s)
                ets = tsf + (0, 12_000, 250_000)[s]
                tables["ego_pose"].append({"token": ep_token, "timestamp": ets, "rotation": _qlist(q), "translation": trans})
                sub.append((ep_token, ets, _matrix(_qlist(q), trans)))
            ego_rows.append(sub)
            poses.append(sub[0][2])
            tables["sample"].append({"token": sample_tokens[f], "timestamp": tsf, "scene_token": scene_token,
                                     "prev": sample_tokens[f - 1] if f > 0 else "",
                                     "next": sample_tokens[f + 1] if f + 1 < frames else ""})
        # sample_data: keyframes of every channel, plus a LiDAR sweep after each keyframe but the last.
        sd_rows = {ch: [] for ch in CHANNELS}
        for f in range(frames):
            for ch in CHANNELS:
                sub = ego_rows[f][0 if ch == "LIDAR_TOP" else 1]
                is_cam = ch != "LIDAR_TOP"
                sd_rows[ch].append({
                    "token": _token(seed, "sample_data", si, f, ch), "sample_token": sample_tokens[f],
                    "ego_pose_token": sub[0], "calibrated_sensor_token": calib[ch]["token"],
                    "timestamp": sub[1], "fileformat": "jpg" if is_cam else "pcd", "is_key_frame": True,
                    "height": calib[ch]["height"], "width": calib[ch]["width"],
                    "filename": f"samples/{ch}/{logfile}__{ch}__{sub[1]}.{'jpg' if is_cam else 'pcd.bin'}",
                })
                if ch == "LIDAR_TOP" and f + 1 < frames:
                    sub2 = ego_rows[f][2]
                    sd_rows[ch].append({
                        "token": _token(seed, "sample_data", si, f, "sweep"), "sample_token": sample_tokens[f],
                        "ego_pose_token": sub2[0], "calibrated_sensor_token": calib[ch]["token"],
                        "timestamp": sub2[1], "fileformat": "pcd", "is_key_frame": False, "height": 0, "width": 0,
                        "filename": f"sweeps/{ch}/{logfile}__{ch}__{sub2[1]}.pcd.bin",
                    })
        for ch, rows in sd_rows.items():
            for i, row in enumerate(rows):
                row["prev"] = rows[i - 1]["token"] if i > 0 else ""
                row["next"] = rows[i + 1]["token"] if i + 1 < len(rows) else ""
            tables["sample_data"].extend(rows)
        tables["scene"].append({"token": scene_token, "log_token": log_token, "nbr_samples": frames,
                                "first_sample_token": sample_tokens[0], "last_sample_token": sample_tokens[-1],
                                "name": scene_name, "description": f"fixture scene {si}"})

        # ---- instances and boxes -----------------------------------------------------------
        cats, boxes, spans = {}, {}, {}
        inst_tokens = [_token(seed, "instance", si, j) for j in range(instances)]
        slot0 = np.array([SLOT_X[3], SLOT_Y[4]])
        for j, itok in enumerate(inst_tokens):
            cat = INSTANCE_CATEGORIES[j % len(INSTANCE_CATEGORIES)]
            cats[itok] = cat
            start, end = 0, frames - 1
            if j in (2, 5) and frames > 1:
                start = 1  # appears late: its id comes after instances seen in frame 0
            if j == 4 and frames > 2:
                end = frames - 2  # leaves before the end
            spans[itok] = (start, end)
            boxes[itok] = {}
            yaw_off = rng.uniform(-0.15, 0.15) if j > 1 else 0.05
            phase = rng.uniform(0, 2 * np.pi)
            if j == 1:
                local_xy = slot0 + np.array([-np.sin(0.05), np.cos(0.05)]) * SIZES_WLH[cat][0]  # touching car 0
            elif j == 0:
                local_xy = slot0
            else:
                slot = j + 1 if j + 1 < 27 else j + 2  # lattice slot 27 is where the two cars park
                local_xy = np.array([SLOT_X[slot % len(SLOT_X)], SLOT_Y[slot // len(SLOT_X)]])
            w, l, h = SIZES_WLH[cat]
            for f in range(start, end + 1):
                drift = 0.5 * np.sin(0.7 * f + phase) if j > 1 else 0.0
                c_local = np.array([local_xy[0] + drift, local_xy[1], -0.6 + h / 2, 1.0])
                c_global = poses[f] @ c_local
                ego_yaw = np.arctan2(poses[f][1, 0], poses[f][0, 0])
                g_yaw = float(np.arctan2(np.sin(ego_yaw + yaw_off), np.cos(ego_yaw + yaw_off)))
                boxes[itok][f] = [float(c_global[0]), float(c_global[1]), float(c_global[2]), l, w, h, g_yaw]
        # Annotation rows, with prev/next per instance, written to the table in shuffled order.
        ann_rows = []
        for itok in inst_tokens:
            fs = sorted(boxes[itok])
            toks = [_token(seed, "sample_annotation", si, itok, f) for f in fs]
            for n, f in enumerate(fs):
                x_, y_, z_, l, w, h, g_yaw = boxes[itok][f]
                ann_rows.append({
                    "token": toks[n], "sample_token": sample_tokens[f], "instance_token": itok,
                    "visibility_token": vis_token, "attribute_tokens": [],
                    "translation": [x_, y_, z_], "size": [w, l, h], "rotation": _qlist(_quat(g_yaw)),
                    "prev": toks[n - 1] if n > 0 else "", "next": toks[n + 1] if n + 1 < len(fs) else "",
                    "num_lidar_pts": 10, "num_radar_pts": 1,
                })
            tables["instance"].append({"token": itok, "category_token": cat_tokens[cats[itok]], "nbr_annotations": len(fs),
                                       "first_annotation_token": toks[0], "last_annotation_token": toks[-1]})
        order = rng.permutation(len(ann_rows))
        ann_rows = [ann_rows[i] for i in order]
        anns_all.extend(ann_rows)
        ann_order = [[r["instance_token"] for r in ann_rows if r["sample_token"] == st] for st in sample_tokens]

        # ---- Occ3D labels ------------------------------------------------------------------
        label_paths, outside = [], []
        for f in range(frames):
            sem = np.full(GRID, 17, np.uint8)
            sem[:, :, 0:2] = 11  # road
            sem[:, :60, 0:2] = 13  # sidewalk
            sem[:20, 180:, 2:10] = 15  # a building corner
            sem[180:, :15, 2:6] = 16  # vegetation
            for itok in inst_tokens:
                if f not in boxes[itok]:
                    continue
                _paint_box(sem, poses[f], boxes[itok][f], OCC_LABEL[cats[itok]], axes)
            ijk_out = []
            for bx, by, bz, lab in OUTSIDE_BLOBS:
                idx = [int(np.floor((v - RMIN[d]) / VOXEL)) for d, v in enumerate((bx, by, bz))]
                block = np.stack(np.meshgrid(*[np.arange(i - 1, i + 1) for i in idx], indexing="ij"), -1).reshape(-1, 3)
                sem[block[:, 0], block[:, 1], block[:, 2]] = lab
                ijk_out.append(block)
            ijk_out = np.concatenate(ijk_out)
            _assert_outside(ijk_out, poses[f], [boxes[t][f] for t in inst_tokens if f in boxes[t]], axes)
            outside.append(ijk_out)
            # Structured (fast to compress) masks that differ per frame and per scene.
            mask_lidar = ((ii * 7 + jj * 3 + kk + f + si) % 5 != 0).astype(np.uint8)
            mask_camera = ((ii > 30 + 3 * f) & (np.abs(jj - 100) < 60 + si)).astype(np.uint8)
            path = root / "gts" / scene_name / sample_tokens[f] / "labels.npz"
            path.parent.mkdir(parents=True, exist_ok=True)
            np.savez_compressed(path, semantics=sem, mask_lidar=mask_lidar, mask_camera=mask_camera)
            label_paths.append(path)

        truth["scenes"][scene_name] = {
            "token": scene_token, "log_token": log_token, "location": location, "logfile": logfile,
            "sample_tokens": sample_tokens, "timestamps": timestamps, "ego_to_global": np.stack(poses),
            "camera_ego_to_global": np.stack([r[1][2] for r in ego_rows]),
            "sweep_ego_to_global": np.stack([r[2][2] for r in ego_rows]),
            "categories": cats, "boxes": boxes, "ann_order": ann_order, "instance_tokens": inst_tokens,
            "label_paths": label_paths, "outside_voxels": outside,
        }

    tables["sample_annotation"] = anns_all
    for name, rows in tables.items():
        (table_root / f"{name}.json").write_text(json.dumps(rows, indent=0))
    return truth


def _write_png(path: Path) -> None:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(path)


def _box_local(pts_ego: np.ndarray, pose: np.ndarray, box) -> np.ndarray:
    """Ego-frame points -> the box frame of a global yaw-only box [x, y, z, l, w, h, yaw]."""
    g = pts_ego @ pose[:3, :3].T + pose[:3, 3]
    d = g - np.asarray(box[:3])
    c, s = np.cos(box[6]), np.sin(box[6])
    return np.stack([c * d[..., 0] + s * d[..., 1], -s * d[..., 0] + c * d[..., 1], d[..., 2]], -1)


def _block(pose: np.ndarray, box, axes, pad: float):
    """Index slices of a cube around the box centre (in the ego frame) wide enough for the box."""
    centre = np.linalg.inv(pose) @ np.array([*box[:3], 1.0])
    r = 0.5 * float(np.linalg.norm(box[3:6])) + pad
    sl = []
    for d in range(3):
        lo = int(np.clip(np.floor((centre[d] - r - RMIN[d]) / VOXEL), 0, GRID[d]))
        hi = int(np.clip(np.ceil((centre[d] + r - RMIN[d]) / VOXEL), 0, GRID[d]))
        sl.append(slice(lo, hi))
    pts = np.stack(np.meshgrid(axes[0][sl[0]], axes[1][sl[1]], axes[2][sl[2]], indexing="ij"), -1)
    return tuple(sl), pts


def _paint_box(sem: np.ndarray, pose: np.ndarray, box, label: int, axes) -> None:
    sl, pts = _block(pose, box, axes, 0.5)
    if pts.size == 0:
        return
    loc = _box_local(pts, pose, box)
    half = np.asarray(box[3:6]) / 2
    inside = np.all(np.abs(loc) < half, axis=-1)
    bottom = loc[..., 2] < -half[2] + 0.3
    sub = sem[sl]
    sub[inside & ~bottom] = label
    sub[inside & bottom] = 11  # the road under the box: not an object voxel


def _assert_outside(ijk: np.ndarray, pose: np.ndarray, boxes, axes) -> None:
    pts = np.stack([axes[d][ijk[:, d]] for d in range(3)], -1)
    for box in boxes:
        loc = _box_local(pts, pose, box)
        assert not np.any(np.all(np.abs(loc) <= np.asarray(box[3:6]) / 2 + 0.6, axis=-1)), "outside blob touches a box"
