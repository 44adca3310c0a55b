"""The side-by-side video `generate` writes: per frame [top-down occupancy with the ego path | the six
views | LiDAR bird's-eye view], each scaled to the same height (at most HEIGHT rows).

The top-down panel shows the keyframe (2 Hz) the frame is rendered from, in that keyframe's ego
frame, with the whole ego path (past dim, future bright), the class legend and a scale bar; the
views carry their names and the time; the LiDAR panel is the render's `lidar_topdown.mp4`.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from ..data.sequence import OccupancySequence
from ..data.preview import label, preview_frame, read_mp4
from ..sensors.camera import labelled_grid

HEIGHT = 512


def _fit(img: np.ndarray, height: int) -> np.ndarray:
    if img.shape[0] == height:
        return img
    width = max(1, round(img.shape[1] * height / img.shape[0]))
    return np.asarray(Image.fromarray(img).resize((width, height), Image.BILINEAR))


class SideBySide:
    """Frames made when the MP4 writer asks: video [V, N, H, W, 3] uint8 of `views`; occupancy the
    keyframes it was rendered from; render the render folder (frames.json, lidar_topdown.mp4)."""

    def __init__(self, video: np.ndarray, views, occupancy: OccupancySequence, render: Path, fps: float):
        self.video, self.views, self.fps = video, list(views), fps
        self.occupancy = occupancy
        self.index = {t: k for k, t in enumerate(occupancy.tokens)}
        poses = np.asarray(occupancy.poses, dtype=np.float64)
        self.paths = (np.linalg.inv(poses)[:, None] @ poses[None])[..., :2, 3]  # [K, K, 2]: all egos in frame k
        self.render_frames = json.loads((render / "frames.json").read_text())["frames"]
        bev = render / "lidar_topdown.mp4"
        self.bev = read_mp4(bev) if bev.is_file() else None
        self._top: tuple[int, np.ndarray] | None = None
        self.height = min(HEIGHT, video.shape[2] * (2 if len(views) == 6 else 1))

    def __len__(self) -> int:
        return self.video.shape[1]

    def _topdown(self, k: int) -> np.ndarray:
        if self._top is None or self._top[0] != k:
            sem = self.occupancy.labels[k]
            title = f"keyframe {k} ({self.occupancy.sources[k]}), t = {self.occupancy.times[k]:g} s"
            self._top = (k, preview_frame(sem, self.paths[k], k, title=title))
        return self._top[1]

    def __getitem__(self, i: int) -> np.ndarray:
        if not 0 <= i < len(self):
            raise IndexError(i)
        k = self.index[self.render_frames[i]["keyframe"]]
        panels = [self._topdown(k), labelled_grid(self.video[:, i], self.views, i / self.fps)]
        if self.bev is not None:
            panels.append(self._titled(self.bev[min(i, len(self.bev) - 1)], "LiDAR, bird's-eye, 80 x 80 m"))
        return np.concatenate([_fit(p, self.height) for p in panels], axis=1)

    @staticmethod
    def _titled(img: np.ndarray, title: str) -> np.ndarray:
        out = Image.fromarray(np.ascontiguousarray(img))
        label(ImageDraw.Draw(out), (8, 6), title)
        return np.asarray(out)
