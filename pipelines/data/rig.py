"""Sensor rigs: pinhole cameras and a spinning LiDAR, with their sensor->ego extrinsics.

The default rig is the nuScenes one (log n015 calibration, 1600x900 cameras, HDL-32E LiDAR), used
for synthetic worlds; real logs carry their own calibration into `scene.json`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from pipelines.errors import BadInput
from pipelines.geometry import is_rotation, pose_matrix

# nuScenes camera order as the official rasterizer writes it.
CAMERA_NAMES = (
    "CAM_FRONT",
    "CAM_FRONT_RIGHT",
    "CAM_BACK_RIGHT",
    "CAM_BACK",
    "CAM_BACK_LEFT",
    "CAM_FRONT_LEFT",
)

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
        try:
            cams = [
                Camera(
                    c["name"],
                    int(c["width"]),
                    int(c["height"]),
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
                int(ld.get("azimuth_steps", 1080)),
                float(ld.get("max_range", 70.0)),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise BadInput(f"{where}: malformed sensor rig ({type(exc).__name__}: {exc}); see the rig format in the README") from None
        rig = cls(cams, lidar, d.get("name", "custom"), d.get("meta", {}))
        rig.validate(where)
        return rig

    def validate(self, where: str = "rig") -> None:
        for c in self.cameras:
            if c.width <= 0 or c.height <= 0:
                raise BadInput(f"{where}: camera {c.name} has size {c.width}x{c.height}; width and height must be positive")
            if c.intrinsic.shape != (3, 3) or not np.all(np.isfinite(c.intrinsic)) or c.intrinsic[0, 0] <= 0 or c.intrinsic[1, 1] <= 0:
                raise BadInput(f"{where}: camera {c.name} intrinsic must be a 3x3 matrix with positive focal lengths")
            _check_extrinsic(c.sensor_to_ego, f"{where}: camera {c.name}")
        _check_extrinsic(self.lidar.sensor_to_ego, f"{where}: lidar {self.lidar.name}")


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
        d = json.loads(path.read_text())
    except (ValueError, UnicodeDecodeError) as exc:
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
