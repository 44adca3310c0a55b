"""The videos `gdrive evaluate video` compares: per-camera MP4s found under two folders, paired by
their relative path, decoded to frames and cut into FVD clips (layout in `metrics`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import numpy as np

from ..console import ui
from ..errors import BadInput


def find_videos(root: Path, flag: str) -> dict[str, Path]:
    """Relative posix path → file for every *.mp4 under `root` (hidden folders skipped)."""
    if not root.is_dir():
        raise BadInput(f"{flag} {root}: folder does not exist; give a folder of per-camera MP4s (DIR/<run>/<CAMERA>.mp4)")
    found = {p.relative_to(root).as_posix(): p for p in sorted(root.rglob("*.mp4"))
             if p.is_file() and not any(part.startswith(".") for part in p.relative_to(root).parts)}
    if not found:
        raise BadInput(f"{flag} {root}: no .mp4 videos under it; give a folder of per-camera MP4s "
                       "(DIR/<run>/<CAMERA>.mp4, e.g. what gdrive generate writes)")
    return found


def pair_videos(real: dict[str, Path], generated: dict[str, Path], real_dir: Path, gen_dir: Path,
                unpaired: bool) -> tuple[list[Path], list[Path], dict[str, int]]:
    """The two video lists to compare and how many of each side were left out."""
    if unpaired:
        return list(real.values()), list(generated.values()), {"real": 0, "generated": 0}
    common = sorted(real.keys() & generated.keys())
    if not common:
        raise BadInput(f"--generated {gen_dir}: none of its {len(generated)} videos (e.g. {next(iter(generated))}) has a "
                       f"counterpart at the same relative path under --real {real_dir} (e.g. {next(iter(real))}); "
                       "mirror the layout or pass --unpaired")
    left = {"real": len(real) - len(common), "generated": len(generated) - len(common)}
    for side, n in left.items():
        if n:
            ui.warn(f"{n} {side} video(s) have no counterpart on the other side and are left out (--unpaired uses all)")
    return [real[k] for k in common], [generated[k] for k in common], left


def read_video(path: Path) -> np.ndarray:
    """uint8 [T, H, W, 3] RGB frames of an MP4, decoded by the ffmpeg that imageio-ffmpeg ships."""
    import imageio_ffmpeg

    frames: list[np.ndarray] = []
    try:
        gen = imageio_ffmpeg.read_frames(str(path), pix_fmt="rgb24")
        w, h = next(gen)["size"]
        for buf in gen:
            frames.append(np.frombuffer(buf, np.uint8).reshape(h, w, 3))
    except (OSError, RuntimeError, StopIteration, KeyError) as exc:
        raise BadInput(f"{path}: not a readable video ({' '.join(str(exc).split())[:120]}); re-encode it as MP4") from None
    if not frames:
        raise BadInput(f"{path}: video has no frames; remove it or re-encode it")
    return np.stack(frames)


def clips_of(frames: np.ndarray, clip_frames: int, all_clips: bool, path: Path) -> np.ndarray:
    """[T, H, W, 3] → [K, clip_frames, H, W, 3]: the first clip, or every non-overlapping one."""
    t = len(frames)
    if t < clip_frames:
        raise BadInput(f"{path}: {t} frames, shorter than an FVD clip of {clip_frames}; "
                       f"pass --clip-frames {t} (and the same for every method you compare) or use longer videos")
    k = t // clip_frames if all_clips else 1
    return frames[:k * clip_frames].reshape(k, clip_frames, *frames.shape[1:])


def batches(x: np.ndarray, size: int) -> Iterator[np.ndarray]:
    for i in range(0, len(x), size):
        yield x[i:i + size]
