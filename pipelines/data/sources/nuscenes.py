"""The `nuscenes` source: nuScenes tables (through nuscenes-devkit) plus Occ3D-nuScenes `gts`.

What one scene becomes (`NuScenesSource.load(name) -> SceneData`):

- Frames: the scene's keyframes (`sample` rows, followed through `next`), in order. Frame tokens
  are sample tokens, timestamps the sample timestamps (µs).
- Poses: ego->global of each frame = the `ego_pose` of that keyframe's LIDAR_TOP `sample_data`
  (4x4 float64 from translation + rotation w, x, y, z).
- Rig: the scene's own log calibration: for the six cameras (in `rig.CAMERA_NAMES` order) and
  LIDAR_TOP, the `calibrated_sensor` of the first keyframe's `sample_data` (sensor->ego); camera
  intrinsics from `camera_intrinsic`, image size from the `sample_data` row. The LiDAR keeps the
  HDL-32E defaults of `rig.Lidar` with the calibrated extrinsic.
- Occupancy: Occ3D `gts/<scene>/<sample_token>/labels.npz` under the Occ3D root (default: the
  nuScenes dataroot), read and validated by `occ3d.load_labels`.
- Instances: one per annotated nuScenes `instance`, class from `nuscenes_classes`, named
  `<class>_<n>` (n from 1 per class) and numbered 1.. in order of first appearance in the scene
  (frame order, then `sample_annotation` table order). Boxes are global [x, y, z, l, w, h, yaw]
  (nuScenes stores size as w, l, h). Attributes: instance token and nuScenes category.
- Instance grids (uint16, 0 = none): in each frame, a voxel gets a box's instance id when its
  centre lies inside the box grown by `BOX_MARGIN` on every side (the box's full 3-D rotation,
  taken into that frame's ego frame) and its Occ3D label is an object class (0..10). When the
  grown boxes of several instances contain one voxel, the box whose centre is nearest to the
  voxel centre (Euclidean, in 3-D) takes it; an exact tie goes to the lower instance id. So no
  voxel ever carries two instances, and object voxels outside every grown box stay 0.
- Split: the official `create_splits_scenes()`: versions named `*mini*` use mini_train/mini_val,
  `*test*` uses test, others train/val (and test). A scene in none of them is "unassigned".

Loading the tables of v1.0-trainval takes tens of seconds and a few GB: build one
`NuScenesSource` and call `.load` for every scene rather than the one-shot helpers.

The parts: `nuscenes_tables` (checking the input, opening the tables through nuscenes-devkit,
the splits), `nuscenes_instances` (instance grids from the boxes), `nuscenes_classes` (category
mapping); this module builds each scene from them.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..occ3d import GRID_SHAPE, load_labels
from ..rig import CAMERA_NAMES, Camera, Lidar, Rig
from ..scene import Instance, SceneData, SceneMeta
from .nuscenes_classes import category_class_name, category_to_class
from .nuscenes_instances import assign_instances
from .nuscenes_tables import check_nuscenes_input, occ_gts_dir, open_nuscenes, split_table
from ...errors import BadInput
from ...geometry import pose_matrix, quat_to_matrix
from ...store.fingerprint import folder_fingerprint

LIDAR_CHANNEL = "LIDAR_TOP"
UNASSIGNED = "unassigned"


# --------------------------------------------------------------------------------------------
# The source
# --------------------------------------------------------------------------------------------


class NuScenesSource:
    """nuScenes tables + Occ3D gts, loaded once; `.load(scene)` gives a `SceneData`.

    Construction validates the inputs (`check_nuscenes_input`) and loads the tables with
    nuscenes-devkit; both raise BadInput on bad input. `scene_names` lists the scenes in the
    order of the scene table (chronological within each log in the official releases).
    """

    kind = "nuscenes"
    parallel = True
    # Each worker process holds its own copy of the tables (several GB for trainval).
    max_default_workers = 4

    def __init__(self, dataroot: Path | str, version: str = "v1.0-trainval", occ_root: Path | str | None = None):
        self.dataroot = Path(dataroot)
        self.version = version
        check_nuscenes_input(self.dataroot, version, occ_root)
        self.gts_root: Path = occ_gts_dir(self.dataroot, occ_root)  # type: ignore[assignment]
        self.nusc = open_nuscenes(self.dataroot, version)
        self._scenes = {s["name"]: s for s in self.nusc.scene}
        self.scene_names: list[str] = [s["name"] for s in self.nusc.scene]
        self._splits = split_table(version)

    def __getstate__(self) -> dict:
        # Worker processes reload the tables instead of receiving a pickled NuScenes object.
        state = self.__dict__.copy()
        state["nusc"] = None
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self.nusc = open_nuscenes(self.dataroot, self.version)
        self._scenes = {s["name"]: s for s in self.nusc.scene}

    def id_fields(self) -> dict:
        """What identifies the input without reading it: paths, and size + mtime of every table."""
        return {
            "dataroot": str(self.dataroot.resolve()),
            "version": self.version,
            "gts": str(self.gts_root.resolve()),
            "tables": folder_fingerprint(self.table_root, sorted(self.table_root.glob("*.json"))),
        }

    # -- lookups ------------------------------------------------------------------------------

    @property
    def table_root(self) -> Path:
        return self.dataroot / self.version

    def _table(self, name: str) -> Path:
        return self.table_root / f"{name}.json"

    def _get(self, table: str, token: str, referrer: str) -> dict:
        try:
            return self.nusc.get(table, token)
        except KeyError:
            raise BadInput(
                f"{self._table(table)}: no row with token '{token}' (referred to by {referrer}); the tables are "
                f"inconsistent, re-extract the {self.version} metadata"
            ) from None

    def _scene(self, name: str) -> dict:
        scene = self._scenes.get(name)
        if scene is None:
            shown = ", ".join(self.scene_names[:8]) + (f", ... ({len(self.scene_names)} in all)" if len(self.scene_names) > 8 else "")
            raise BadInput(
                f"--scenes: unknown scene '{name}' in {self.version}; its scenes are {shown or 'none'}"
            )
        return scene

    def split_of(self, scene_name: str) -> str:
        """'train', 'val', 'test' (official splits) or 'unassigned'."""
        return self._splits.get(scene_name, UNASSIGNED)

    def samples(self, scene_name: str) -> list[dict]:
        """The scene's keyframe `sample` rows in order (following `next`)."""
        scene = self._scene(scene_name)
        out = []
        token = scene["first_sample_token"]
        limit = len(self.nusc.sample)
        while token:
            sample = self._get("sample", token, f"scene '{scene_name}'")
            out.append(sample)
            if len(out) > limit:
                raise BadInput(f"{self._table('sample')}: the samples of scene '{scene_name}' form a loop through 'next'; the table is corrupt")
            token = sample["next"]
        if not out:
            raise BadInput(f"{self._table('scene')}: scene '{scene_name}' has no first sample; the table is corrupt")
        return out

    def camera_images(self, scene_name: str, first_token: str, end_us: float) -> tuple[list[int], list[Path]]:
        """Every image of one camera (keyframes and sweeps) from the one just before the keyframe
        `first_token` (it may be nearer to the scene's start) up to `end_us`: (timestamps µs, paths)."""
        first = self._get("sample_data", first_token, f"scene '{scene_name}'")
        token = first["prev"] or first_token
        times, paths = [], []
        while token:
            sd = self._get("sample_data", token, f"scene '{scene_name}'")
            if sd["timestamp"] > end_us:
                break
            times.append(sd["timestamp"])
            paths.append(self.dataroot / sd["filename"])
            token = sd["next"]
        return times, paths

    def keyframe_image(self, scene_name: str, sample_token: str, channel: str) -> Path:
        """The image of camera `channel` taken at keyframe `sample_token` (its samples/ file)."""
        sample = self._get("sample", sample_token, f"scene '{scene_name}'")
        return self.dataroot / self._keyframe_data(sample, channel, scene_name)["filename"]

    def _keyframe_data(self, sample: dict, channel: str, scene_name: str) -> dict:
        token = sample["data"].get(channel)
        if token is None:
            raise BadInput(
                f"{self._table('sample_data')}: keyframe {sample['token']} of scene '{scene_name}' has no "
                f"{channel} sample_data; the tables are incomplete"
            )
        return self._get("sample_data", token, f"sample {sample['token']}")

    def label_path(self, scene_name: str, sample_token: str) -> Path:
        return self.gts_root / scene_name / sample_token / "labels.npz"

    def check_occupancy(self, scene_names: list[str] | None = None) -> None:
        """Raise BadInput unless every keyframe of the scenes has an Occ3D labels.npz (existence
        only, cheap: use it before writing anything)."""
        for name in self.scene_names if scene_names is None else scene_names:
            self._check_scene_occ(name, self.samples(name))

    def _check_scene_occ(self, name: str, samples: list[dict]) -> None:
        if not (self.gts_root / name).is_dir():
            raise BadInput(
                f"{self.gts_root / name}: no Occ3D occupancy for scene '{name}' (Occ3D-nuScenes covers trainval "
                "only); check --occ-root or leave the scene out with --scenes"
            )
        missing = [s["token"] for s in samples if not self.label_path(name, s["token"]).is_file()]
        if missing:
            more = f" ({len(missing)} of {len(samples)} frames missing)" if len(missing) > 1 else ""
            raise BadInput(
                f"{self.label_path(name, missing[0])}: Occ3D frame is missing{more}; check --occ-root or "
                "re-export the frame"
            )

    # -- scene building -----------------------------------------------------------------------

    def _rig(self, first: dict, scene_name: str, log: dict) -> Rig:
        cameras = []
        for channel in (*CAMERA_NAMES, LIDAR_CHANNEL):
            sd = self._keyframe_data(first, channel, scene_name)
            cs = self._get("calibrated_sensor", sd["calibrated_sensor_token"], f"sample_data {sd['token']}")
            ext = pose_matrix(np.asarray(cs["rotation"], dtype=np.float64), cs["translation"])
            if channel == LIDAR_CHANNEL:
                lidar = Lidar(LIDAR_CHANNEL, ext)
            else:
                k = np.asarray(cs.get("camera_intrinsic") or [], dtype=np.float64)
                if k.shape != (3, 3):
                    raise BadInput(
                        f"{self._table('calibrated_sensor')}: {channel} of log {log['logfile']} has camera_intrinsic "
                        f"of shape {k.shape}, expected 3x3; the calibration is corrupt"
                    )
                cameras.append(Camera(channel, int(sd["width"]), int(sd["height"]), k, ext))
        rig = Rig(cameras, lidar, name=f"nuscenes:{log['logfile']}", meta={"log": log["logfile"], "location": log["location"]})
        rig.validate(f"{self._table('calibrated_sensor')} (log {log['logfile']})")
        return rig

    def _annotations(self, samples: list[dict], scene_name: str):
        """Instances of the scene and, per frame, (ids, global box poses [B,4,4], sizes lwh [B,3])."""
        order: list[str] = []  # instance tokens by first appearance
        info: dict[str, dict] = {}
        per_frame = []
        for t, sample in enumerate(samples):
            ids, poses, sizes = [], [], []
            for ann_token in sample["anns"]:
                ann = self._get("sample_annotation", ann_token, f"sample {sample['token']}")
                itok = ann["instance_token"]
                if itok not in info:
                    category = ann.get("category_name")
                    if category is None:
                        inst = self._get("instance", itok, f"sample_annotation {ann_token}")
                        category = self._get("category", inst["category_token"], f"instance {itok}")["name"]
                    order.append(itok)
                    info[itok] = {"id": len(order), "category": category, "frames": [], "boxes": []}
                rec = info[itok]
                if rec["frames"] and rec["frames"][-1] == t:
                    raise BadInput(
                        f"{self._table('sample_annotation')}: instance {itok} is annotated twice in sample "
                        f"{sample['token']} of scene '{scene_name}'; the table is corrupt"
                    )
                rot = quat_to_matrix(ann["rotation"])
                w, l, h = (float(v) for v in ann["size"])
                x, y, z = (float(v) for v in ann["translation"])
                yaw = float(np.arctan2(rot[1, 0], rot[0, 0]))
                rec["frames"].append(t)
                rec["boxes"].append([x, y, z, l, w, h, yaw])
                pose = np.eye(4)
                pose[:3, :3] = rot
                pose[:3, 3] = (x, y, z)
                ids.append(rec["id"])
                poses.append(pose)
                sizes.append((l, w, h))
            per_frame.append(
                (np.asarray(ids, dtype=np.int64), np.asarray(poses, dtype=np.float64).reshape(-1, 4, 4),
                 np.asarray(sizes, dtype=np.float64).reshape(-1, 3))
            )
        counters: dict[str, int] = {}
        instances: dict[str, Instance] = {}
        for i, itok in enumerate(order, start=1):
            rec = info[itok]
            cls_name = category_class_name(rec["category"])
            counters[cls_name] = counters.get(cls_name, 0) + 1
            name = f"{cls_name}_{counters[cls_name]}"
            instances[name] = Instance(
                name=name,
                id=i,
                cls=category_to_class(rec["category"]),
                frames=rec["frames"],
                boxes=np.asarray(rec["boxes"], dtype=np.float64).reshape(-1, 7),
                attributes={"instance_token": itok, "category": rec["category"]},
            )
        return instances, per_frame

    def _meta(self, scene_name: str):
        scene = self._scene(scene_name)
        samples = self.samples(scene_name)
        log = self._get("log", scene["log_token"], f"scene '{scene_name}'")
        poses = []
        for sample in samples:
            sd = self._keyframe_data(sample, LIDAR_CHANNEL, scene_name)
            ep = self._get("ego_pose", sd["ego_pose_token"], f"sample_data {sd['token']}")
            poses.append(pose_matrix(np.asarray(ep["rotation"], dtype=np.float64), ep["translation"]))
        rig = self._rig(samples[0], scene_name, log)
        instances, per_frame = self._annotations(samples, scene_name)
        meta = SceneMeta(
            name=scene_name,
            tokens=[s["token"] for s in samples],
            timestamps=np.asarray([s["timestamp"] for s in samples], dtype=np.int64),
            ego_to_global=np.stack(poses).astype(np.float64),
            rig=rig,
            instances=instances,
            split=self.split_of(scene_name),
            source="nuscenes",
            extra={
                "version": self.version,
                "log": log["location"],
                "logfile": log["logfile"],
                "scene_token": scene["token"],
            },
        )
        meta.validate(f"{self._table('sample')} (scene '{scene_name}')")
        return meta, samples, per_frame

    def load_meta(self, scene_name: str) -> SceneMeta:
        """The scene's metadata (frames, poses, rig, instances, split) without occupancy."""
        return self._meta(scene_name)[0]

    def load(self, scene_name: str) -> SceneData:
        """The scene with its Occ3D occupancy and instance grids."""
        meta, samples, per_frame = self._meta(scene_name)
        self._check_scene_occ(scene_name, samples)
        t = len(samples)
        sem = np.empty((t, *GRID_SHAPE), np.uint8)
        ml = np.empty_like(sem)
        mc = np.empty_like(sem)
        inst = np.zeros((t, *GRID_SHAPE), np.uint16)
        for i, sample in enumerate(samples):
            labels = load_labels(self.label_path(scene_name, sample["token"]))
            sem[i], ml[i], mc[i] = labels["semantics"], labels["mask_lidar"], labels["mask_camera"]
            ids, box_poses, sizes = per_frame[i]
            if len(ids):
                in_ego = np.linalg.inv(meta.ego_to_global[i]) @ box_poses  # [B, 4, 4] box -> ego
                inst[i] = assign_instances(sem[i], in_ego[:, :3, 3], in_ego[:, :3, :3], sizes, ids)
        data = SceneData(meta, sem, ml, mc, inst)
        data.validate(f"{self.gts_root / scene_name}")
        return data


# --------------------------------------------------------------------------------------------
# One-shot helpers
# --------------------------------------------------------------------------------------------


def list_nuscenes_scenes(dataroot: Path | str, version: str, occ_root: Path | str | None = None) -> list[str]:
    """Scene names of a nuScenes version, in scene-table order (loads the tables)."""
    return list(NuScenesSource(dataroot, version, occ_root).scene_names)


def load_nuscenes_scene(
    dataroot: Path | str, version: str, scene_name: str, occ_root: Path | str | None = None
) -> SceneData:
    """One scene (loads the tables; for many scenes reuse a `NuScenesSource`)."""
    return NuScenesSource(dataroot, version, occ_root).load(scene_name)
