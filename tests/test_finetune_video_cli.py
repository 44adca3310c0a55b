"""`gdrive finetune-video` on a tiny nuScenes-format folder with camera images (debug video config, CPU).

The nuScenes fixture writes tables whose camera `sample_data` rows name `samples/<CAM>/...jpg`
files but no images; `nus_workspace` writes small JPEGs there (a colour per camera and time) and
prepares the dataset once for the module.
"""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

from geniedrive.cli.app import main
from geniedrive.pipelines.video.finetune_data import CameraTrack, clip_start
from geniedrive.pipelines.video.loading import load_video_model
from geniedrive.pipelines.video.model import MultiViewWanTransformer
from tests.helpers import REPO, artifact_dirs, run_cli
from tests.nuscenes_fixture import build_nuscenes_folder

IMAGE_HW = (32, 64)
# 3 keyframes: 13 frames at 12 Hz, so a 5-frame clip at the official stride 2 (9 frames) fits
# inside 10-90 % of the scene.
KEYFRAMES = 3
TRAIN = ("finetune-video", "--dataset", "nus", "--video-config", "debug", "--clip-frames", "5", "--quiet")


def _write_camera_images(root: Path, version: str) -> list[Path]:
    rows = json.loads((root / version / "sample_data.json").read_text())
    paths = []
    for n, row in enumerate(r for r in rows if r["fileformat"] == "jpg"):
        path = root / row["filename"]
        path.parent.mkdir(parents=True, exist_ok=True)
        rng = np.random.default_rng(n)
        img = rng.integers(0, 256, (*IMAGE_HW, 3), dtype=np.uint8) // 4 + np.uint8(n * 37 % 192)
        Image.fromarray(img).save(path, quality=90)
        paths.append(path)
    return paths


@pytest.fixture(scope="module")
def nus_workspace(tmp_path_factory):
    base = tmp_path_factory.mktemp("finetune")
    root, ws = base / "nusc", base / "ws"
    build_nuscenes_folder(root, version="v1.0-mini", frames=KEYFRAMES)
    images = _write_camera_images(root, "v1.0-mini")
    code = main(["prepare-occ", "--source", "nuscenes", "--dataroot", str(root), "--version", "v1.0-mini",
                 "--name", "nus", "--no-previews", "--workspace", str(ws), "--quiet"])
    assert code == 0
    return ws, images


def test_finetune_writes_a_loadable_video_model_and_logs_the_loss(capsys, nus_workspace):
    ws, _ = nus_workspace
    r = run_cli(capsys, *TRAIN[:-1], "--steps", "3", "--name", "v3", "--workspace", ws, "--json")
    assert r.code == 0, r.err
    out = r.json()
    assert out["kind"] == "video-model" and out["steps"] == 3 and np.isfinite(out["last_loss"])
    assert "loss" in r.err  # progress lines carry the loss of each step
    folder = Path(out["path"])
    assert folder == ws / "video-models" / "v3"
    model = load_video_model(folder)
    assert model.config.name == "debug" and model.config.optim.train_frames == 5
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["kind"] == "video-model" and manifest["config"]["resolved"]["scenes"] == ["scene-0061"]
    run = ws / "runs" / "v3" / "last"
    assert json.loads((run / "state.json").read_text())["step"] == 3 and (run / "optimizer.safetensors").is_file()
    renders = artifact_dirs(ws, "renders")
    assert len(renders) == 1 and renders[0].startswith("nus-scene-0061-32x64")  # default names carry the dataset
    again = run_cli(capsys, *TRAIN, "--steps", "3", "--name", "v3", "--workspace", ws)
    assert again.code == 0 and again.err == ""  # reused, quietly


def test_resumed_run_ends_identical_to_an_uninterrupted_one(capsys, nus_workspace):
    ws, _ = nus_workspace
    common = (*TRAIN, "--steps", "2", "--ckpt-every", "1", "--workspace", ws)
    assert run_cli(capsys, *common, "--name", "full").code == 0
    # A run stopped at its step-1 checkpoint (what a killed run leaves), then resumed to step 2.
    half = run_cli(capsys, *TRAIN, "--steps", "1", "--ckpt-every", "1", "--workspace", ws, "--name", "cut")
    assert half.code == 0, half.err
    resumed = run_cli(capsys, *common, "--name", "cut", "--resume", "--force")
    assert resumed.code == 0, resumed.err
    weights = "transformer/diffusion_pytorch_model.safetensors"
    a = load_file(ws / "video-models" / "full" / weights)
    b = load_file(ws / "video-models" / "cut" / weights)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    losses = [json.loads((ws / "runs" / n / "last" / "state.json").read_text())["losses"] for n in ("full", "cut")]
    assert len(losses[0]) == 2 and losses[0] == losses[1]


def test_dataset_without_camera_images_exits_2(capsys, tmp_path):
    assert run_cli(capsys, "prepare-occ", "--source", "synthetic", "--scenes", "1", "--frames", "2", "--name", "syn",
                   "--no-previews", "--quiet").code == 0
    r = run_cli(capsys, "finetune-video", "--dataset", "syn", "--video-config", "debug", "--steps", "1")
    assert r.code == 2 and len(r.err_lines) == 1
    assert "camera images" in r.err and "synthetic" in r.err and "--source nuscenes" in r.err
    assert artifact_dirs(tmp_path / "ws", "video-models") == [] and artifact_dirs(tmp_path / "ws", "renders") == []


def test_a_wan_base_for_the_released_layout_exits_2_with_the_way(capsys, tmp_path):
    """--base widens a T2V Wan2.1 into a text-only config; the released layout comes by import."""
    r = run_cli(capsys, "finetune-video", "--dataset", "nus", "--video-config", "debug-i2v", "--base", tmp_path,
                "--workspace", tmp_path / "ws")
    assert r.code == 2 and len(r.err_lines) == 1, r.err
    assert "--base" in r.err and "wan2.1-1.3b-t2v" in r.err and "import-weights --format geniedrive-video" in r.err
    assert not (tmp_path / "ws" / "video-models").exists()


def test_missing_camera_image_exits_2_naming_it(capsys, nus_workspace):
    ws, images = nus_workspace
    # the train scene (scene-0061) was logged as n015; every one of its keyframe images is a target
    victim = next(p for p in images if p.name.startswith("n015") and "__CAM_BACK_LEFT__" in p.name)
    aside = victim.with_suffix(".aside")
    victim.rename(aside)
    try:
        r = run_cli(capsys, *TRAIN, "--steps", "1", "--name", "nope", "--workspace", ws)
    finally:
        aside.rename(victim)
    assert r.code == 2 and len(r.err_lines) == 1 and victim.name in r.err and "sweeps/" in r.err
    assert not (ws / "video-models" / "nope").exists()


def test_the_released_layout_without_init_exits_2_with_the_way(capsys, tmp_path):
    """Random weights have no CLIP image encoder for the i2v features: the released layout comes by import."""
    r = run_cli(capsys, "finetune-video", "--dataset", "nus", "--video-config", "debug-i2v",
                "--workspace", tmp_path / "ws")
    assert r.code == 2 and len(r.err_lines) == 1, r.err
    assert "--video-config debug-i2v" in r.err and "--init NAME" in r.err and "--base DIR" in r.err
    assert not (tmp_path / "ws" / "video-models").exists()


def test_i2v_training_batch_feeds_first_frame_clip_features_and_a_zero_full_ref():
    """As the official trainer (control_ref, first-frame reference): CLIP features of each view's
    first frame, zeroed per view with p = 0.1 like the condition and first-frame latents; full_ref
    zeros (the official trainer keeps it only for a reference from elsewhere in the clip); the
    loss trains the CLIP cross-attention."""
    from geniedrive.pipelines.video.conditioning import clip_features
    from geniedrive.pipelines.video.configs import get_config
    from geniedrive.pipelines.video.finetune import encode_training_batch
    from geniedrive.pipelines.video.flow import flow_matching_loss
    from geniedrive.pipelines.video.latents import build_vae, encode_video
    from geniedrive.pipelines.video.model import MultiViewWanTransformer, build_transformer
    from tests.test_generate_official import tiny_encoders

    cfg = get_config("debug-i2v")
    _, clip = tiny_encoders()
    vae, model = build_vae(cfg, 1), build_transformer(cfg, 0)
    gen = torch.Generator().manual_seed(3)
    videos, conds = torch.rand(2, 1, 6, 5, 3, 32, 64, generator=gen)
    with pytest.raises(ValueError, match="image_encoder"):
        encode_training_batch(vae, videos, conds, cfg)
    batch = encode_training_batch(vae, videos, conds, cfg, None, clip)
    expected = clip_features(clip, videos[0, :, 0])
    assert batch.image.shape == (6, cfg.transformer.image_tokens, cfg.transformer.image_dim)
    assert torch.allclose(batch.image, expected) and expected.abs().sum() > 0
    assert batch.full_ref.shape == (6, cfg.vae.z_dim, 4, 8) and not batch.full_ref.any()
    assert torch.allclose(batch.first[:, :, 0], encode_video(vae, videos[0, :, :1])[:, :, 0])

    seen = []
    real = MultiViewWanTransformer.forward

    def spy(module, x, t, ctx, encoder_hidden_states_image=None, **kw):
        seen.append((x.detach().clone(), encoder_hidden_states_image.detach().clone(), kw["full_ref"].clone()))
        return real(module, x, t, ctx, encoder_hidden_states_image, **kw)

    MultiViewWanTransformer.forward = spy
    try:
        losses = [flow_matching_loss(model, batch, cfg.flow, torch.Generator().manual_seed(i)) for i in range(40)]
    finally:
        MultiViewWanTransformer.forward = real
    dropped, kept = 0, 0
    for _, image, full_ref in seen:
        assert not full_ref.any()
        for view in range(6):
            if image[view].any():
                assert torch.equal(image[view], batch.image[view])
                kept += 1
            else:
                dropped += 1
    assert 0.03 < dropped / (dropped + kept) < 0.2  # p = 0.1 over 240 views
    losses[0].backward()
    grad = model.condition_embedder.image_embedder.ff.net[0].proj.weight.grad
    assert grad is not None and grad.abs().sum() > 0


@pytest.mark.parametrize("value,near", [("8", "5 or 9"), ("36", "33 or 37"), ("0", "1")])
def test_bad_clip_frames_exit_2_naming_the_nearest_valid(capsys, value, near):
    r = run_cli(capsys, "finetune-video", "--video-config", "debug", "--clip-frames", value)
    assert r.code == 2 and len(r.err_lines) == 1
    assert "--clip-frames" in r.err and f"nearest valid: {near}" in r.err


def test_clip_starts_stay_inside_10_to_90_percent_and_nearest_images():
    gen = torch.Generator().manual_seed(0)
    starts = {clip_start(100, 17, gen) for _ in range(300)}
    assert min(starts) == 10 and max(starts) == 90 - 17
    assert {clip_start(19, 17, gen) for _ in range(50)} <= {0, 1, 2}  # window too short: the whole scene
    track = CameraTrack(np.array([0, 500_000, 1_000_000]), [Path("a"), Path("b"), Path("c")])
    paths, gap = track.nearest(np.array([0, 83_333, 300_000, 999_000]))
    assert [p.name for p in paths] == ["a", "a", "b", "c"] and gap == pytest.approx(0.2)


PACK_VIDEO = REPO.parent / "shared" / "official-reference" / "video"


@pytest.mark.skipif(not (PACK_VIDEO / "tiny_i2v_ref").is_dir(), reason="official reference pack absent")
def test_init_checks_the_imported_model_before_anything_runs(capsys, nus_workspace, tmp_path):
    """Imported without --base (no VAE), --init exits 2; so does the pack's tiny pairing, whose CLIP
    is 64 wide while the official image projection takes 1280 (the official code would fail on it too)."""
    ws, _ = nus_workspace
    for name in ("tiny_i2v_ref", "base_tiny"):
        shutil.copytree(PACK_VIDEO / name, tmp_path / name, ignore=shutil.ignore_patterns("*.npz"))
    variant = tmp_path / "tiny_i2v_ref"
    common = ("import-weights", "--format", "geniedrive-video", "--transformer",
              variant / "diffusion_pytorch_model.safetensors", "--config", variant / "config.json",
              "--workspace", ws, "--quiet")
    assert run_cli(capsys, *common, "--base", tmp_path / "base_tiny", "--name", "genie-tiny").code == 0
    assert run_cli(capsys, *common, "--name", "genie-bare").code == 0
    train = ("finetune-video", "--dataset", "nus", "--clip-frames", "5", "--resolution", "32x64", "--steps", "1",
             "--workspace", ws)
    r = run_cli(capsys, *train, "--init", "genie-bare", "--name", "ft-bare")
    assert r.code == 2 and len(r.err_lines) == 1 and "has no vae/" in r.err and "--base" in r.err
    r = run_cli(capsys, *train, "--init", "genie-tiny", "--name", "ft-tiny")
    assert r.code == 2 and len(r.err_lines) == 1, r.err
    assert "image_encoder" in r.err and "[257, 64]" in r.err and "[257, 1280]" in r.err
    assert not {"ft-bare", "ft-tiny"} & set(artifact_dirs(ws, "video-models"))


def test_init_trains_the_released_layout_on_clip_features_and_keeps_its_encoders(capsys, monkeypatch, nus_workspace,
                                                                                 tmp_path):
    """A released-layout model (debug sizes, tiny umT5 + tokenizer and CLIP) continues with --init:
    the step sees the CLIP features of the six first frames, a zero full_ref and the official empty
    prompt by the model's umT5 (what generate samples with); the encoders and tokenizer go with the result."""
    from transformers import AutoTokenizer

    from geniedrive.pipelines.video.conditioning import OFFICIAL_PROMPT, encode_prompts
    from geniedrive.pipelines.video.configs import get_config
    from geniedrive.pipelines.video.latents import build_vae
    from geniedrive.pipelines.video.loading import VideoModel, save_video_model
    from geniedrive.pipelines.video.model import build_transformer
    from tests.test_generate_official import tiny_encoders, tiny_tokenizer

    ws, _ = nus_workspace
    cfg = get_config("debug-i2v")
    text, image = tiny_encoders()
    released = tmp_path / "released"
    save_video_model(VideoModel(cfg, build_transformer(cfg, 0), build_vae(cfg, 1), text, image,
                                tiny_tokenizer(tmp_path / "tok")), released)
    seen = []
    real = MultiViewWanTransformer.forward

    def spy(module, x, t, ctx, encoder_hidden_states_image=None, **kw):
        seen.append((ctx.detach().clone(), encoder_hidden_states_image.detach().clone(), kw.get("full_ref")))
        return real(module, x, t, ctx, encoder_hidden_states_image, **kw)

    monkeypatch.setattr(MultiViewWanTransformer, "forward", spy)
    r = run_cli(capsys, "finetune-video", "--dataset", "nus", "--clip-frames", "5", "--resolution", "32x64",
                "--steps", "1", "--workspace", ws, "--init", released, "--name", "ft-genie", "--json", "--quiet")
    assert r.code == 0, r.err
    (ctx, feats, full_ref), = seen
    assert feats.shape == (6, cfg.transformer.image_tokens, cfg.transformer.image_dim) and feats.abs().sum() > 0
    assert full_ref.shape == (6, cfg.vae.z_dim, 4, 8) and not full_ref.any()
    prompt = encode_prompts(text, AutoTokenizer.from_pretrained(str(released / "tokenizer")), [OFFICIAL_PROMPT],
                            cfg.text_len)
    assert torch.allclose(ctx, prompt.expand(6, -1, -1), atol=1e-5)
    folder = Path(r.json()["path"])
    assert json.loads((folder / "manifest.json").read_text())["inputs"]["prompt"] == "umt5"
    model = load_video_model(folder)
    assert model.config.transformer.model_type == "i2v" and model.config.resolution == (32, 64)
    assert model.text_encoder is not None and model.image_encoder is not None and model.vae is not None
    saved, given = model.image_encoder.state_dict(), image.state_dict()
    assert saved.keys() == given.keys() and all(torch.equal(saved[k], given[k]) for k in saved)  # frozen
