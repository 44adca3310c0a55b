"""The `synthetic` source: procedural worlds, deterministic by (seed, scene index, config)."""

from __future__ import annotations

import dataclasses

from ..scene import SceneData
from ...errors import BadInput


# Bump when the generator's output changes for the same config, so old datasets are not reused.
GENERATOR_VERSION = 3


class SyntheticSource:
    kind = "synthetic"
    parallel = True  # scenes are independent: generate them in worker processes

    def __init__(self, seed: int, scenes: int, frames: int, overrides: dict | None = None):
        from ..synthetic.config import SyntheticConfig

        known = {f.name for f in dataclasses.fields(SyntheticConfig)}
        unknown = sorted(set(overrides or {}) - known)
        if unknown:
            raise BadInput(f"--config: unknown synthetic field(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
        self.seed = int(seed)
        self.count = int(scenes)
        self.config = SyntheticConfig(**{**(overrides or {}), "frames": int(frames)})

    @property
    def frames_per_scene(self) -> int:
        return self.config.frames

    @property
    def scene_names(self) -> list[str]:
        return [f"scene-{i:04d}" for i in range(self.count)]

    def id_fields(self) -> dict:
        return {"seed": self.seed, "generator": GENERATOR_VERSION, "synthetic": dataclasses.asdict(self.config)}

    def load(self, name: str) -> SceneData:
        from ..synthetic.generate import generate_scene

        return generate_scene(self.seed, int(name.split("-")[-1]), self.config)
