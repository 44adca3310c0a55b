"""The map frame of a synthetic scene and its place in the global frame.

Roads are axis-aligned in the map frame; a random rotation and offset (drawn from the scene's sixth
stream) put the scene in the global frame, so that scenes do not share one. `generate.Simulated`
and the route planner (routes.py, which rebuilds the network without simulating) share these.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .config import MAX_EGO_SPEED, SyntheticConfig


def network_extent(config: SyntheticConfig) -> float:
    """Half the side (m) of the square the road grid covers around the map origin."""
    return 300.0 + MAX_EGO_SPEED * config.duration_s * 1.2


def scene_streams(seed: int, index: int) -> list[np.random.Generator]:
    """The six streams of a scene: network, ego, signals, vehicles, pedestrians, global transform."""
    return [np.random.default_rng(s) for s in np.random.SeedSequence([seed, index]).spawn(6)]


@dataclass
class MapFrame:
    yaw: float  # rotation map -> global
    xy: np.ndarray  # [2] offset

    @classmethod
    def draw(cls, rng: np.random.Generator) -> "MapFrame":
        yaw = float(rng.uniform(-math.pi, math.pi))
        return cls(yaw, rng.uniform(200.0, 2800.0, 2))

    def to_global(self, x, y, yaw):
        """Map-frame (x, y, yaw) arrays -> global ones."""
        c, s = math.cos(self.yaw), math.sin(self.yaw)
        return self.xy[0] + c * x - s * y, self.xy[1] + s * x + c * y, yaw + self.yaw

    def to_map(self, pose: np.ndarray) -> tuple[float, float, float]:
        """A global 4x4 ego pose -> map-frame (x, y, yaw)."""
        c, s = math.cos(self.yaw), math.sin(self.yaw)
        d = pose[:2, 3] - self.xy
        return c * d[0] + s * d[1], -s * d[0] + c * d[1], math.atan2(pose[1, 0], pose[0, 0]) - self.yaw
