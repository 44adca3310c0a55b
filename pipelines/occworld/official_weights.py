"""Official GenieDrive weights onto gdrive's modules: key maps, read with `weights_only=True`.

The official VAE (`OccupancyVAE` / `EE_World.vqvae`, a standalone dict or the `vqvae.` part of an
mmcv checkpoint `{'meta', 'state_dict'}`) maps key for key onto `TriplaneVAE`; six tensors differ
only by a leading singleton axis (the axis tokens [1, 1, C] and position tables [1, L, C]).
Official files are read with `pipelines.weights.read_state_dict` (`weights_only=True`; the mmcv
wrapper is unwrapped). Every official key must map and every gdrive weight be filled, with equal shapes, else BadInput
naming what is missing or left over.

(Issue 14, in progress: the forecaster's map and `gdrive import-weights` follow.)
"""

from __future__ import annotations

import re

import torch

from pipelines.errors import BadInput

# official VAE key (no `vqvae.` prefix) -> gdrive TriplaneVAE key; {p} a plane, {i} a block
_VAE_RULES = [
    (r"decode_pos_embed", "pos_volume"),
    (r"class_embeds\.weight", "embed.weight"),
    (r"tokens\.(xy|xz|yz)", r"axis_\1.token"),
    (r"pos_encodings\.(xy|xz|yz)", r"axis_\1.pos"),
    (r"transformers\.(xy|xz|yz)\.(\d+)\.attention\.wq\.(weight|bias)", r"axis_\1.blocks.\2.attn.q.\3"),
    (r"transformers\.(xy|xz|yz)\.(\d+)\.attention\.wk\.(weight|bias)", r"axis_\1.blocks.\2.attn.k.\3"),
    (r"transformers\.(xy|xz|yz)\.(\d+)\.attention\.wv\.(weight|bias)", r"axis_\1.blocks.\2.attn.v.\3"),
    (r"transformers\.(xy|xz|yz)\.(\d+)\.attention\.dense\.(weight|bias)", r"axis_\1.blocks.\2.attn.out.\3"),
    (r"transformers\.(xy|xz|yz)\.(\d+)\.ffn\.linear1\.(weight|bias)", r"axis_\1.blocks.\2.ffn.0.\3"),
    (r"transformers\.(xy|xz|yz)\.(\d+)\.ffn\.linear2\.(weight|bias)", r"axis_\1.blocks.\2.ffn.3.\3"),
    (r"transformers\.(xy|xz|yz)\.(\d+)\.layernorm1\.(weight|bias)", r"axis_\1.blocks.\2.norm1.\3"),
    (r"transformers\.(xy|xz|yz)\.(\d+)\.layernorm2\.(weight|bias)", r"axis_\1.blocks.\2.norm2.\3"),
    (r"conv\.(weight|bias)", r"stem.\1"),
    (r"vox_encoder\.conv([12])\.(weight|bias)", r"down\1.\2"),
    (r"vox_decoder\.deconv([12])\.(weight|bias)", r"up\1.\2"),
    (r"fc_mu_logvar\.0\.(weight|bias)", r"post_xy.\1"),
    (r"fc_mu_logvar\.1\.(weight|bias)", r"post_xz.\1"),
    (r"fc_mu_logvar\.2\.(weight|bias)", r"post_yz.\1"),
    (r"cls_head\.([03])\.(weight|bias)", r"head.\1.\2"),
]


def _map_key(key: str, rules) -> str | None:
    for pattern, target in rules:
        if re.fullmatch(pattern, key):
            return re.sub(pattern, target, key)
    return None


def vae_state_from_official(official: dict[str, torch.Tensor], own: dict[str, torch.Tensor],
                            where: str) -> dict[str, torch.Tensor]:
    """The gdrive TriplaneVAE state dict for an official VAE state dict (keys without `vqvae.`).

    `own` is the target module's state dict (names and shapes). Raises BadInput naming keys that
    do not map, gdrive weights left unfilled, and shape mismatches.
    """
    out: dict[str, torch.Tensor] = {}
    unmapped = []
    for key, tensor in official.items():
        target = _map_key(key, _VAE_RULES)
        if target is None or target not in own:
            unmapped.append(key)
            continue
        want = own[target].shape
        if tensor.shape != want:
            if tensor.numel() != own[target].numel() or tensor.shape[0] != 1:  # only [1, ...] -> [...]
                raise BadInput(f"{where}: '{key}' has shape {tuple(tensor.shape)}, gdrive's '{target}' needs "
                               f"{tuple(want)}; this is not a checkpoint of the official VAE sizes")
            tensor = tensor.reshape(want)
        out[target] = tensor
    missing = sorted(set(own) - set(out))
    if unmapped or missing:
        parts = ([f"official keys with no place: {', '.join(sorted(unmapped)[:4])}"] if unmapped else []) + \
                ([f"gdrive weights not filled: {', '.join(missing[:4])}"] if missing else [])
        raise BadInput(f"{where}: not an official GenieDrive VAE ({'; '.join(parts)})")
    return out
