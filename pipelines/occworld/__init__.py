"""The occupancy world model: tri-plane VAE, control-conditioned forecaster, training, metrics.

The Python API (loaded on first use, so `import geniedrive.pipelines.occworld.<module>` stays light):
    WorldModel          from_pretrained / save_pretrained / encode / decode
    official_rollout    the official GenieDrive rollout (EE_World.forward_sample, 'generate')
"""

from __future__ import annotations

__all__ = ["WorldModel", "official_rollout"]


def __getattr__(name: str):
    if name == "WorldModel":
        from .world_model import WorldModel

        return WorldModel
    if name == "official_rollout":
        from .official_protocol import official_rollout

        return official_rollout
    raise AttributeError(f"module 'geniedrive.pipelines.occworld' has no attribute {name!r}")
