"""The Occ3D-nuScenes occupancy contract: grid geometry, classes, palette, labels.npz I/O.

Grid: 200 x 200 x 16 voxels of 0.4 m over [-40, -40, -1, 40, 40, 5.4] in the ego frame (x
forward, y left, z up), index order (x, y, z). Labels 0..17, 17 = free.
"""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np

from ..errors import BadInput

GRID_SHAPE: tuple[int, int, int] = (200, 200, 16)
VOXEL_SIZE: float = 0.4
RANGE_MIN = np.array([-40.0, -40.0, -1.0])
RANGE_MAX = np.array([40.0, 40.0, 5.4])

CLASS_NAMES: tuple[str, ...] = (
    "others",
    "barrier",
    "bicycle",
    "bus",
    "car",
    "construction_vehicle",
    "motorcycle",
    "pedestrian",
    "traffic_cone",
    "trailer",
    "truck",
    "driveable_surface",
    "other_flat",
    "sidewalk",
    "terrain",
    "manmade",
    "vegetation",
    "free",
)
NUM_CLASSES = len(CLASS_NAMES)  # 18 including free
FREE = 17
CLASS_INDEX = {name: i for i, name in enumerate(CLASS_NAMES)}
# Classes that can carry an instance id (things), as in nuScenes detection.
THING_CLASSES = tuple(range(0, 11))

# The official GenieDrive palette (index 0..19), RGB. Used by previews and camera conditions.
PALETTE = np.array(
    [
        [255, 120, 50], [255, 192, 203], [255, 255, 0], [0, 150, 245], [0, 255, 255],
        [255, 127, 0], [255, 0, 0], [255, 240, 150], [135, 60, 0], [160, 32, 240],
        [255, 0, 255], [139, 137, 137], [75, 0, 75], [150, 240, 80], [230, 230, 250],
        [0, 175, 0], [0, 255, 127], [222, 155, 161], [140, 62, 69], [227, 164, 30],
    ],
    dtype=np.uint8,
)

LABEL_KEYS = ("semantics", "mask_lidar", "mask_camera")


def voxel_centres() -> np.ndarray:
    """Ego-frame centres of all voxels, [200, 200, 16, 3] float32."""
    axes = [
        RANGE_MIN[d] + (np.arange(GRID_SHAPE[d]) + 0.5) * VOXEL_SIZE for d in range(3)
    ]
    return np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).astype(np.float32)


def axis_centres(axis: int) -> np.ndarray:
    """Voxel centre coordinates along one axis ([200] or [16])."""
    return RANGE_MIN[axis] + (np.arange(GRID_SHAPE[axis]) + 0.5) * VOXEL_SIZE


def check_grid(name: str, arr, where: str, dtype=np.uint8, max_value: int | None = None) -> None:
    """Raise BadInput unless `arr` is a 200x200x16 array of `dtype` (values <= max_value);
    dtype None checks the shape only (numpy arrays or torch tensors)."""
    if arr.shape != GRID_SHAPE:
        raise BadInput(
            f"{where}: '{name}' has shape {tuple(arr.shape)}, expected {GRID_SHAPE} (Occ3D x, y, z); "
            "re-export it on the Occ3D grid"
        )
    if dtype is not None and arr.dtype != dtype:
        raise BadInput(
            f"{where}: '{name}' has dtype {arr.dtype}, expected {np.dtype(dtype).name}; "
            f"convert it with .astype(np.{np.dtype(dtype).name})"
        )
    if max_value is not None and arr.size and int(arr.max()) > max_value:
        raise BadInput(
            f"{where}: '{name}' holds value {int(arr.max())}, above the largest allowed {max_value}; "
            "map the labels onto the Occ3D classes 0..17"
        )


def load_labels(path: Path | str, require_masks: bool = True) -> dict[str, np.ndarray]:
    """Read and validate an Occ3D `labels.npz`.

    Returns {'semantics', 'mask_lidar', 'mask_camera'}, each [200, 200, 16] uint8. Masks missing
    from the file are returned as all-ones when `require_masks` is False. Raises BadInput naming
    the file for a missing, truncated or corrupt file, a missing key, wrong shape, dtype or range.
    """
    path = Path(path)
    if not path.is_file():
        raise BadInput(f"{path}: Occ3D frame is missing; check --occ-root or re-export the frame")
    try:
        with np.load(path, allow_pickle=False) as npz:
            keys = set(npz.files)
            out = {k: np.asarray(npz[k]) for k in LABEL_KEYS if k in keys}
    except (zipfile.BadZipFile, EOFError, OSError, ValueError, KeyError, zlib_error()) as exc:
        raise BadInput(
            f"{path}: not a readable npz ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else 'corrupt'}); "
            "the file is truncated or corrupt, re-export it"
        ) from None
    if "semantics" not in out:
        raise BadInput(f"{path}: no 'semantics' array (found {sorted(keys) or 'none'}); write it as Occ3D labels.npz")
    check_grid("semantics", out["semantics"], str(path), max_value=FREE)
    for key in ("mask_lidar", "mask_camera"):
        if key not in out:
            if require_masks:
                raise BadInput(f"{path}: no '{key}' array; Occ3D labels.npz needs semantics, mask_lidar and mask_camera")
            out[key] = np.ones(GRID_SHAPE, np.uint8)
        else:
            check_grid(key, out[key], str(path), max_value=1)
    return out


def zlib_error():
    import zlib

    return zlib.error


def npz_bytes(arrays: dict[str, np.ndarray]) -> bytes:
    """Compressed npz bytes that depend only on the arrays.

    np.savez_compressed stamps each zip entry with the current time, so two runs would write
    different bytes for the same labels; a fixed timestamp makes the files byte-identical.
    """
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=6) as zf:
        for key, arr in arrays.items():
            info = zipfile.ZipInfo(f"{key}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            with zf.open(info, "w", force_zip64=True) as fh:
                np.lib.format.write_array(fh, np.ascontiguousarray(arr), allow_pickle=False)
    return buf.getvalue()


def labels_npz_bytes(semantics: np.ndarray, mask_lidar: np.ndarray, mask_camera: np.ndarray) -> bytes:
    """Encode one frame as Occ3D labels.npz bytes (each array [200, 200, 16] uint8)."""
    return npz_bytes(
        {
            "semantics": semantics.astype(np.uint8, copy=False),
            "mask_lidar": mask_lidar.astype(np.uint8, copy=False),
            "mask_camera": mask_camera.astype(np.uint8, copy=False),
        }
    )


def instances_npz_bytes(instances: np.ndarray) -> bytes:
    """Encode one frame's instance grid ([200, 200, 16] uint16, 0 = none) as npz bytes."""
    return npz_bytes({"instances": instances.astype(np.uint16, copy=False)})


def load_instances(path: Path | str) -> np.ndarray:
    """Read a frame's instance grid written by `instances_npz_bytes`."""
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as npz:
            arr = np.asarray(npz["instances"])
    except (zipfile.BadZipFile, EOFError, OSError, ValueError, KeyError, zlib_error()) as exc:
        raise BadInput(f"{path}: unreadable instance grid ({type(exc).__name__}); re-run prepare-occ with --force") from None
    check_grid("instances", arr, str(path), dtype=np.uint16)
    return arr
