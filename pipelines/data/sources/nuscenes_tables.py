"""Reading the nuScenes tables for the `nuscenes` source: the input checked up front (folders,
version, every table the devkit opens, the Occ3D `gts`), the tables opened through
nuscenes-devkit with its failures turned into one-line errors, and the official splits.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from ...errors import BadInput

# The tables `nuscenes.NuScenes` reads (it opens all of them, in this order).
NUSCENES_TABLES = (
    "category",
    "attribute",
    "visibility",
    "instance",
    "sensor",
    "calibrated_sensor",
    "ego_pose",
    "log",
    "scene",
    "sample",
    "sample_data",
    "sample_annotation",
    "map",
)


def _one_line(text: object, limit: int = 240) -> str:
    s = " ".join(str(text).split())
    return s if len(s) <= limit else s[: limit - 3] + "..."


# --------------------------------------------------------------------------------------------
# Up-front validation
# --------------------------------------------------------------------------------------------


def _version_folders(dataroot: Path) -> list[str]:
    """Sub-folders of `dataroot` that look like nuScenes version folders."""
    out = []
    try:
        for d in sorted(dataroot.iterdir()):
            if d.is_dir() and ((d / "scene.json").is_file() or re.match(r"v\d", d.name)):
                out.append(d.name)
    except OSError:
        pass
    return out


def occ_gts_dir(dataroot: Path | str, occ_root: Path | str | None = None) -> Path | None:
    """The Occ3D `gts` folder: `<occ_root>/gts` (occ_root defaults to dataroot); `occ_root` may
    also be the `gts` folder itself. None when there is none."""
    base = Path(occ_root) if occ_root is not None else Path(dataroot)
    if (base / "gts").is_dir():
        return base / "gts"
    if base.name == "gts" and base.is_dir():
        return base
    return None


def check_nuscenes_input(dataroot: Path | str, version: str, occ_root: Path | str | None = None) -> None:
    """Validate the inputs of the nuScenes source before anything is read or written.

    Raises BadInput (one line naming the flag or file) for a missing, non-folder or empty
    dataroot, a missing version folder (listing the version folders that exist), a missing
    table json, and a missing Occ3D `gts` folder.
    """
    dataroot = Path(dataroot)
    if not dataroot.exists():
        raise BadInput(
            f"--dataroot: {dataroot} does not exist; point it at the nuScenes folder that holds the "
            f"version folder ({version}/) and maps/"
        )
    if not dataroot.is_dir():
        raise BadInput(f"--dataroot: {dataroot} is not a folder; point it at the nuScenes folder that holds {version}/")
    try:
        empty = not any(dataroot.iterdir())
    except OSError as exc:
        raise BadInput(f"--dataroot: cannot list {dataroot} ({_one_line(exc)}); check its permissions") from None
    if empty:
        raise BadInput(
            f"--dataroot: {dataroot} is an empty folder; extract the nuScenes metadata ({version}/ tables "
            "and maps/) into it"
        )
    if not version or "/" in version or "\\" in version or version in (".", ".."):
        raise BadInput(f"--version: '{version}' is not a version folder name; use e.g. v1.0-mini or v1.0-trainval")
    table_root = dataroot / version
    if not table_root.is_dir():
        found = _version_folders(dataroot)
        if found:
            raise BadInput(
                f"--version: no folder '{version}' under {dataroot}; the version folders there are "
                f"{', '.join(found)}; pass one of them with --version"
            )
        raise BadInput(
            f"--version: no folder '{version}' under {dataroot}, and no nuScenes version folder "
            "(e.g. v1.0-mini holding scene.json) at all; check --dataroot"
        )
    missing = [t for t in NUSCENES_TABLES if not (table_root / f"{t}.json").is_file()]
    if missing:
        more = f" (also missing: {', '.join(m + '.json' for m in missing[1:])})" if len(missing) > 1 else ""
        raise BadInput(
            f"{table_root / (missing[0] + '.json')}: nuScenes table missing{more}; re-extract the "
            f"{version} metadata into {table_root}"
        )
    if occ_root is not None and not Path(occ_root).exists():
        raise BadInput(f"--occ-root: {occ_root} does not exist; pass the folder that holds the Occ3D gts/ folder")
    if occ_gts_dir(dataroot, occ_root) is None:
        base = occ_root if occ_root is not None else dataroot
        raise BadInput(
            f"--occ-root: no Occ3D gts/ folder under {base}; download Occ3D-nuScenes and pass the folder "
            "holding gts/ with --occ-root"
        )


# --------------------------------------------------------------------------------------------
# Opening the tables through nuscenes-devkit
# --------------------------------------------------------------------------------------------


def _find_bad_json(table_root: Path) -> tuple[Path, Exception] | None:
    for t in NUSCENES_TABLES:
        path = table_root / f"{t}.json"
        try:
            with open(path, encoding="utf-8") as f:
                json.load(f)
        except (ValueError, OSError) as exc:
            return path, exc
    return None


def open_nuscenes(dataroot: Path, version: str):
    """`nuscenes.NuScenes(...)` with its failures turned into one-line BadInput errors."""
    from nuscenes import NuScenes

    table_root = dataroot / version
    what_to_do = f"re-extract the {version} metadata (tables and maps/) into {dataroot}"
    try:
        return NuScenes(version=version, dataroot=str(dataroot), verbose=False)
    except FileNotFoundError as exc:
        name = exc.filename or _one_line(exc)
        raise BadInput(f"{name}: file missing while nuscenes-devkit loads {version}; {what_to_do}") from None
    except AssertionError as exc:
        msg = _one_line(exc) or "assertion failed"
        m = re.match(r"map mask (.+) does not exist", msg)
        if m:
            raise BadInput(
                f"{m.group(1)}: map mask named by {table_root / 'map.json'} does not exist; copy the nuScenes "
                f"maps/ folder into {dataroot}"
            ) from None
        raise BadInput(f"{table_root}: nuscenes-devkit rejected the tables ({msg}); {what_to_do}") from None
    except ValueError as exc:  # json.JSONDecodeError, UnicodeDecodeError
        bad = _find_bad_json(table_root)
        if bad is not None:
            path, err = bad
            raise BadInput(
                f"{path}: not valid JSON ({_one_line(err)}); the table is truncated or corrupt, {what_to_do}"
            ) from None
        raise BadInput(f"{table_root}: nuscenes-devkit failed ({type(exc).__name__}: {_one_line(exc)}); {what_to_do}") from None
    except (KeyError, IndexError, TypeError, AttributeError) as exc:
        raise BadInput(
            f"{table_root}: inconsistent nuScenes tables ({type(exc).__name__}: {_one_line(exc)}; a token or "
            f"field the tables refer to is missing, or a table is empty); {what_to_do}"
        ) from None
    except Exception as exc:  # the devkit raises a bare Exception for a map table without log_tokens
        if type(exc) is not Exception:
            raise
        raise BadInput(f"{table_root}: nuscenes-devkit cannot load the tables ({_one_line(exc)}); {what_to_do}") from None


def split_table(version: str) -> dict[str, str]:
    """scene name -> 'train' / 'val' / 'test' from the official splits for this version."""
    from nuscenes.utils.splits import create_splits_scenes

    official = create_splits_scenes()
    v = version.lower()
    if "mini" in v:
        pairs = (("train", "mini_train"), ("val", "mini_val"))
    elif "test" in v:
        pairs = (("test", "test"),)
    elif "trainval" in v:
        pairs = (("train", "train"), ("val", "val"))
    else:
        pairs = (("train", "train"), ("val", "val"), ("test", "test"))
    return {scene: ours for ours, theirs in pairs for scene in official[theirs]}
