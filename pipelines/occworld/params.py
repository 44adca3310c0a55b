"""Parameter counts per part of the world model."""

from __future__ import annotations

from torch import nn

from .configs import WorldModelConfig
from .forecaster import Forecaster
from .vae import TriplaneVAE


def count(module: nn.Module | nn.Parameter) -> int:
    if isinstance(module, nn.Parameter):
        return module.numel()
    return sum(p.numel() for p in module.parameters())


def parameter_report(cfg: WorldModelConfig) -> dict[str, dict[str, int]]:
    """{'vae': {part: n, ..., 'total': n}, 'forecaster': {...}, 'total': {...}} for a config."""
    vae, fc = TriplaneVAE(cfg.vae), Forecaster(cfg.forecaster)
    v = {
        "class embedding + stem": count(vae.embed) + count(vae.stem),
        "downsampling convs": count(vae.down1) + count(vae.down2),
        "axis transformers": sum(count(b) for a in (vae.axis_xy, vae.axis_xz, vae.axis_yz) for b in a.blocks),
        "axis tokens + positions": sum(count(a.token) + count(a.pos) for a in (vae.axis_xy, vae.axis_xz, vae.axis_yz)),
        "posterior (mu, logvar)": count(vae.post_xy) + count(vae.post_xz) + count(vae.post_yz),
        "decoder positional volume": count(vae.pos_volume),
        "upsampling deconvs": count(vae.up1) + count(vae.up2),
        "class head": count(vae.head),
    }
    v["total"] = count(vae)
    f = {
        "pose encoder": count(fc.pose_encoder),
        "MCA encoder (low)": count(fc.low),
        "spatio-temporal encoder (high)": count(fc.high),
        "embeddings": count(fc.row_embed) + count(fc.col_embed) + count(fc.time_embed),
        "transformation head": count(fc.head),
        "control fusion": count(fc.fusion),
    }
    if cfg.forecaster.motion_prior == "warp":
        f["warp prior residual scale"] = count(fc.residual_scale)
    if fc.obs_fusion is not None:
        f["observation fusion head"] = count(fc.obs_fusion)
    f["total"] = count(fc)
    assert sum(v.values()) == 2 * v["total"] and sum(f.values()) == 2 * f["total"], "a part is missing"
    return {"vae": v, "forecaster": f, "total": {"parameters": v["total"] + f["total"]}}
