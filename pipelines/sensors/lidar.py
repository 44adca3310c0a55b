"""LiDAR sweeps from semantic occupancy: first-hit ray casting, nuScenes `.pcd.bin`, previews.

One sweep fires every beam of the rig's LiDAR (HDL-32E by default: 32 rings x 1080 azimuth steps)
through the occupancy grid with the exact DDA of `data/raycast.py`. A ray returns a point where it
first enters an occupied voxel; a ray that leaves the grid, or reaches `lidar.max_range` first,
returns nothing (as a real sensor gets no echo from the sky). Each point carries the label and
instance of the voxel it hit, its range, its ring (beam index in the rig's firing order, the
order of `lidar.elevations_deg`, as in the nuScenes ring column) and its index in the full
ring-major ray table (`ray_index = ring * azimuth_steps + azimuth_step`), from which range images
are rebuilt.

Camera and LiDAR come from the same occupancy, so they agree by construction: a point hits the
face of the voxel that the camera ray through its pixel also meets first (unless the two sensors'
different viewpoints hide one from the other).

Intensity (nuScenes-like, 0..255): a deterministic Lambertian model,
    intensity = round(REFLECTIVITY[label] * cos(incidence)),
where the incidence angle is between the beam and the normal of the voxel face it entered through
(grid-aligned, so cos = |component of the unit beam direction along that face's axis|), and
REFLECTIVITY is a per-class constant chosen near typical nuScenes values (dark asphalt ~15,
vehicles ~40, retroreflective traffic cones ~120). A ray that starts inside an occupied voxel
(range 0) counts as normal incidence.

Output: `write_pcd_bin` writes the nuScenes layout (float32 x 5: x, y, z, intensity, ring in the
LiDAR frame), which nuscenes-devkit `LidarPointCloud.from_file` reads; `write_point_labels`
writes the per-point label, instance, range and ray index beside it. Both are atomic (temporary
sibling, fsync, os.replace).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np

from ..data.occ3d import FREE, GRID_SHAPE, NUM_CLASSES, PALETTE, RANGE_MIN, VOXEL_SIZE, check_grid, npz_bytes
from ..data.preview import BACKGROUND
from ..errors import BadInput
from ..data.raycast import cast_rays, lidar_rays
from ..store.atomic import write_bytes_atomic

# Per-class reflectivity (intensity at normal incidence, nuScenes 0..255 scale), Occ3D class order.
REFLECTIVITY = np.array(
    [
        30.0,  # others
        60.0,  # barrier
        40.0,  # bicycle
        50.0,  # bus
        40.0,  # car
        50.0,  # construction_vehicle
        40.0,  # motorcycle
        25.0,  # pedestrian
        120.0,  # traffic_cone (retroreflective bands)
        50.0,  # trailer
        50.0,  # truck
        15.0,  # driveable_surface
        20.0,  # other_flat
        30.0,  # sidewalk
        25.0,  # terrain
        45.0,  # manmade
        35.0,  # vegetation
        0.0,  # free (never hit)
    ],
    dtype=np.float32,
)
assert len(REFLECTIVITY) == NUM_CLASSES

RANGE_SHADE = 60.0  # previews: colour * 1 / (1 + range / RANGE_SHADE), as camera `colorize`


@dataclass
class LidarSweep:
    """The returns of one sweep (only rays that hit), in ring-major ray order."""

    points: np.ndarray  # [N, 3] float32, LiDAR sensor frame (metres)
    intensity: np.ndarray  # [N] float32 in [0, 255] (integer values)
    ring: np.ndarray  # [N] int32 beam index in the rig's firing order
    label: np.ndarray  # [N] uint8 Occ3D class of the hit voxel
    instance: np.ndarray  # [N] uint16 instance id of the hit voxel, 0 = none
    range: np.ndarray  # [N] float32 metres from the sensor
    ray_index: np.ndarray  # [N] int32 into the ring-major ray table (ring * azimuth_steps + step)
    n_rings: int
    azimuth_steps: int
    elevations_deg: tuple[float, ...] = ()  # per ring, firing order
    sensor_to_ego: np.ndarray = field(default_factory=lambda: np.eye(4))  # LiDAR -> rendering ego
    ego_pose: np.ndarray = field(default_factory=lambda: np.eye(4))  # rendering ego -> grid ego frame

    def __len__(self) -> int:
        return len(self.range)

    @property
    def azimuth_step(self) -> np.ndarray:
        """[N] firing step within the ring (counter-clockwise from the sensor's +x axis)."""
        return self.ray_index % self.azimuth_steps

    def ego_points(self) -> np.ndarray:
        """[N, 3] float64 points in the rendering ego's frame."""
        return self.points.astype(np.float64) @ self.sensor_to_ego[:3, :3].T + self.sensor_to_ego[:3, 3]


@dataclass
class _PosedLidar:
    """What `lidar_rays` reads of a Lidar, with the pose in the grid frame."""

    sensor_to_ego: np.ndarray
    elevations_deg: tuple[float, ...]
    azimuth_steps: int


@lru_cache(maxsize=16)
def _ray_table(key: bytes, elevations: tuple[float, ...], azimuth_steps: int):
    """Grid-frame ray origins/unit directions and sensor-frame unit directions of one sweep.

    Keyed on the LiDAR pose in the grid frame (bytes of the 4x4) and the beam layout, so a rig at
    a fixed pose (every keyframe) reuses its table. Arrays are read-only.
    """
    pose = np.frombuffer(key, dtype=np.float64).reshape(4, 4)
    lid = _PosedLidar(pose, elevations, azimuth_steps)
    origins, dirs = lidar_rays(lid)
    dirs = dirs / np.linalg.norm(dirs, axis=1, keepdims=True)
    origins = np.ascontiguousarray(origins, dtype=np.float64)
    dirs = np.ascontiguousarray(dirs, dtype=np.float64)
    d_sensor = np.ascontiguousarray(dirs @ pose[:3, :3])  # R^T d per row: the beam in the LiDAR frame
    for a in (origins, dirs, d_sensor):
        a.flags.writeable = False
    return origins, dirs, d_sensor


def _entry_cosine(hit_ijk: np.ndarray, hit_vox: np.ndarray, dirs: np.ndarray) -> np.ndarray:
    """|cos| of the incidence angle on the voxel face each ray entered through.

    hit_vox: hit points in voxel units; a ray going +a enters voxel i through plane i, going -a
    through plane i + 1. The entry face is the one the hit point lies on (smallest gap).
    """
    face = hit_ijk + (dirs < 0)
    gap = np.abs(hit_vox - face)
    gap[np.abs(dirs) < 1e-12] = np.inf
    axis = np.argmin(gap, axis=1)
    cos = np.abs(np.take_along_axis(dirs, axis[:, None], axis=1)[:, 0])
    inside = np.take_along_axis(gap, axis[:, None], axis=1)[:, 0] > 1e-6  # started inside a voxel
    cos[inside] = 1.0
    return cos


def lidar_sweep(semantics, lidar, instances=None, ego_pose=None) -> LidarSweep:
    """Cast one sweep of `lidar` through the grid and return its hits.

    semantics: [200, 200, 16] uint8 labels in the grid's ego frame (FREE = 17 is empty).
    lidar: a rig `Lidar` (sensor_to_ego, elevations_deg, azimuth_steps, max_range).
    instances: optional [200, 200, 16] uint16 instance grid (0 = none); zeros when None.
    ego_pose: optional 4x4 pose of the rendering ego in the grid's ego frame (e.g. interpolated
    between keyframes); the LiDAR rides on it. Identity when None.
    """
    sem = np.asarray(semantics)
    check_grid("semantics", sem, "lidar", dtype=None)
    if instances is not None:
        instances = np.asarray(instances)
        check_grid("instances", instances, "lidar", dtype=None)
    pose = np.eye(4) if ego_pose is None else np.asarray(ego_pose, dtype=np.float64)
    if pose.shape != (4, 4) or not np.all(np.isfinite(pose)):
        raise BadInput("ego_pose must be a finite 4x4 matrix")
    extrinsic = np.asarray(lidar.sensor_to_ego, dtype=np.float64)
    elevations = tuple(float(e) for e in lidar.elevations_deg)
    steps = int(lidar.azimuth_steps)
    if not elevations or steps <= 0:
        raise BadInput(f"lidar {getattr(lidar, 'name', '')}: needs at least one ring and one azimuth step")
    sensor_to_grid = np.ascontiguousarray(pose @ extrinsic)
    origins, dirs, d_sensor = _ray_table(sensor_to_grid.tobytes(), elevations, steps)

    max_range = float(lidar.max_range)
    occupied = (sem != FREE).view(np.uint8)  # uint8 view: cast_rays makes no copy
    idx, dist = cast_rays(occupied, origins, dirs, max_range)
    hit = np.flatnonzero(dist <= max_range)  # inf (no hit) compares False
    ijk = idx[hit]
    rng = dist[hit]
    flat = (ijk[:, 0] * GRID_SHAPE[1] + ijk[:, 1]) * GRID_SHAPE[2] + ijk[:, 2]
    label = sem.reshape(-1).take(flat).astype(np.uint8, copy=False)
    inst = (
        instances.reshape(-1).take(flat).astype(np.uint16, copy=False)
        if instances is not None
        else np.zeros(len(hit), np.uint16)
    )
    # Point in the LiDAR frame: inv(ego_pose @ sensor_to_ego) (origin + dir * range) = R^T dir * range.
    points = (d_sensor[hit] * rng[:, None]).astype(np.float32)
    d_hit = dirs[hit]
    hit_vox = (origins[hit] + d_hit * rng[:, None] - RANGE_MIN) / VOXEL_SIZE
    cos = _entry_cosine(ijk, hit_vox, d_hit)
    intensity = np.rint(REFLECTIVITY[np.minimum(label, FREE)] * cos).clip(0, 255).astype(np.float32)
    ray_index = hit.astype(np.int32)
    return LidarSweep(
        points=points,
        intensity=intensity,
        ring=(ray_index // steps).astype(np.int32),
        label=label,
        instance=inst,
        range=rng.astype(np.float32),
        ray_index=ray_index,
        n_rings=len(elevations),
        azimuth_steps=steps,
        elevations_deg=elevations,
        sensor_to_ego=extrinsic.copy(),
        ego_pose=pose.copy(),
    )


# --- files -----------------------------------------------------------------------------------


def pcd_array(sweep: LidarSweep) -> np.ndarray:
    """[N, 5] float32 rows (x, y, z, intensity, ring): the nuScenes LIDAR_TOP layout."""
    out = np.empty((len(sweep), 5), np.float32)
    out[:, :3] = sweep.points
    out[:, 3] = sweep.intensity
    out[:, 4] = sweep.ring
    return out


def write_pcd_bin(path, sweep: LidarSweep) -> Path:
    """Write the sweep as a nuScenes `.pcd.bin` (float32 x 5, little-endian), atomically."""
    path = Path(path)
    write_bytes_atomic(path, pcd_array(sweep).astype("<f4", copy=False).tobytes())
    return path


def point_labels_path(pcd_path) -> Path:
    """Where the labels of `foo.pcd.bin` go: `foo.labels.npz` beside it."""
    p = Path(pcd_path)
    name = p.name[: -len(".pcd.bin")] if p.name.endswith(".pcd.bin") else p.stem
    return p.with_name(f"{name}.labels.npz")


def write_point_labels(path, sweep: LidarSweep) -> Path:
    """Per-point label (uint8), instance (uint16), range (float32 m) and ray_index (int32), npz.

    `path` is either the npz to write or the sweep's `.pcd.bin`, in which case the npz goes
    beside it (`point_labels_path`). Rows match the `.pcd.bin` rows. Atomic, byte-deterministic.
    """
    path = Path(path)
    if path.name.endswith(".pcd.bin"):
        path = point_labels_path(path)
    data = npz_bytes(
        {
            "label": sweep.label.astype(np.uint8, copy=False),
            "instance": sweep.instance.astype(np.uint16, copy=False),
            "range": sweep.range.astype(np.float32, copy=False),
            "ray_index": sweep.ray_index.astype(np.int32, copy=False),
        }
    )
    write_bytes_atomic(path, data)
    return path


# --- previews ----------------------------------------------------------------------------------


def _label_rgb(label: np.ndarray, rng: np.ndarray) -> np.ndarray:
    rgb = PALETTE[np.minimum(label, len(PALETTE) - 1)].astype(np.float32)
    shade = 1.0 / (1.0 + rng.astype(np.float32) / RANGE_SHADE)
    return rgb * shade[:, None]


def topdown_image(sweep: LidarSweep, extent: float = 40.0, size: int = 400) -> np.ndarray:
    """[size, size, 3] uint8 bird's-eye view of the points in the rendering ego's frame.

    Up = ego +x (forward), left = ego +y, like the occupancy previews; +-extent metres each way.
    Points are coloured by label with the project palette on the dark background, drawn low to
    high so the top of each column shows; the ego (sensor position) is a small white cross.
    """
    if size <= 0 or extent <= 0:
        raise BadInput(f"topdown_image: size {size} and extent {extent} must be positive")
    img = np.empty((size, size, 3), np.uint8)
    img[:] = BACKGROUND
    if len(sweep):
        p = sweep.ego_points()
        scale = size / (2.0 * extent)
        row = np.floor((extent - p[:, 0]) * scale).astype(np.int64)
        col = np.floor((extent - p[:, 1]) * scale).astype(np.int64)
        ok = (row >= 0) & (row < size) & (col >= 0) & (col < size)
        order = np.argsort(p[ok, 2], kind="stable")  # later writes win: highest point on top
        rgb = PALETTE[np.minimum(sweep.label[ok], len(PALETTE) - 1)][order]
        img[row[ok][order], col[ok][order]] = rgb
    c = size // 2
    sx, sy = sweep.sensor_to_ego[0, 3], sweep.sensor_to_ego[1, 3]
    r0 = int(np.clip(np.floor((extent - sx) * size / (2 * extent)), 0, size - 1))
    c0 = int(np.clip(np.floor((extent - sy) * size / (2 * extent)), 0, size - 1))
    arm = max(2, c // 50)
    img[max(r0 - arm, 0): r0 + arm + 1, c0] = 255
    img[r0, max(c0 - arm, 0): c0 + arm + 1] = 255
    return img


def range_raster(sweep: LidarSweep) -> tuple[np.ndarray, np.ndarray]:
    """(range [R, A] float32, inf for no return; label [R, A] uint8, FREE for no return).

    Rows are rings sorted by elevation, highest first; column j is azimuth step j
    (counter-clockwise from the sensor's +x axis), the order of the ray table.
    """
    n = sweep.n_rings * sweep.azimuth_steps
    rng = np.full(n, np.inf, np.float32)
    lab = np.full(n, FREE, np.uint8)
    rng[sweep.ray_index] = sweep.range
    lab[sweep.ray_index] = sweep.label
    rows = _rows_top_down(sweep)
    shape = (sweep.n_rings, sweep.azimuth_steps)
    return rng.reshape(shape)[rows], lab.reshape(shape)[rows]


def _rows_top_down(sweep: LidarSweep) -> np.ndarray:
    if len(sweep.elevations_deg) == sweep.n_rings:
        return np.argsort(-np.asarray(sweep.elevations_deg, dtype=np.float64), kind="stable")
    return np.arange(sweep.n_rings)


def panorama_columns(sweep: LidarSweep) -> np.ndarray:
    """[A] azimuth step shown in each column of `range_image`: as seen from the sensor, with the
    ego's forward direction in the middle column, left of the car on the left, behind at the edges
    (azimuth decreasing from left to right)."""
    fwd = sweep.sensor_to_ego[:3, :3].T @ np.array([1.0, 0.0, 0.0])  # ego +x in the sensor frame
    a = sweep.azimuth_steps
    centre = np.arctan2(fwd[1], fwd[0]) * a / (2 * np.pi)
    return np.round(centre + a // 2 - np.arange(a)).astype(np.int64) % a


def range_image(sweep: LidarSweep) -> np.ndarray:
    """[n_rings, azimuth_steps, 3] uint8: label colours darkened with range; no return is dark.

    Rings sorted by elevation (top row highest); columns form a panorama with the ego's forward
    direction in the middle (`panorama_columns`).
    """
    rng, lab = range_raster(sweep)
    cols = panorama_columns(sweep)
    rng, lab = rng[:, cols], lab[:, cols]
    hit = np.isfinite(rng)
    out = np.empty((*rng.shape, 3), np.float32)
    out[:] = BACKGROUND
    out[hit] = _label_rgb(lab[hit], rng[hit])
    return out.clip(0, 255).astype(np.uint8)


__all__ = [
    "LidarSweep",
    "REFLECTIVITY",
    "lidar_sweep",
    "panorama_columns",
    "pcd_array",
    "point_labels_path",
    "range_image",
    "range_raster",
    "topdown_image",
    "write_pcd_bin",
    "write_point_labels",
]
