"""Official GenieDrive weights onto gdrive's modules: key maps, read with `weights_only=True`.

The official VAE (`OccupancyVAE` / `EE_World.vqvae`, a standalone dict or the `vqvae.` part of an
mmcv checkpoint `{'meta', 'state_dict'}`) maps key for key onto `TriplaneVAE`; six tensors differ
only by a leading singleton axis (the axis tokens [1, 1, C] and position tables [1, L, C]).
Official files are read with `pipelines.weights.read_state_dict` (`weights_only=True`; the mmcv
wrapper is unwrapped). Every official key must map and every gdrive weight be filled, with equal shapes, else BadInput
naming what is missing or left over.

The predictor (`pose_encoder.*`, `transformer.*`) maps onto `Forecaster`; the packed q/k/v
projections of nn.MultiheadAttention split into gdrive's three Linear layers.
"""

from __future__ import annotations

import re

import torch

from ..errors import BadInput

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


# official EE_World key (no prefix) -> gdrive Forecaster key; "{qkv}" marks a packed
# nn.MultiheadAttention in_proj that splits into three Linear layers (q, k, v).
_L = r"transformer\.intra_encoder\.layers\.(\d+)\."
_H = r"transformer\.inter_decoder\.layers\.(\d+)\."
_WB = r"\.(weight|bias)"
_FORECASTER_RULES = [
    (r"pose_encoder\.pose_time_embedding", "pose_encoder.slot"),
    (r"pose_encoder\.plan_input\.([02])" + _WB, r"pose_encoder.mlp.\1.\2"),
    (r"pose_encoder\.plan_encoder" + _WB, r"pose_encoder.proj.\1"),
    (r"transformer\.positional_encoding\.(row|col)_embed\.weight", r"\1_embed"),
    (r"transformer\.temporal_embedding\.weight", "time_embed.weight"),
    (_L + r"attentions\.0\.(sampling_offsets|attention_weights|value_proj|output_proj)" + _WB, r"low.\1.deform.\2.\3"),
    (_L + r"attentions\.0\.plan_injection_attn\.in_proj_(weight|bias)", r"low.\1.plan_to_scene.attn.{qkv}.\2"),
    (_L + r"attentions\.0\.plan_injection_attn\.out_proj" + _WB, r"low.\1.plan_to_scene.attn.out.\2"),
    (_L + r"attentions\.0\.plan_linear\.([02])" + _WB, r"low.\1.plan_to_scene.mlp.\2.\3"),
    (_L + r"attentions\.1\.plan_attn\.in_proj_(weight|bias)", r"low.\1.scene_to_plan.attn.{qkv}.\2"),
    (_L + r"attentions\.1\.plan_attn\.out_proj" + _WB, r"low.\1.scene_to_plan.attn.out.\2"),
    (_L + r"attentions\.1\.plan_out\.([02])" + _WB, r"low.\1.scene_to_plan.mlp.\2.\3"),
    # mmcv FFN: layers.0.0 is Linear (+ ReLU), layers.1 the second Linear
    (_L + r"ffns\.0\.layers\.0\.0" + _WB, r"low.\1.ffn_scene.0.\2"),
    (_L + r"ffns\.0\.layers\.1" + _WB, r"low.\1.ffn_scene.2.\2"),
    (_L + r"plan_ffns\.0\.layers\.0\.0" + _WB, r"low.\1.ffn_plan.0.\2"),
    (_L + r"plan_ffns\.0\.layers\.1" + _WB, r"low.\1.ffn_plan.2.\2"),
    (_L + r"norms\.0" + _WB, r"low.\1.norm_scene1.\2"),
    (_L + r"norms\.1" + _WB, r"low.\1.norm_scene2.\2"),
    (_L + r"norms\.2" + _WB, r"low.\1.norm_scene3.\2"),
    (_L + r"plan_norms\.0" + _WB, r"low.\1.norm_plan1.\2"),
    (_L + r"plan_norms\.1" + _WB, r"low.\1.norm_plan2.\2"),
    (_L + r"plan_norms\.2" + _WB, r"low.\1.norm_plan3.\2"),
    (_H + r"attentions\.0\.(sampling_offsets|attention_weights|value_proj|output_proj)" + _WB, r"high.\1.deform.\2.\3"),
    (_H + r"attentions\.1\.history_fusion\.([02])" + _WB, r"high.\1.fusion.net.\2.\3"),
    (_H + r"attentions\.1\.output_proj\.0" + _WB, r"high.\1.fusion.net.3.\2"),
    (_H + r"attentions\.1\.output_proj\.2" + _WB, r"high.\1.fusion.net.5.\2"),
    (_H + r"ffns\.0\.layers\.0\.0" + _WB, r"high.\1.ffn.0.\2"),
    (_H + r"ffns\.0\.layers\.1" + _WB, r"high.\1.ffn.2.\2"),
    (_H + r"norms\.0" + _WB, r"high.\1.norm1.\2"),
    (_H + r"norms\.1" + _WB, r"high.\1.norm2.\2"),
    (_H + r"norms\.2" + _WB, r"high.\1.norm3.\2"),
    (r"transformer\.plan_embed\.([02])" + _WB, r"fusion.embed.\1.\2"),
    (r"transformer\.plan_translation_output\.([02])" + _WB, r"head.net.\1.\2"),
    (r"transformer\.pose_attn\.attn\.in_proj_(weight|bias)", r"fusion.cross.attn.{qkv}.\1"),
    (r"transformer\.pose_attn\.attn\.out_proj" + _WB, r"fusion.cross.attn.out.\1"),
    (r"transformer\.pose_attn\.linear\.([02])" + _WB, r"fusion.cross.mlp.\1.\2"),
]

# EE_World buffers that are no weights of the model: the configured class weights of the loss.
LOSS_BUFFERS = ("ce_loss.weight",)


def _targets(key: str, tensor: torch.Tensor, rules) -> list[tuple[str, torch.Tensor]] | None:
    """The gdrive (key, tensor) pairs for one official tensor, or None when no rule matches."""
    for pattern, template in rules:
        if re.fullmatch(pattern, key):
            target = re.sub(pattern, template, key)
            if "{qkv}" not in target:
                return [(target, tensor)]
            if tensor.shape[0] % 3:
                return [(target, tensor)]  # reported as a shape mismatch below
            return [(target.replace("{qkv}", part), chunk) for part, chunk in zip("qkv", tensor.chunk(3, 0))]
    return None


def _convert(official: dict[str, torch.Tensor], own: dict[str, torch.Tensor], rules, where: str,
             what: str) -> dict[str, torch.Tensor]:
    """Map an official state dict onto a gdrive module's (`own`: names and shapes).

    A tensor may differ from its target only by a leading singleton axis. Raises BadInput naming
    official keys that do not map, gdrive weights left unfilled, and shape mismatches.
    """
    out: dict[str, torch.Tensor] = {}
    unmapped = []
    for key, tensor in official.items():
        pairs = _targets(key, tensor, rules)
        if pairs is None or any(t not in own for t, _ in pairs):
            unmapped.append(key)
            continue
        for target, value in pairs:
            want = own[target].shape
            if value.shape != want:
                if value.numel() != own[target].numel() or value.shape[0] != 1:  # only [1, ...] -> [...]
                    shown = tuple(tensor.shape)
                    raise BadInput(f"{where}: '{key}' has shape {shown}, gdrive's '{target}' needs {tuple(want)}; "
                                   f"this is not a checkpoint of the official {what} sizes")
                value = value.reshape(want)
            out[target] = value.contiguous()
    missing = sorted(set(own) - set(out))
    if unmapped or missing:
        parts = ([f"official keys with no place: {', '.join(sorted(unmapped)[:4])}"
                  + (f" and {len(unmapped) - 4} more" if len(unmapped) > 4 else "")] if unmapped else []) + \
                ([f"gdrive weights not filled: {', '.join(missing[:4])}"
                  + (f" and {len(missing) - 4} more" if len(missing) > 4 else "")] if missing else [])
        raise BadInput(f"{where}: not an official GenieDrive {what} ({'; '.join(parts)})")
    return out


def vae_state_from_official(official: dict[str, torch.Tensor], own: dict[str, torch.Tensor],
                            where: str) -> dict[str, torch.Tensor]:
    """The gdrive TriplaneVAE state dict for an official VAE state dict (keys without `vqvae.`)."""
    return _convert(official, own, _VAE_RULES, where, "VAE")


def forecaster_state_from_official(official: dict[str, torch.Tensor], own: dict[str, torch.Tensor],
                                   where: str) -> dict[str, torch.Tensor]:
    """The gdrive Forecaster state dict for the `pose_encoder.*` and `transformer.*` tensors of an
    EE_World state dict (prefixes kept)."""
    return _convert(official, own, _FORECASTER_RULES, where, "predictor")
