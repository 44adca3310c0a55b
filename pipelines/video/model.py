"""The multi-view video transformer: diffusers' `WanTransformer3DModel` + Normalized Multi-View Attention.

`MultiViewWanTransformer` is a `WanTransformer3DModel` subclass: the Wan parameters keep their
names (a base Wan2.1 state dict loads into it unchanged, except the widened patch embedding) and
the multi-view modules live under `multiview.<block index>`. Its config adds `num_views`,
`multiview_blocks` and `multiview_eta`, so `save_pretrained(dir)` writes a diffusers folder
(config.json + diffusion_pytorch_model.safetensors) that rebuilds it with the multi-view modules:
`loading.load_video_model`, or `MultiViewWanTransformer.from_pretrained(dir)` where `accelerate`
is installed (diffusers needs it for Wan's fp32-kept modules).

The forward pass reproduces `WanTransformer3DModel.forward` (patch embedding, rotary, condition
embedder, blocks, norm_out, proj_out, unpatchify) with diffusers' own submodules, and runs the
multi-view module after each configured block, i.e. after that block's self-attention,
cross-attention and feed-forward. Wan blocks are not told the token grid, which the multi-view
regrouping needs; running the loop here is what makes it available.
"""

from __future__ import annotations

import torch
from diffusers.configuration_utils import register_to_config
from diffusers.models.modeling_outputs import Transformer2DModelOutput
from diffusers.models.transformers.transformer_wan import WanTransformer3DModel
from torch import nn

from pipelines.video.configs import VideoConfig
from pipelines.video.multiview import NormalizedMultiViewAttention


def default_multiview_blocks(num_layers: int, every: int = 3) -> list[int]:
    """The official placement: after blocks i % 3 == 0 and after the last block."""
    return [i for i in range(num_layers) if i % every == 0 or i == num_layers - 1]


class MultiViewWanTransformer(WanTransformer3DModel):
    """Wan2.1 transformer over batches of V-view groups with multi-view attention after chosen blocks.

    Inputs: hidden_states [B·V, C_in, F, H, W] (C_in = noisy | condition | first-frame latents),
    timestep [B·V] (the same value within a view group), encoder_hidden_states [B·V, L, text_dim].
    Output: [B·V, C_out, F, H, W] (flow-matching velocity, noise - x0).
    """

    @register_to_config
    def __init__(
        self,
        patch_size: tuple[int, ...] = (1, 2, 2),
        num_attention_heads: int = 12,
        attention_head_dim: int = 128,
        in_channels: int = 48,
        out_channels: int = 16,
        text_dim: int = 4096,
        freq_dim: int = 256,
        ffn_dim: int = 8960,
        num_layers: int = 30,
        cross_attn_norm: bool = True,
        qk_norm: str | None = "rms_norm_across_heads",
        eps: float = 1e-6,
        image_dim: int | None = None,
        added_kv_proj_dim: int | None = None,
        rope_max_seq_len: int = 1024,
        pos_embed_seq_len: int | None = None,
        num_views: int = 6,
        multiview_blocks: list[int] | None = None,
        multiview_eta: float = 0.2,
    ) -> None:
        super().__init__(
            patch_size=patch_size, num_attention_heads=num_attention_heads,
            attention_head_dim=attention_head_dim, in_channels=in_channels, out_channels=out_channels,
            text_dim=text_dim, freq_dim=freq_dim, ffn_dim=ffn_dim, num_layers=num_layers,
            cross_attn_norm=cross_attn_norm, qk_norm=qk_norm, eps=eps, image_dim=image_dim,
            added_kv_proj_dim=added_kv_proj_dim, rope_max_seq_len=rope_max_seq_len,
            pos_embed_seq_len=pos_embed_seq_len,
        )
        blocks = default_multiview_blocks(num_layers) if multiview_blocks is None else sorted(set(multiview_blocks))
        if any(not 0 <= i < num_layers for i in blocks):
            raise ValueError(f"multiview_blocks {blocks} outside 0..{num_layers - 1}")
        # record the resolved list (and the subclass's own keys, which the parent's registration
        # does not know) so that a saved config rebuilds exactly these modules
        self.register_to_config(num_views=num_views, multiview_blocks=blocks, multiview_eta=multiview_eta)
        dim = num_attention_heads * attention_head_dim
        self.multiview = nn.ModuleDict(
            {str(i): NormalizedMultiViewAttention(dim, num_attention_heads, num_views, multiview_eta, eps) for i in blocks}
        )

    def _embed(self, hidden_states, timestep, encoder_hidden_states, encoder_hidden_states_image):
        """Patch embedding, rotary and condition embeddings, as in WanTransformer3DModel.forward."""
        rotary_emb = self.rope(hidden_states)
        tokens = self.patch_embedding(hidden_states).flatten(2).transpose(1, 2).contiguous()
        temb, timestep_proj, context, context_image = self.condition_embedder(
            timestep, encoder_hidden_states, encoder_hidden_states_image, timestep_seq_len=None
        )
        timestep_proj = timestep_proj.unflatten(1, (6, -1))  # [B·V, 6, C]
        if context_image is not None:
            context = torch.concat([context_image, context], dim=1)
        return tokens, rotary_emb, temb, timestep_proj, context

    def _run_blocks(self, tokens, context, timestep_proj, rotary_emb, grid):
        checkpoint = torch.is_grad_enabled() and self.gradient_checkpointing
        for i, block in enumerate(self.blocks):
            if checkpoint:
                tokens = self._gradient_checkpointing_func(block, tokens, context, timestep_proj, rotary_emb)
            else:
                tokens = block(tokens, context, timestep_proj, rotary_emb)
            if str(i) in self.multiview:
                mv = self.multiview[str(i)]
                tokens = self._gradient_checkpointing_func(mv, tokens, grid) if checkpoint else mv(tokens, grid)
        return tokens

    def _unpatchify(self, tokens, temb, batch, grid):
        """norm_out, proj_out and unpatchify: [B·V, F·H·W, C] -> [B·V, C_out, F·pt, H·ph, W·pw]."""
        shift, scale = (self.scale_shift_table.to(temb.device) + temb.unsqueeze(1)).chunk(2, dim=1)
        tokens = (self.norm_out(tokens.float()) * (1 + scale) + shift).type_as(tokens)
        tokens = self.proj_out(tokens)
        p_t, p_h, p_w = self.config.patch_size
        f, h, w = grid
        tokens = tokens.reshape(batch, f, h, w, p_t, p_h, p_w, -1).permute(0, 7, 1, 4, 2, 5, 3, 6)
        return tokens.flatten(6, 7).flatten(4, 5).flatten(2, 3)

    def forward(
        self,
        hidden_states: torch.Tensor,
        timestep: torch.Tensor,
        encoder_hidden_states: torch.Tensor,
        encoder_hidden_states_image: torch.Tensor | None = None,
        return_dict: bool = True,
        attention_kwargs: dict | None = None,
    ) -> torch.Tensor | Transformer2DModelOutput:
        """hidden_states [B·V, C_in, F, H, W], timestep [B·V] -> sample [B·V, C_out, F, H, W].

        Same signature as WanTransformer3DModel.forward; attention_kwargs (LoRA scale) is not used.
        """
        batch, _, frames, height, width = hidden_states.shape
        p_t, p_h, p_w = self.config.patch_size
        grid = (frames // p_t, height // p_h, width // p_w)
        if timestep.ndim != 1:
            raise ValueError("timestep must be one value per sample, shape [B·V]")
        tokens, rotary_emb, temb, timestep_proj, context = self._embed(
            hidden_states, timestep, encoder_hidden_states, encoder_hidden_states_image
        )
        tokens = self._run_blocks(tokens, context, timestep_proj, rotary_emb, grid)
        output = self._unpatchify(tokens, temb, batch, grid)
        if not return_dict:
            return (output,)
        return Transformer2DModelOutput(sample=output)


def transformer_kwargs(config: VideoConfig) -> dict:
    """`MultiViewWanTransformer` arguments for a named config."""
    t = config.transformer
    return {
        "patch_size": list(t.patch_size),
        "num_attention_heads": t.num_attention_heads,
        "attention_head_dim": t.attention_head_dim,
        "in_channels": config.in_channels,
        "out_channels": config.latent_channels,
        "text_dim": t.text_dim,
        "freq_dim": t.freq_dim,
        "ffn_dim": t.ffn_dim,
        "num_layers": t.num_layers,
        "cross_attn_norm": t.cross_attn_norm,
        "qk_norm": t.qk_norm,
        "eps": t.eps,
        "rope_max_seq_len": t.rope_max_seq_len,
        "num_views": config.num_views,
        "multiview_blocks": list(config.multiview_blocks),
        "multiview_eta": config.multiview.eta,
    }


def build_transformer(config: VideoConfig, seed: int | None = None) -> MultiViewWanTransformer:
    """A randomly initialised transformer for `config` (tests, or training from scratch)."""
    if seed is not None:
        torch.manual_seed(seed)
    return MultiViewWanTransformer(**transformer_kwargs(config))
