"""Sensor rigs: pinhole cameras and a spinning LiDAR, with their sensor->ego extrinsics.

The default rig is the nuScenes one (log n015 calibration, 1600x900 cameras, HDL-32E LiDAR), used
for synthetic worlds; real logs carry their own calibration into `scene.json`.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import BadInput
from ..geometry import is_rotation, pose_matrix
from ..limits import MAX_IMAGE_SIDE, read_text_file
from ..store.names import check_component

MAX_CAMERAS = 12
MAX_BEAMS = 512
MAX_AZIMUTH_STEPS = 36_000  # 0.01 degree
MAX_RANGE_M = 1000.0

# The six nuScenes cameras, the one definition of the camera ring: round the car clockwise seen
# from above, from the front camera, the order the official rasterizer writes them in.
CAMERA_NAMES: tuple[str, ...] = (
    "CAM_FRONT",
    "CAM_FRONT_RIGHT",
    "CAM_BACK_RIGHT",
    "CAM_BACK",
    "CAM_BACK_LEFT",
    "CAM_FRONT_LEFT",
)
# The same ring started at the front-left camera (FL | F | FR | BR | B | BL): the official
# multi-view batch order (video.configs.OFFICIAL_VIEWS) and the 2 x 3 camera mosaic read row by
# row (sensors.camera.RING_ORDER).
VIEW_RING: tuple[str, ...] = CAMERA_NAMES[-1:] + CAMERA_NAMES[:-1]

# (translation, rotation wxyz, f, cx, cy) at 1600x900, camera -> ego.
_NUSCENES_CAMERAS = {
    "CAM_FRONT": ((1.70079, 0.01595, 1.51096), (0.49980, -0.50303, 0.49978, -0.49737), 1266.417, 816.267, 491.507),
    "CAM_FRONT_RIGHT": ((1.55085, -0.49340, 1.49575), (0.20603, -0.20269, 0.68245, -0.67136), 1260.847, 807.968, 495.334),
    "CAM_BACK_RIGHT": ((1.01488, -0.48057, 1.56240), (0.12281, -0.13240, -0.70043, 0.69050), 1259.514, 807.253, 501.196),
    "CAM_BACK": ((0.02833, 0.00345, 1.57910), (0.50379, -0.49740, -0.49419, 0.50455), 809.221, 829.220, 481.778),
    "CAM_BACK_LEFT": ((1.03569, 0.48480, 1.59097), (0.69242, -0.70316, -0.11648, 0.11203), 1256.741, 792.113, 492.776),
    "CAM_FRONT_LEFT": ((1.52388, 0.49463, 1.50933), (0.67573, -0.67363, 0.21214, -0.21123), 1272.598, 826.615, 479.752),
}

# HDL-32E beam elevations in firing order (degrees).
HDL32E_ELEVATIONS = (
    -30.67, -9.33, -29.33, -8.00, -28.00, -6.66, -26.66, -5.33, -25.33, -4.00, -24.00, -2.67,
    -22.67, -1.33, -21.33, 0.00, -20.00, 1.33, -18.67, 2.67, -17.33, 4.00, -16.00, 5.33,
    -14.67, 6.67, -13.33, 8.00, -12.00, 9.33, -10.67, 10.67,
)
_NUSCENES_LIDAR = ((0.943713, 0.0, 1.84023), (0.70780, -0.00649, 0.01065, -0.70631))


@dataclass
class Camera:
    """A pinhole camera. `intrinsic` is 3x3 at (width, height); `sensor_to_ego` is 4x4."""

    name: str
    width: int
    height: int
    intrinsic: np.ndarray
    sensor_to_ego: np.ndarray

    def scaled(self, width: int, height: int) -> "Camera":
        """The same camera resampled to another image size."""
        k = self.intrinsic.copy()
        k[0] *= width / self.width
        k[1] *= height / self.height
        return Camera(self.name, width, height, k, self.sensor_to_ego.copy())


@dataclass
class Lidar:
    """A spinning LiDAR: one ring per elevation, `azimuth_steps` firings per revolution."""

    name: str
    sensor_to_ego: np.ndarray
    elevations_deg: tuple[float, ...] = HDL32E_ELEVATIONS
    azimuth_steps: int = 1080
    max_range: float = 70.0


@dataclass
class Rig:
    cameras: list[Camera]
    lidar: Lidar
    name: str = "nuscenes-default"
    meta: dict = field(default_factory=dict)

    def camera(self, name: str) -> Camera:
        for cam in self.cameras:
            if cam.name == name:
                return cam
        raise BadInput(
            f"--cameras: unknown camera '{name}'; this rig has {', '.join(c.name for c in self.cameras)}"
        )

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "cameras": [
                {
                    "name": c.name,
                    "width": c.width,
                    "height": c.height,
                    "intrinsic": np.asarray(c.intrinsic).tolist(),
                    "sensor_to_ego": np.asarray(c.sensor_to_ego).tolist(),
                }
                for c in self.cameras
            ],
            "lidar": {
                "name": self.lidar.name,
                "sensor_to_ego": np.asarray(self.lidar.sensor_to_ego).tolist(),
                "elevations_deg": list(self.lidar.elevations_deg),
                "azimuth_steps": self.lidar.azimuth_steps,
                "max_range": self.lidar.max_range,
            },
            **({"meta": self.meta} if self.meta else {}),
        }

    @classmethod
    def from_dict(cls, d: dict, where: str = "rig") -> "Rig":
        """Rebuild and validate a rig; raises BadInput naming `where` on a malformed rig."""
        if not isinstance(d, dict):
            raise BadInput(f"{where}: malformed sensor rig (a JSON {type(d).__name__}, not an object); see the rig format in the README")
        try:
            cams = [
                Camera(
                    c["name"],
                    _whole(c["width"], "width"),
                    _whole(c["height"], "height"),
                    np.asarray(c["intrinsic"], dtype=np.float64),
                    np.asarray(c["sensor_to_ego"], dtype=np.float64),
                )
                for c in d["cameras"]
            ]
            ld = d["lidar"]
            lidar = Lidar(
                ld["name"],
                np.asarray(ld["sensor_to_ego"], dtype=np.float64),
                tuple(float(e) for e in ld.get("elevations_deg", HDL32E_ELEVATIONS)),
                _whole(ld.get("azimuth_steps", 1080), "azimuth_steps"),
                float(ld.get("max_range", 70.0)),
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise BadInput(f"{where}: malformed sensor rig ({type(exc).__name__}: {exc}); see the rig format in the README") from None
        rig = cls(cams, lidar, d.get("name", "custom"), d.get("meta", {}))
        rig.validate(where)
        return rig

    def validate(self, where: str = "rig") -> None:
        if not 1 <= len(self.cameras) <= MAX_CAMERAS:
            raise BadInput(f"{where}: {len(self.cameras)} cameras; a rig has 1 to {MAX_CAMERAS} (nuScenes: 6)")
        names = [c.name for c in self.cameras]
        for n in names:  # camera names become file names (generate's CAM_*.mp4)
            check_component(n, where, "camera name")
        dup = next((n for n in names if names.count(n) > 1), None)
        if dup is not None:
            raise BadInput(f"{where}: camera name {dup} appears twice; every camera needs its own name")
        for c in self.cameras:
            if not (0 < c.width <= MAX_IMAGE_SIDE and 0 < c.height <= MAX_IMAGE_SIDE):
                raise BadInput(f"{where}: camera {c.name} has size {c.width}x{c.height}; width and height must be "
                               f"1..{MAX_IMAGE_SIDE} pixels")
            if c.intrinsic.shape != (3, 3) or not np.all(np.isfinite(c.intrinsic)) or c.intrinsic[0, 0] <= 0 or c.intrinsic[1, 1] <= 0:
                raise BadInput(f"{where}: camera {c.name} intrinsic must be a 3x3 matrix with positive focal lengths")
            _check_extrinsic(c.sensor_to_ego, f"{where}: camera {c.name}")
        ld = self.lidar
        _check_extrinsic(ld.sensor_to_ego, f"{where}: lidar {ld.name}")
        if not 1 <= ld.azimuth_steps <= MAX_AZIMUTH_STEPS:
            raise BadInput(f"{where}: lidar azimuth_steps {ld.azimuth_steps:,}; use 1..{MAX_AZIMUTH_STEPS:,} firings "
                           "per revolution (HDL-32E: 1080)")
        if not 1 <= len(ld.elevations_deg) <= MAX_BEAMS or not all(
                math.isfinite(e) and -90 <= e <= 90 for e in ld.elevations_deg):
            raise BadInput(f"{where}: lidar elevations_deg must hold 1..{MAX_BEAMS} finite angles in -90..90 degrees "
                           f"(has {len(ld.elevations_deg)})")
        if not (math.isfinite(ld.max_range) and 0 < ld.max_range <= MAX_RANGE_M):
            raise BadInput(f"{where}: lidar max_range {ld.max_range}; use a finite range in (0, {MAX_RANGE_M:g}] m "
                           "(HDL-32E: 70)")


def _whole(value, what: str) -> int:
    """A whole number from a rig file (an integral float such as 1080.0 is fine, 2.5 or true is not)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or int(value) != value:
        raise ValueError(f"{what} {value!r} is not a whole number")
    return int(value)


def _check_extrinsic(m: np.ndarray, what: str) -> None:
    if m.shape != (4, 4) or not np.all(np.isfinite(m)):
        raise BadInput(f"{what} sensor_to_ego must be a finite 4x4 matrix")
    if not is_rotation(m[:3, :3]):
        raise BadInput(f"{what} sensor_to_ego rotation is not a rotation (not orthonormal or det != 1); fix the calibration")


def read_rig_file(path: Path, flag: str | None = None) -> Rig:
    """A rig from a JSON file (the `rig` record of scene.json); BadInput names the file or flag."""
    path = Path(path)
    if not path.is_file():
        raise BadInput(f"{flag or 'rig'} {path}: no such rig file; give a rig JSON (see the README) or leave it out for the default")
    try:
        d = json.loads(read_text_file(path, "rig file", flag))
    except ValueError as exc:
        raise BadInput(f"{path}: not valid JSON ({exc}); fix the file or remove it to use the default rig") from None
    return Rig.from_dict(d, where=str(path))


def nuscenes_camera(name: str) -> Camera:
    t, q, f, cx, cy = _NUSCENES_CAMERAS[name]
    k = np.array([[f, 0.0, cx], [0.0, f, cy], [0.0, 0.0, 1.0]])
    return Camera(name, 1600, 900, k, pose_matrix(np.asarray(q), t))


def default_rig() -> Rig:
    """The nuScenes rig: six 1600x900 cameras (official order) and a HDL-32E LiDAR."""
    t, q = _NUSCENES_LIDAR
    return Rig([nuscenes_camera(n) for n in CAMERA_NAMES], Lidar("LIDAR_TOP", pose_matrix(np.asarray(q), t)))
