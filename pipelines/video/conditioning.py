"""What the sampler is conditioned on besides the condition video: prompts and reference frames.

The official pipeline (GenieDrive occ_render, `pipeline_wan_fun_control` + `rollout_long.py`):
- prompts: the empty prompt and Wan's default negative prompt, each tokenised by the umT5
  tokenizer (padded to `text_len`, end-of-sequence token appended), encoded by the umT5 encoder,
  cut to its valid length and zero-padded to `text_len` by the transformer; classifier-free
  guidance 6 between the two;
- reference frame, one per view (the round's first frame: the camera image in round 0, the last
  generated frame of that view after): its VAE latent is the first-frame latent (latent frame 0
  of the 16 first-frame channels, zeros elsewhere) and, for `add_ref_conv` models, `full_ref`;
  CLIP ViT-H features of the same image (`[V, 257, 1280]`, every vision block but the last) feed
  the i2v cross-attention. Without an image all three are zeros (the official no-image branch,
  which the condition dropout of training also teaches).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from ..errors import BadInput
from .configs import VideoConfig
from .latents import first_frame_latents

# Wan's default negative prompt, as the official GenieDrive scripts pass it (data, not prose)
WAN_NEGATIVE_PROMPT = (
    "色调艳丽，过曝，静态，细节模糊不清，字幕，风格，作品，画作，画面，静止，整体发灰，最差质量，低质量，JPEG压缩残留，"
    "丑陋的，残缺的，多余的手指，画得不好的手部，画得不好的脸部，畸形的，毁容的，形态畸形的肢体，手指融合，静止不动的画面，"
    "杂乱的背景，三条腿，背景人很多，倒着走"
)
OFFICIAL_PROMPT = ""  # the official driving-video prompt is empty


def load_tokenizer(folder: Path, flag: str = "--video-model"):
    """The umT5 tokenizer saved in a video-model folder (transformers AutoTokenizer)."""
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(str(folder))
    except Exception as exc:  # missing files, unreadable JSON, a tokenizer class transformers lacks
        from .loading import _one_line

        raise BadInput(f"{flag} {folder}: cannot load the umT5 tokenizer ({_one_line(exc)}); "
                       "copy google/umt5-xxl's tokenizer files there, or pass --prompt-embeds") from None


@torch.no_grad()
def encode_prompts(text_encoder: torch.nn.Module, tokenizer, texts: list[str], text_len: int) -> torch.Tensor:
    """Texts -> [B, text_len, D] umT5 embeddings, zero past each text's tokens (the official
    `_get_t5_prompt_embeds` keeps emb[:len] and the transformer zero-pads to text_len)."""
    device = next(text_encoder.parameters()).device
    tok = tokenizer(texts, padding="max_length", max_length=text_len, truncation=True, add_special_tokens=True,
                    return_attention_mask=True, return_tensors="pt")
    ids, mask = tok.input_ids.to(device), tok.attention_mask.to(device)
    vocab = text_encoder.config.vocab_size
    if int(ids.max()) >= vocab:
        raise BadInput(f"the tokenizer gives token id {int(ids.max())}, the text encoder has {vocab}; "
                       "the tokenizer and text_encoder/ are not a pair (use google/umt5-xxl's tokenizer)")
    emb = text_encoder(input_ids=ids, attention_mask=mask).last_hidden_state.float()
    return emb * mask[..., None].to(emb.dtype)


@torch.no_grad()
def clip_features(image_encoder: torch.nn.Module, images: torch.Tensor | list[torch.Tensor]) -> torch.Tensor:
    """Official CLIP features of images [V, 3, H, W] in [0, 1], or a list of V [3, H, W] of any
    sizes (each squashed to the encoder's square input) -> [V, tokens, width]."""
    from .official_base import clip_preprocess, image_features

    param = next(image_encoder.parameters())
    batch = [images] if isinstance(images, torch.Tensor) else [i[None] for i in images]
    pixels = torch.cat([clip_preprocess(b.to(param.device, torch.float32) * 2.0 - 1.0, image_encoder.config.image_size)
                        for b in batch])
    return image_features(image_encoder, pixels.to(param.dtype)).float()


def as_clip_input(frames: torch.Tensor) -> torch.Tensor:
    """Generated frames [V, 3, H, W] in [0, 1] as the official rollout hands them to CLIP: through
    8-bit images (x 255, truncated), back to [0, 1]."""
    return torch.floor(frames.clamp(0, 1) * 255.0) / 255.0


@dataclass
class Reference:
    """One rollout round's reference conditioning for V views (each None where the model lacks it).

    first: [V, z, F, h, w] first-frame latents (latent frame 0 only); full_ref: [V, z, h, w]
    (add_ref_conv); image: [V, tokens, image_dim] CLIP features (i2v).
    """

    first: torch.Tensor
    full_ref: torch.Tensor | None
    image: torch.Tensor | None


def round_reference(config: VideoConfig, vae, image_encoder: torch.nn.Module | None, frame: torch.Tensor | None,
                    clip_image: torch.Tensor | list[torch.Tensor] | None, like: torch.Tensor) -> Reference:
    """The reference of a round from its first frame [V, 3, H, W] in [0, 1] (None: no image, all
    zeros) and the images CLIP sees ([V, 3, H', W'] or V of [3, H', W']; None: `frame`); like: the
    round's condition latents [V, z, F, h, w]."""
    t = config.transformer
    views = like.shape[0]
    first = first_frame_latents(vae, frame, like)
    full_ref = first[:, :, 0].clone() if t.add_ref_conv else None
    image = None
    if t.i2v:
        source = frame if clip_image is None else clip_image
        if source is None:
            image = torch.zeros(views, t.image_tokens, t.image_dim, device=like.device)
        else:
            if image_encoder is None:
                raise BadInput(f"video config '{config.name}' (i2v) needs CLIP features of the first frame, and the "
                               "video model has no image_encoder/; import it with its base (--base DIR)")
            image = clip_features(image_encoder, source)
            if image.shape[1:] != (t.image_tokens, t.image_dim):
                raise BadInput(f"image_encoder/ gives [{image.shape[1]}, {image.shape[2]}] features, the transformer "
                               f"takes [{t.image_tokens}, {t.image_dim}]; the image encoder does not belong to it")
    return Reference(first, full_ref, image)
