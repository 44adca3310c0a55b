"""`gdrive generate --video-model` with a model of the released layout (i2v + ref_conv, debug
sizes) and tiny random base components (umT5 + tokenizer, CLIP vision, Wan VAE) on a nuScenes-format
scene with camera images: the official sampling procedure end to end (first frame from the
camera images, CLIP features, first-frame latents and full_ref, umT5 prompts with Wan's negative
prompt under CFG, rollout seeded by the last frame), checked on what reaches the transformer."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from geniedrive.pipelines.occworld import forecast as forecast_module
from geniedrive.pipelines.video.conditioning import OFFICIAL_PROMPT, WAN_NEGATIVE_PROMPT, as_clip_input, clip_features, encode_prompts
from geniedrive.pipelines.video.configs import get_config
from geniedrive.pipelines.video.latents import build_vae, encode_video
from geniedrive.pipelines.video.loading import IMAGE_ENCODER_DIR, VideoModel, save_video_model
from geniedrive.pipelines.video.model import MultiViewWanTransformer, build_transformer
from geniedrive.pipelines.video.rollout import GenerationSettings, generate_video
from tests.helpers import artifact_dirs, run_cli
from tests.nuscenes_fixture import build_nuscenes_folder
from tests.test_finetune_video_cli import _write_camera_images
from tests.test_generate_cli import _copy_last_forecaster

pytestmark = pytest.mark.usefixtures("one_torch_thread")
CONFIG = get_config("debug-i2v")
VIEWS = list(CONFIG.multiview.views)
RES = ("--resolution", "32x64")


def tiny_tokenizer(folder: Path) -> Path:
    """A word-level tokenizer saved as transformers writes one ("</s>" appended, as umT5's)."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    vocab = {"<pad>": 0, "</s>": 1, "<unk>": 2, **{w: 3 + i for i, w in enumerate(["a", "road", "car", "city"])}}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.post_processor = processors.TemplateProcessing(single="$A </s>", special_tokens=[("</s>", 1)])
    PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", eos_token="</s>", unk_token="<unk>").save_pretrained(folder)
    return folder


def tiny_encoders(seed: int = 0):
    """(umT5 encoder [text_dim wide], CLIP vision model [image_dim wide, 5 tokens]) with random weights."""
    from transformers import CLIPVisionConfig, CLIPVisionModel, UMT5Config, UMT5EncoderModel

    torch.manual_seed(seed)
    t = CONFIG.transformer
    text = UMT5EncoderModel(UMT5Config(vocab_size=16, d_model=t.text_dim, d_kv=8, d_ff=32, num_layers=2, num_heads=2,
                                       relative_attention_num_buckets=8, relative_attention_max_distance=16,
                                       feed_forward_proj="gated-gelu", dropout_rate=0.0)).eval()
    image = CLIPVisionModel(CLIPVisionConfig(hidden_size=t.image_dim, intermediate_size=64, num_hidden_layers=3,
                                             num_attention_heads=2, image_size=28, patch_size=14)).eval()
    return text, image


@pytest.fixture(scope="module")
def released(tmp_path_factory):
    """A nuScenes workspace (6 keyframes, camera images) and a released-layout video model folder."""
    from geniedrive.cli.app import main

    base = tmp_path_factory.mktemp("official-generate")
    root, ws = base / "nusc", base / "ws"
    build_nuscenes_folder(root, version="v1.0-mini", frames=6)
    _write_camera_images(root, "v1.0-mini")
    assert main(["prepare-occ", "--source", "nuscenes", "--dataroot", str(root), "--version", "v1.0-mini",
                 "--name", "nus", "--no-previews", "--workspace", str(ws), "--quiet"]) == 0
    text, image = tiny_encoders()
    model = VideoModel(CONFIG, build_transformer(CONFIG, 0), build_vae(CONFIG, 1), text, image,
                       tiny_tokenizer(base / "tok"))
    folder = base / "released"
    save_video_model(model, folder)
    return ws, folder, model


class Calls:
    """Every transformer call's conditioning inputs."""

    def __init__(self, monkeypatch):
        self.seen: list[dict] = []
        real = MultiViewWanTransformer.forward

        def spy(module, hidden_states, timestep, encoder_hidden_states, encoder_hidden_states_image=None, **kw):
            self.seen.append({"x": hidden_states.detach().clone(), "context": encoder_hidden_states.detach().clone(),
                              "image": None if encoder_hidden_states_image is None else encoder_hidden_states_image.clone(),
                              "full_ref": None if kw.get("full_ref") is None else kw["full_ref"].clone()})
            return real(module, hidden_states, timestep, encoder_hidden_states, encoder_hidden_states_image, **kw)

        monkeypatch.setattr(MultiViewWanTransformer, "forward", spy)


def test_generate_runs_the_official_procedure_on_a_nuscenes_scene(capsys, monkeypatch, released):
    ws, folder, model = released
    _copy_last_forecaster(monkeypatch)
    calls = Calls(monkeypatch)
    r = run_cli(capsys, "--workspace", ws, "generate", "--dataset", "nus", "--traj", "gt", "--frames", "9",
                "--video-model", folder, *RES, "--steps", "2", "--chunk-frames", "5", "--name", "g", "--json")
    assert r.code == 0, r.err
    out = r.json()
    assert out["video"] == "generated" and out["frames"] == 9
    assert "first frame: the camera images of keyframe 3" in r.err and "by the model's umT5" in r.err
    manifest = json.loads((ws / "generations" / "g" / "manifest.json").read_text())
    assert manifest["config"]["resolved"]["guidance_applied"] is True
    assert manifest["video_model"]["first_frame"].startswith("the camera images of keyframe 3")

    # 2 rounds (frames 0-4, 4-8) x 2 steps, each call one CFG batch of 2 x 6 views
    assert len(calls.seen) == 4 and all(c["x"].shape[0] == 12 for c in calls.seen)
    # prompts: the official empty prompt, then Wan's negative prompt, by the model's umT5
    from transformers import AutoTokenizer

    emb = encode_prompts(model.text_encoder, AutoTokenizer.from_pretrained(str(folder / "tokenizer")),
                         [OFFICIAL_PROMPT, WAN_NEGATIVE_PROMPT], CONFIG.text_len)
    ctx = calls.seen[0]["context"]
    assert torch.allclose(ctx[:6], emb[0].expand(6, -1, -1), atol=1e-5)
    assert torch.allclose(ctx[6:], emb[1].expand(6, -1, -1), atol=1e-5)
    assert not torch.allclose(emb[0], emb[1])

    # round 0: CLIP of the camera images as read, first-frame latents and full_ref of the same images resized
    scene_dir = Path(json.loads((ws / "generations" / "g" / "run.json").read_text())["render"]["path"])
    assert scene_dir.is_dir()
    from geniedrive.pipelines.data.dataset import OccDataset
    from geniedrive.pipelines.video.generation_inputs import first_frames

    ds = OccDataset(ws / "datasets" / "nus")
    scene = ds.scene(ds.scene_names()[0])
    refs = first_frames(ds, scene, 3, tuple(VIEWS))
    frames, clips = refs.load((32, 64))
    want_clip = clip_features(model.image_encoder, clips)
    want_ref = encode_video(model.vae, frames[:, None])[:, :, 0]
    first = calls.seen[0]
    assert torch.allclose(first["image"][:6], want_clip, atol=1e-5) and torch.allclose(first["image"][6:], want_clip, atol=1e-5)
    assert torch.allclose(first["full_ref"][:6], want_ref, atol=1e-5)
    z = CONFIG.vae.z_dim
    assert torch.allclose(first["x"][:6, 2 * z:, 0], want_ref, atol=1e-5)  # first-frame latents at latent frame 0
    assert first["x"][:, 2 * z:, 1:].abs().max() == 0  # and zeros after it
    # round 1 is seeded by round 0's last frames: other (non-zero) CLIP features and references
    second = calls.seen[2]
    assert second["image"].abs().max() > 0 and not torch.allclose(second["image"], first["image"])
    assert not torch.allclose(second["full_ref"], first["full_ref"])


def test_without_images_the_reference_is_zero_and_cfg_uses_the_given_prompts(monkeypatch):
    model = VideoModel(CONFIG, build_transformer(CONFIG, 0), build_vae(CONFIG, 1))
    calls = Calls(monkeypatch)
    cond = torch.rand(6, 5, 3, 32, 64)
    prompt, negative = torch.randn(1, CONFIG.text_len, 16), torch.randn(1, CONFIG.text_len, 16)
    video = generate_video(model.transformer, model.vae, CONFIG, cond, GenerationSettings(steps=1, chunk_frames=5),
                           prompt_embeds=prompt, negative_embeds=negative)
    assert video.shape == (6, 5, 3, 32, 64)
    (c,) = calls.seen
    assert c["image"].shape == (12, CONFIG.transformer.image_tokens, CONFIG.transformer.image_dim)
    assert c["image"].abs().max() == 0 and c["full_ref"].abs().max() == 0
    assert torch.equal(c["context"][:6], prompt.expand(6, -1, -1)) and torch.equal(c["context"][6:], negative.expand(6, -1, -1))


def test_rollout_hands_clip_8_bit_frames():
    frames = torch.tensor([0.0, 0.5, 0.99999, 1.2])
    assert torch.equal(as_clip_input(frames), torch.tensor([0.0, 127 / 255, 254 / 255, 1.0]))


def test_an_i2v_model_without_its_image_encoder_exits_2_before_work(capsys, released, tmp_path):
    ws, folder, model = released
    bare = tmp_path / "no-clip"
    save_video_model(VideoModel(CONFIG, model.transformer, model.vae, model.text_encoder, None, folder / "tokenizer"), bare)
    before = artifact_dirs(ws, "generations")
    r = run_cli(capsys, "--workspace", ws, "generate", "--dataset", "nus", "--traj", "gt", "--frames", "9",
                "--video-model", bare, *RES)
    assert r.code == 2 and len(r.err_lines) == 1
    assert f"{IMAGE_ENCODER_DIR}/" in r.err and "--base" in r.err
    assert artifact_dirs(ws, "generations") == before


def test_an_image_encoder_of_another_width_exits_2_before_work(capsys, released, tmp_path):
    """A CLIP whose features the transformer's image projection cannot take is named before sampling."""
    from transformers import CLIPVisionConfig, CLIPVisionModel

    ws, folder, model = released
    wide = CLIPVisionModel(CLIPVisionConfig(hidden_size=CONFIG.transformer.image_dim * 2, intermediate_size=64,
                                            num_hidden_layers=2, num_attention_heads=2, image_size=28, patch_size=14))
    other = tmp_path / "other-clip"
    save_video_model(VideoModel(CONFIG, model.transformer, model.vae, model.text_encoder, wide, folder / "tokenizer"),
                     other)
    before = artifact_dirs(ws, "generations")
    r = run_cli(capsys, "--workspace", ws, "generate", "--dataset", "nus", "--traj", "gt", "--frames", "9",
                "--video-model", other, *RES)
    assert r.code == 2 and len(r.err_lines) == 1, r.err
    t = CONFIG.transformer
    assert f"[{t.image_tokens}, {2 * t.image_dim}]" in r.err and f"[{t.image_tokens}, {t.image_dim}]" in r.err
    assert artifact_dirs(ws, "generations") == before
