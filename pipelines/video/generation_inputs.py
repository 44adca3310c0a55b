"""What `generate` feeds a video model besides the condition video: first frames and prompts.

First frame (per view, the reference of rollout round 0; see `conditioning`): for a nuScenes
dataset, the start keyframe's own camera image (its samples/ file), read from the nuScenes folder
the dataset was prepared from (resized to the video resolution as fine-tuning reads its targets; CLIP sees the
image at its own size, as the official pipeline). Synthetic and occ-folder scenes have no camera
images: the model then gets no reference (zero first-frame latents, zero full_ref and zero CLIP
features, the official pipeline's input when no image is given, which training's condition
dropout also covers), and the command says so.

Prompts: `--prompt-embeds FILE`; else, when the video model holds the umT5 encoder and tokenizer
(imported with its base), the official empty prompt and Wan's default negative prompt encoded at
run time; else none (zero prompt, no guidance), and the command says so.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..data.dataset import OccDataset, Scene
from ..errors import BadInput
from .loading import (TEXT_ENCODER_DIR, TOKENIZER_DIR, VideoModel, has_part, load_encoder,
                      require_image_encoder)

NO_IMAGES = ("no camera images in a {source} dataset: no reference frame (zero first-frame latents, full_ref and "
             "CLIP features, as the official pipeline without an image)")


@dataclass
class FirstFrames:
    """Where the start keyframe's camera images come from (views in the video model's order), or
    none. The nuScenes tables are read only when the images are (`load`, at sampling time): a
    reused or refused generation never pays for them."""

    ds: OccDataset | None  # None: no camera images
    scene: str
    token: str  # the start keyframe's sample token
    views: tuple[str, ...]
    note: str  # what the reference frame is, for the log and the manifest

    def id_field(self) -> str:
        # the dataset id, scene and start frame (in the artifact id already) fix which images
        return "none" if self.ds is None else "camera"

    def paths(self) -> list[Path]:
        from .finetune_data import nuscenes_source

        source = nuscenes_source(self.ds)
        return [source.keyframe_image(self.scene, self.token, view) for view in self.views]

    def load(self, size: tuple[int, int]) -> tuple[torch.Tensor, list[torch.Tensor]] | tuple[None, None]:
        """(first frames [V, 3, H, W] at size (height, width), the CLIP images [3, H', W'] per view,
        as read), all in [0, 1]; (None, None) without images."""
        if self.ds is None:
            return None, None
        from PIL import Image

        from .finetune_data import read_camera_image

        paths = self.paths()
        frames = torch.from_numpy(np.stack([read_camera_image(p, size) for p in paths])).permute(0, 3, 1, 2)
        clips = []
        for p in paths:  # CLIP sees the image at its own size (read_camera_image decodes it smaller)
            with Image.open(p) as img:
                clips.append(torch.from_numpy(np.array(img.convert("RGB"))).permute(2, 0, 1).float() / 255.0)
        return frames.float() / 255.0, clips


def first_frames(ds: OccDataset, scene: Scene, start: int, views: tuple[str, ...]) -> FirstFrames:
    """The reference images of `scene` at keyframe `start`: the keyframe's own camera images for
    a nuScenes dataset (BadInput when its image folder is gone), none otherwise."""
    source = ds.manifest.get("config", {}).get("source", "unknown")
    token = scene.frames[start].token
    if source != "nuscenes":
        return FirstFrames(None, scene.name, token, views, NO_IMAGES.format(source=source))
    from .finetune_data import nuscenes_root

    _, root = nuscenes_root(ds)
    return FirstFrames(ds, scene.name, token, views, f"the camera images of keyframe {start} ({root}/samples/...)")


@dataclass
class PromptPlan:
    """Where the prompt embeddings come from: 'file' (--prompt-embeds), 'umt5' (the model's own
    encoder, the official prompts) or 'none'."""

    source: str
    embeds: dict[str, torch.Tensor]  # {"prompt": [1, L, D], "negative"?: [1, L, D]} for 'file'
    note: str


def prompt_plan(folder: Path, file_embeds: dict[str, torch.Tensor] | None) -> PromptPlan:
    if file_embeds is not None:
        return PromptPlan("file", file_embeds, "prompt embeddings from --prompt-embeds")
    if has_part(folder, TEXT_ENCODER_DIR) and (folder / TOKENIZER_DIR).is_dir():
        return PromptPlan("umt5", {}, "the official prompts (empty, and Wan's default negative prompt) by the "
                                      "model's umT5")
    return PromptPlan("none", {}, "no prompt: the model has no umT5 text encoder with its tokenizer and no "
                                  "--prompt-embeds was given, "
                                  "so sampling runs without guidance on a zero prompt")


def check_image_encoder(folder: Path, video: VideoModel, frames: FirstFrames) -> None:
    """An i2v model given images needs its CLIP image encoder."""
    if video.config.transformer.i2v and frames.ds is not None:
        require_image_encoder(folder, video.config)


def resolve_prompts(plan: PromptPlan, folder: Path, video: VideoModel, device: torch.device) -> dict[str, torch.Tensor]:
    """The prompt embeddings to sample with ([1, text_len, D] each); the umT5 is loaded, used on
    `device` and dropped again (11 GB at full size: it must not stay beside the transformer)."""
    if plan.source != "umt5":
        return plan.embeds
    from .conditioning import OFFICIAL_PROMPT, WAN_NEGATIVE_PROMPT, encode_prompts, load_tokenizer

    tokenizer = load_tokenizer(folder / TOKENIZER_DIR)
    encoder = load_encoder(folder, TEXT_ENCODER_DIR).to(device)
    if encoder.config.d_model != video.config.transformer.text_dim:
        raise BadInput(f"--video-model {folder}: {TEXT_ENCODER_DIR}/ is {encoder.config.d_model} wide, the "
                       f"transformer takes {video.config.transformer.text_dim}; they are not one model")
    emb = encode_prompts(encoder, tokenizer, [OFFICIAL_PROMPT, WAN_NEGATIVE_PROMPT], video.config.text_len).cpu()
    del encoder
    return {"prompt": emb[:1], "negative": emb[1:]}
