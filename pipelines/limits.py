"""Bounds on every size a flag or a file can set, and a memory estimate where a bound alone would
not be enough: what would not fit is refused with exit 2 before any work, instead of meeting the
machine's OOM killer (or a MemoryError of terabytes) halfway through.

The limits (also in the README's Workspace section):
- images: each side of a camera image 1..4096 pixels (`--resolution`, rig files);
- time: forecasts and generations up to 600 keyframes ahead (5 min at 2 Hz: `--horizon`, waypoint
  files, `generate --frames` up to 3601), renders up to 120 fps or 120 repeats, synthetic scenes up to
  600 keyframes, occ-folder scenes up to 1,200;
- motion: speeds 0..60 m/s (`--speed`, `edit --speed`, waypoint files between keyframes);
- LiDAR: 1..512 beams, 1..36,000 azimuth steps, range up to 1,000 m;
- counts: seeds 0..2^32-1, steps up to 10^8, batches up to 4,096, worker processes up to 4 per core;
- text files read whole (recipes, waypoints, rigs, class maps, scene records): 64 MiB.
"""

from __future__ import annotations

import dataclasses
import math
import os
from pathlib import Path

from .errors import BadInput

MAX_SEED = 2**32 - 1
MAX_SPEED = 60.0  # m/s, 216 km/h
MAX_HORIZON = 600  # keyframes at 2 Hz: 5 minutes
MAX_IMAGE_SIDE = 4096
MAX_SYNTHETIC_FRAMES = 600  # keyframes per synthetic scene (5 minutes; ~2 GB per worker while built)
MAX_SCENE_FRAMES = 1200  # keyframes of one occ-folder scene (10 minutes, ~4 GB while it is built)
MAX_FPS = 120.0  # render rate (and repeats per keyframe)
MAX_VIDEO_FRAMES = MAX_HORIZON * 6 + 1  # 3601: 12 fps frames covering the longest forecast
DEFAULT_VIDEO_FRAMES = 241  # `generate`: 20 s, three 81-frame rollout rounds
FVD_CLIP_FRAMES = 16  # frames per FVD clip (StyleGAN-V's protocol)
MAX_TEXT_FILE = 64 * 2**20
MEMORY_SHARE = 0.8  # of the memory available now that one run may plan to use


def check_int(value: object, flag: str, lo: int, hi: int | None = None) -> int:
    """`value` as an int in [lo, hi], else BadInput naming the flag and the bound it breaks."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise BadInput(f"{flag} {value!r}: must be a whole number")
    if value < lo:
        raise BadInput(f"{flag} {value}: must be " + ("a positive number" if lo == 1 else
                                                       "0 or more" if lo == 0 else f"at least {lo:,}"))
    if hi is not None and value > hi:
        raise BadInput(f"{flag} {value}: must be at most {hi:,}")
    return value


def check_real(value: object, flag: str, lo: float, hi: float, low_open: bool = False) -> float:
    """`value` as a finite float in [lo, hi] (or (lo, hi] with `low_open`), else BadInput."""
    want = ("above" if low_open else "at least") + f" {lo:g}" + (f" and at most {hi:g}" if math.isfinite(hi) else "")
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise BadInput(f"{flag} {value!r}: must be a finite number {want}")
    if value < lo or (low_open and value <= lo) or value > hi:
        raise BadInput(f"{flag} {value:g}: must be {want}")
    return float(value)


def check_fields(part, ranges: dict, where: str) -> None:
    """Every field of a config dataclass read from a file has its default's type (bool is no
    number, an int is a float; tuples are checked element-wise against their default's elements)
    and, for the fields in `ranges`, a value in [lo, hi]."""
    for f in dataclasses.fields(part):
        if f.default is dataclasses.MISSING:
            continue
        value = getattr(part, f.name)
        if not _same_type(value, f.default):
            raise BadInput(f"{where}.{f.name} = {value!r}: expected {type(f.default).__name__} like {f.default!r}; "
                           "rebuild the config from a named one")
        if f.name in ranges:
            lo, hi = ranges[f.name]
            values = value if isinstance(value, tuple) else (value,)
            if not all(lo <= v <= hi for v in values):
                raise BadInput(f"{where}.{f.name} = {value!r}: must lie in {lo}..{hi}; rebuild the config from a named one")


def _same_type(value, default) -> bool:
    if isinstance(default, bool):
        return isinstance(value, bool)
    if isinstance(default, int):
        return isinstance(value, int) and not isinstance(value, bool)
    if isinstance(default, float):
        return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if isinstance(default, tuple):
        return isinstance(value, tuple) and (not default or all(_same_type(v, default[0]) for v in value))
    return isinstance(value, type(default))


def available_memory() -> int | None:
    """Bytes of memory available to a new allocation now (Linux MemAvailable), or None if unknown."""
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def check_memory(needed: float, what: str, flag: str, hint: str) -> None:
    """BadInput when `needed` bytes exceed the share of available memory one run may plan on."""
    free = available_memory()
    if free is not None and needed > MEMORY_SHARE * free:
        raise BadInput(f"{flag}: {what} needs about {needed / 2**30:.1f} GiB of memory and "
                       f"{free / 2**30:.1f} GiB is available; {hint}")


def read_text_file(path: Path, what: str, flag: str | None = None) -> str:
    """A small text file (recipe, waypoints, rig, class map) as str: bounded in size, UTF-8 (a
    byte-order mark is allowed), else BadInput naming the file."""
    name = f"{flag} {path}" if flag else str(path)
    try:
        size = path.stat().st_size
        if size > MAX_TEXT_FILE:
            raise BadInput(f"{name}: {size / 2**20:.0f} MiB is too large for a {what} (at most "
                           f"{MAX_TEXT_FILE // 2**20} MiB); pass the right file")
        return path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise BadInput(f"{name}: not UTF-8 text (byte {exc.start}); save the {what} as UTF-8") from None
    except OSError as exc:
        raise BadInput(f"{name}: cannot read the {what} ({exc.strerror or type(exc).__name__})") from None
