"""Knobs of the synthetic world (`SyntheticConfig`) and its fixed dimensions.

Every field of `SyntheticConfig` changes the generated scenes, so all of them are plain numbers
that hash into artifact ids. The module-level constants are the parts of the world that are not
meant to be tuned (lane width, ego car size, the box convention).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

from ...errors import BadInput
from ...limits import MAX_SYNTHETIC_FRAMES
from ..scene import KEYFRAME_DT, KEYFRAME_HZ

# Plausible ranges (the shares default to 0..1): beyond them a scene would not fit in memory or
# would not be a city any more.
_RANGES = {
    "frames": (1, MAX_SYNTHETIC_FRAMES), "block_min": (40.0, 1000.0), "block_max": (40.0, 1000.0),
    "traffic_density": (0.0, 20.0), "pedestrian_density": (0.0, 20.0), "vehicle_margin": (0.0, 500.0),
    "pedestrian_margin": (0.0, 500.0), "sim_hz": (2, 100),
}


@dataclass(frozen=True)
class SyntheticConfig:
    """How a synthetic scene is generated. Every field changes the result."""

    frames: int = 40  # keyframes per scene, 2 Hz
    block_min: float = 60.0  # spacing of parallel roads (m), drawn uniformly in [min, max]
    block_max: float = 130.0
    two_lane_share: float = 0.5  # share of roads with 2 lanes per direction (else 1)
    median_share: float = 0.5  # share of 2-lane roads with a central median (other_flat)
    parking_share: float = 0.4  # share of roads with a parking strip on both sides
    t_junction_share: float = 0.15  # share of road segments removed, making T-junctions
    traffic_density: float = 1.5  # moving vehicles per 100 m of lane
    pedestrian_density: float = 1.6  # pedestrians per 100 m of sidewalk side
    parked_share: float = 0.6  # share of parking bays holding a parked vehicle
    vehicle_margin: float = 100.0  # vehicles are spawned this far (m) around the ego route
    pedestrian_margin: float = 70.0  # pedestrians likewise
    sim_hz: int = 10  # simulation rate; keyframes are every sim_hz / 2 steps

    def __post_init__(self) -> None:
        # Normalise types (a YAML recipe may give 2 for 2.0) so equal configs hash equally.
        for f in fields(self):
            value = getattr(self, f.name)
            want = type(f.default)
            if isinstance(value, bool) or not isinstance(value, (int, float)):  # true is no number
                raise BadInput(f"synthetic {f.name}={value!r}: expected a number")
            norm = want(value) if math.isfinite(value) else value
            if want is int and norm != value:
                raise BadInput(f"synthetic {f.name}={value!r}: expected a whole number")
            low, high = _RANGES.get(f.name, (0.0, 1.0))
            if not (math.isfinite(norm) and low <= norm <= high):
                raise BadInput(f"synthetic {f.name}={value!r}: must lie in {low:g}..{high:g}")
            object.__setattr__(self, f.name, norm)
        if not 40.0 <= self.block_min <= self.block_max:
            raise BadInput(
                f"synthetic block_min={self.block_min}, block_max={self.block_max}: need 40 <= min <= max"
            )
        if self.sim_hz < 2 or self.sim_hz % 2:
            raise BadInput(f"synthetic sim_hz={self.sim_hz}: use an even rate >= 2 (keyframes are 2 Hz)")
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, float) and value < 0:
                raise BadInput(f"synthetic {f.name}={value}: must not be negative")

    @property
    def duration_s(self) -> float:
        """Time from the first to the last keyframe."""
        return (self.frames - 1) * KEYFRAME_DT

    @property
    def steps_per_keyframe(self) -> int:
        return int(self.sim_hz // KEYFRAME_HZ)


EPOCH_US = 1_700_000_000_000_000  # timestamps of scene `index` start at EPOCH_US + index * SCENE_GAP_US
SCENE_GAP_US = 1_000_000_000

LANE_WIDTH = 3.5
PARKING_WIDTH = 2.4
BOX_BOTTOM_Z = 0.1  # every box stands 0.1 m above z=0 so the ground layer (centre z=0) is never inside
MAX_EGO_SPEED = 14.0

# The ego car in its own frame (origin: rear axle on the ground): [cx, cy, cz, length, width, height].
EGO_LENGTH, EGO_WIDTH, EGO_HEIGHT = 4.6, 1.9, 1.6
EGO_REAR_AXLE_TO_CENTRE = 1.35
EGO_BOX = (EGO_REAR_AXLE_TO_CENTRE, 0.0, BOX_BOTTOM_Z + EGO_HEIGHT / 2, EGO_LENGTH, EGO_WIDTH, EGO_HEIGHT)

# Scene kinds, cycled by (index + seed) so that any 5 consecutive indices hold each of them.
SCENE_KINDS = ("left_turn", "right_turn", "lane_change", "stop_and_go", "straight")
