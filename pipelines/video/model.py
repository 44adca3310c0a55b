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

Two optional parts of the released GenieDrive layout (on in the `wan2.1-1.3b` and `debug-i2v`
configs; off in the text-only ones, whose state dicts and outputs are those of a plain Wan):
- `add_ref_conv`: a Conv2d with the spatial patch size turns a first-frame latent `full_ref`
  [B·V, in_dim_ref_conv, H, W] into one extra latent frame of tokens, put in front of the video
  tokens. The video frames then take RoPE time indices 1..F and the reference frame index 0; the
  reference tokens go through self-attention and the multi-view rows like any frame and are
  dropped before the output head.
- the CLIP-image cross-attention (`image_dim`, `added_kv_proj_dim`: diffusers' own I2V modules).
  With `image_context_len` set, the first that many context tokens always go to the image
  projections (the official model's fixed 257), also when no image features are given, where
  diffusers instead takes the tokens beyond 512 as image tokens.
"""

from __future__ import annotations

import torch
from diffusers.configuration_utils import register_to_config
from diffusers.models.attention_dispatch import dispatch_attention_fn
from diffusers.models.modeling_outputs import Transformer2DModelOutput
from diffusers.models.transformers.transformer_wan import WanAttention, WanAttnProcessor, WanTransformer3DModel
from torch import nn

from .configs import VideoConfig
from .multiview import NormalizedMultiViewAttention


def default_multiview_blocks(num_layers: int, every: int = 3) -> list[int]:
    """The official placement: after blocks i % 3 == 0 and after the last block."""
    return [i for i in range(num_layers) if i % every == 0 or i == num_layers - 1]


class LeadingImageTokensProcessor(WanAttnProcessor):
    """I2V cross-attention whose first `image_tokens` context tokens are the image tokens.

    Same computation as diffusers' processor, o(attn(q, k, v) over the text + attn(q, k_img, v_img)
    over the image tokens), but the split is a fixed count instead of "all beyond 512 tokens", as
    in the official model: context [B, L, C] with L > image_tokens; hidden_states [B, N, C].
    """

    def __init__(self, image_tokens: int) -> None:
        super().__init__()
        self.image_tokens = image_tokens

    def _attend(self, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor) -> torch.Tensor:
        """[B, N, H, D] x [B, L, H, D] -> [B, N, H·D], through diffusers' attention dispatch."""
        out = dispatch_attention_fn(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False,
                                    backend=self._attention_backend, parallel_config=None)
        return out.flatten(2, 3).type_as(query)

    def __call__(
        self,
        attn: WanAttention,
        hidden_states: torch.Tensor,
        encoder_hidden_states: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        rotary_emb: tuple[torch.Tensor, torch.Tensor] | None = None,
    ) -> torch.Tensor:
        if encoder_hidden_states is None or attention_mask is not None or rotary_emb is not None:
            raise ValueError("LeadingImageTokensProcessor is for unmasked cross-attention without rotary")
        if getattr(attn, "fused_projections", False):
            raise ValueError("LeadingImageTokensProcessor does not support fused projections")
        heads = attn.heads
        image = encoder_hidden_states[:, : self.image_tokens]
        text = encoder_hidden_states[:, self.image_tokens:]
        query = attn.norm_q(attn.to_q(hidden_states)).unflatten(2, (heads, -1))
        key = attn.norm_k(attn.to_k(text)).unflatten(2, (heads, -1))
        value = attn.to_v(text).unflatten(2, (heads, -1))
        key_img = attn.norm_added_k(attn.add_k_proj(image)).unflatten(2, (heads, -1))
        value_img = attn.add_v_proj(image).unflatten(2, (heads, -1))
        out = self._attend(query, key, value) + self._attend(query, key_img, value_img)
        return attn.to_out[1](attn.to_out[0](out))


class MultiViewWanTransformer(WanTransformer3DModel):
    """Wan2.1 transformer over batches of V-view groups with multi-view attention after chosen blocks.

    Inputs: hidden_states [B·V, C_in, F, H, W] (C_in = noisy | condition | first-frame latents),
    timestep [B·V] (the same value within a view group), encoder_hidden_states [B·V, L, text_dim].
    Output: [B·V, C_out, F, H, W] (flow-matching velocity, noise - x0).
    Optional (see the module doc): full_ref [B·V, in_dim_ref_conv, H, W] with `add_ref_conv`, and
    encoder_hidden_states_image [B·V, 257, image_dim] with the CLIP branch.
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
        add_ref_conv: bool = False,
        in_dim_ref_conv: int = 16,
        image_context_len: int | None = None,
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
        self.register_to_config(num_views=num_views, multiview_blocks=blocks, multiview_eta=multiview_eta,
                                add_ref_conv=add_ref_conv, in_dim_ref_conv=in_dim_ref_conv,
                                image_context_len=image_context_len)
        dim = num_attention_heads * attention_head_dim
        self.multiview = nn.ModuleDict(
            {str(i): NormalizedMultiViewAttention(dim, num_attention_heads, num_views, multiview_eta, eps) for i in blocks}
        )
        # registered only when enabled: configs without it keep their state-dict keys
        if add_ref_conv:
            spatial = tuple(patch_size[1:])
            self.ref_conv = nn.Conv2d(in_dim_ref_conv, dim, kernel_size=spatial, stride=spatial)
        else:
            self.ref_conv = None
        if image_context_len is not None:
            if added_kv_proj_dim is None:
                raise ValueError("image_context_len needs the image cross-attention (added_kv_proj_dim)")
            for block in self.blocks:
                block.attn2.set_processor(LeadingImageTokensProcessor(image_context_len))

    def _ref_tokens(self, full_ref: torch.Tensor, hidden_states: torch.Tensor) -> torch.Tensor:
        """full_ref [B·V, C_ref, H, W] -> reference-frame tokens [B·V, H/ph · W/pw, C]."""
        if self.ref_conv is None:
            raise ValueError("full_ref given, but this transformer has no ref_conv (add_ref_conv is off)")
        batch, _, _, height, width = hidden_states.shape
        want = (batch, self.config.in_dim_ref_conv, height, width)
        if tuple(full_ref.shape) != want:
            raise ValueError(f"full_ref has shape {tuple(full_ref.shape)}, expected {want}")
        return self.ref_conv(full_ref.to(hidden_states.dtype)).flatten(2).transpose(1, 2)

    def _rotary(self, hidden_states: torch.Tensor, extra_frames: int):
        """Wan's 3-D rotary for the token grid with `extra_frames` latent frames in front (time 0..)."""
        if not extra_frames:
            return self.rope(hidden_states)
        # the rotary reads only the shape; a meta tensor of the longer shape costs nothing
        b, c, f, h, w = hidden_states.shape
        return self.rope(torch.empty(b, c, f + extra_frames * self.config.patch_size[0], h, w, device="meta"))

    def _embed(self, hidden_states, timestep, encoder_hidden_states, encoder_hidden_states_image, full_ref=None):
        """Patch embedding, rotary and condition embeddings, as in WanTransformer3DModel.forward.

        With full_ref the reference tokens come first (one extra latent frame at RoPE time 0).
        """
        tokens = self.patch_embedding(hidden_states).flatten(2).transpose(1, 2)
        if full_ref is not None:
            tokens = torch.cat([self._ref_tokens(full_ref, hidden_states), tokens], dim=1)
        tokens = tokens.contiguous()
        rotary_emb = self._rotary(hidden_states, 0 if full_ref is None else 1)
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
        full_ref: torch.Tensor | None = None,
    ) -> torch.Tensor | Transformer2DModelOutput:
        """hidden_states [B·V, C_in, F, H, W], timestep [B·V] -> sample [B·V, C_out, F, H, W].

        Same signature as WanTransformer3DModel.forward; attention_kwargs (LoRA scale) is not used.
        full_ref [B·V, in_dim_ref_conv, H, W] (needs add_ref_conv): first-frame reference latents,
        seen as an extra leading latent frame and not part of the output.
        """
        batch, _, frames, height, width = hidden_states.shape
        p_t, p_h, p_w = self.config.patch_size
        grid = (frames // p_t, height // p_h, width // p_w)
        if timestep.ndim != 1:
            raise ValueError("timestep must be one value per sample, shape [B·V]")
        tokens, rotary_emb, temb, timestep_proj, context = self._embed(
            hidden_states, timestep, encoder_hidden_states, encoder_hidden_states_image, full_ref
        )
        ref_frames = 0 if full_ref is None else 1
        run_grid = (grid[0] + ref_frames, grid[1], grid[2])  # the multi-view rows include the reference frame
        tokens = self._run_blocks(tokens, context, timestep_proj, rotary_emb, run_grid)
        tokens = tokens[:, ref_frames * grid[1] * grid[2]:]  # the head sees the video frames only
        output = self._unpatchify(tokens, temb, batch, grid)
        if not return_dict:
            return (output,)
        return Transformer2DModelOutput(sample=output)


def transformer_kwargs(config: VideoConfig) -> dict:
    """`MultiViewWanTransformer` arguments for a config (the layout fields included: for a
    text-only config they are the constructor's defaults, so its modules and keys are unchanged)."""
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
        "image_dim": t.image_dim if t.i2v else None,
        "added_kv_proj_dim": t.dim if t.i2v else None,
        "image_context_len": t.image_tokens if t.i2v else None,
        "add_ref_conv": t.add_ref_conv,
        "in_dim_ref_conv": config.latent_channels,  # the first-frame latents
    }


def build_transformer(config: VideoConfig, seed: int | None = None) -> MultiViewWanTransformer:
    """A randomly initialised transformer for `config` (tests, or training from scratch)."""
    if seed is not None:
        torch.manual_seed(seed)
    return MultiViewWanTransformer(**transformer_kwargs(config))
