"""What `gdrive render` asks for, as plain values; each field's default is the command's default
(`gdrive render --help` shows it), declared here once. Light on purpose (no torch, no numpy)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class RenderRequest:
    dataset: str | None = None
    scene: str | None = None
    occ: str | None = None  # an Occ3D-layout folder or a forecast name
    rig: str | None = None  # a rig JSON file (default: the scene's rig, or the folder's rig.json, or nuScenes)
    cameras: str | None = None  # comma-separated names; None: all
    resolution: str = "256x512"  # HEIGHTxWIDTH
    lidar: bool = True
    fps: float = 12.0
    repeat: int | None = None
    frames: str | None = None  # keyframe slice a:b
    name: str | None = None
    previews: bool = True
    device: str = "auto"
    force: bool = False
