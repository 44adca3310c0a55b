"""Top-down previews of occupancy: colourised by class, shaded by height, with the ego path, a
class legend (the classes in view), a 10 m scale bar and an optional title (such as the time).

Image axes: up = ego +x (forward), left = ego +y (left), 2 px per voxel by default; the legend is a
panel of LEGEND_WIDTH px on the right.
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from .occ3d import CLASS_NAMES, FREE, GRID_SHAPE, PALETTE, RANGE_MIN, VOXEL_SIZE

BACKGROUND = np.array([24, 24, 28], np.uint8)
LEGEND_WIDTH = 150
SCALE_BAR_M = 10.0


@functools.lru_cache(maxsize=8)
def font(size: int = 13) -> ImageFont.ImageFont:
    """Pillow's bundled font (no system fonts needed), loaded once per size."""
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1: the fixed bitmap font
        return ImageFont.load_default()


def label(draw: ImageDraw.ImageDraw, xy: tuple[float, float], text: str, size: int = 13) -> None:
    """Text on a dark box, readable over any picture."""
    f = font(size)
    x0, y0, x1, y1 = draw.textbbox(xy, text, font=f)
    draw.rectangle((x0 - 3, y0 - 2, x1 + 3, y1 + 2), fill=(0, 0, 0))
    draw.text(xy, text, fill=(255, 255, 255), font=f)


def legend_panel(classes, height: int, width: int = LEGEND_WIDTH) -> np.ndarray:
    """[height, width, 3]: a colour swatch and the name of each class index in `classes`."""
    img = Image.new("RGB", (width, height), tuple(int(v) for v in BACKGROUND))
    draw = ImageDraw.Draw(img)
    f = font(12)
    row = max(12, min(20, (height - 8) // max(len(classes), 1)))
    for n, c in enumerate(classes):
        y = 6 + n * row
        draw.rectangle((8, y + 2, 8 + row - 6, y + row - 4), fill=tuple(int(v) for v in PALETTE[c]))
        draw.text((14 + row - 6, y), CLASS_NAMES[c], fill=(230, 230, 230), font=f)
    return np.asarray(img)


def annotate_map(img: Image.Image, scale: int, title: str | None = None) -> None:
    """A 10 m scale bar in the bottom-left corner and the title in the top-left one."""
    draw = ImageDraw.Draw(img)
    bar = SCALE_BAR_M / VOXEL_SIZE * scale
    x0, y = 10, img.height - 12
    draw.rectangle((x0 - 4, y - 18, x0 + bar + 30, y + 6), fill=(0, 0, 0))
    draw.line((x0, y, x0 + bar, y), fill=(255, 255, 255), width=3)
    for x in (x0, x0 + bar):
        draw.line((x, y - 5, x, y + 4), fill=(255, 255, 255), width=2)
    draw.text((x0 + bar / 2 - 10, y - 17), f"{SCALE_BAR_M:g} m", fill=(255, 255, 255), font=font(12))
    if title:
        label(draw, (8, 6), title)


def topdown_rgb(semantics: np.ndarray) -> np.ndarray:
    """[200, 200, 16] labels -> [200, 200, 3] uint8 image (row 0 = far ahead, column 0 = far left).

    Each column shows its highest occupied voxel, darker when lower, so height reads at a glance.
    """
    occ = semantics != FREE
    nz = semantics.shape[2]
    top = nz - 1 - np.argmax(occ[:, :, ::-1], axis=2)  # index of highest occupied voxel
    has = occ.any(axis=2)
    label = np.take_along_axis(semantics, top[..., None], axis=2)[..., 0]
    rgb = PALETTE[np.minimum(label, len(PALETTE) - 1)].astype(np.float32)
    shade = 0.55 + 0.45 * (top.astype(np.float32) / (nz - 1))
    rgb = np.where(has[..., None], rgb * shade[..., None], BACKGROUND.astype(np.float32))
    # x grows forward -> up; y grows left -> left.
    return np.ascontiguousarray(rgb[::-1, ::-1].clip(0, 255).astype(np.uint8))


def _to_pixels(xy: np.ndarray, scale: int) -> np.ndarray:
    """Ego-frame metres [N, 2] -> image (col, row) at `scale` px per voxel."""
    ix = (xy[:, 0] - RANGE_MIN[0]) / VOXEL_SIZE
    iy = (xy[:, 1] - RANGE_MIN[1]) / VOXEL_SIZE
    row = (GRID_SHAPE[0] - ix) * scale
    col = (GRID_SHAPE[1] - iy) * scale
    return np.stack([col, row], axis=1)


def preview_frame(semantics: np.ndarray, ego_path_xy: np.ndarray, current: int, scale: int = 2,
                  title: str | None = None, legend: bool = True) -> np.ndarray:
    """One preview frame [200*scale, 200*scale (+ LEGEND_WIDTH), 3]: occupancy plus the ego path in
    this ego frame, a scale bar, the title, and (with `legend`) the classes in view on the right.

    ego_path_xy: [T, 2] positions of every frame's ego in the current ego frame; `current` marks
    which one is now (past drawn dim, future bright).
    """
    img = Image.fromarray(topdown_rgb(semantics)).resize(
        (GRID_SHAPE[1] * scale, GRID_SHAPE[0] * scale), Image.NEAREST
    )
    draw = ImageDraw.Draw(img)
    px = _to_pixels(np.asarray(ego_path_xy, dtype=np.float64), scale)
    if len(px) > 1:
        past = [tuple(p) for p in px[: current + 1]]
        future = [tuple(p) for p in px[current:]]
        if len(past) > 1:
            draw.line(past, fill=(150, 150, 150), width=2)
        if len(future) > 1:
            draw.line(future, fill=(255, 255, 255), width=2)
    # Ego box (4.5 x 1.9 m, rear axle at the origin).
    box = np.array([[-1.0, -0.95], [3.5, -0.95], [3.5, 0.95], [-1.0, 0.95]])
    draw.polygon([tuple(p) for p in _to_pixels(box, scale)], outline=(255, 255, 255), fill=(90, 90, 90))
    annotate_map(img, scale, title)
    out = np.asarray(img)
    if not legend:
        return out
    present = [int(c) for c in np.unique(semantics) if c != FREE]
    return np.concatenate([out, legend_panel(present, out.shape[0])], axis=1)


def ego_paths(ego_to_global: np.ndarray) -> np.ndarray:
    """[T, 4, 4] poses -> [T, T, 2]: entry [t] is every frame's ego position in ego frame t."""
    p = np.asarray(ego_to_global, dtype=np.float64)
    rel = np.linalg.inv(p)[:, None] @ p[None, :]
    return rel[..., :2, 3]


def write_scene_previews(semantics: np.ndarray, ego_to_global: np.ndarray, png: Path, mp4: Path | None,
                         fps: float = 2.0, scale: int = 2) -> None:
    """PNG of the first frame with the whole ego path; MP4 of every frame (2 Hz keyframes)."""
    paths = ego_paths(ego_to_global)
    Image.fromarray(preview_frame(semantics[0], paths[0], 0, scale, "t = 0 s")).save(png, format="PNG")
    if mp4 is not None:
        frames = [preview_frame(semantics[t], paths[t], t, scale, f"t = {t / fps:g} s") for t in range(len(semantics))]
        write_mp4(mp4, frames, fps)


def write_mp4(path: Path, frames: list[np.ndarray], fps: float) -> None:
    """H.264 MP4 through the ffmpeg binary that imageio-ffmpeg ships (no system ffmpeg needed).

    yuv420p stores colour at half resolution, so libx264 cannot encode an odd width or height (it
    left an unreadable file): such frames get one repeated edge row / column at the bottom / right.
    """
    import imageio_ffmpeg

    h, w = frames[0].shape[:2]
    pad = ((0, h % 2), (0, w % 2), (0, 0))
    writer = imageio_ffmpeg.write_frames(
        str(path), (w + w % 2, h + h % 2), fps=fps, codec="libx264", pix_fmt_out="yuv420p", quality=7,
        macro_block_size=1, output_params=["-movflags", "+faststart"], ffmpeg_log_level="error",
    )
    writer.send(None)
    for f in frames:
        writer.send(np.ascontiguousarray(np.pad(f, pad, mode="edge") if h % 2 or w % 2 else f))
    writer.close()


def read_mp4(path: Path) -> list[np.ndarray]:
    """Every frame of an MP4 as [H, W, 3] uint8 (through imageio-ffmpeg's ffmpeg)."""
    import imageio_ffmpeg

    reader = imageio_ffmpeg.read_frames(str(path))
    meta = next(reader)
    w, h = meta["size"]
    return [np.frombuffer(b, np.uint8).reshape(h, w, 3) for b in reader]
