"""Multi-view video model (pipelines/video): attention, diffusers save/load, base widening, flow
matching, rollout and input checks. Tiny random models (`debug` config) on CPU."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch
from diffusers import WanTransformer3DModel

from geniedrive.pipelines.errors import BadInput
from geniedrive.pipelines.video import conditioning as conditioning_module
from geniedrive.pipelines.video.configs import VideoConfig, get_config
from geniedrive.pipelines.video.finetune import encode_training_batch, finetune_step, make_optimizer, set_gradient_checkpointing
from geniedrive.pipelines.video.flow import flow_matching_loss, sample_latents
from geniedrive.pipelines.video.latents import first_frame_latents, model_input, text_context
from geniedrive.pipelines.video.loading import (
    VideoModel,
    build_video_model,
    load_base_transformer,
    load_video_model,
    require_vae,
    save_video_model,
)
from geniedrive.pipelines.video.model import MultiViewWanTransformer
from geniedrive.pipelines.video.multiview import NormalizedMultiViewAttention, multiview_parameter_count
from geniedrive.pipelines.video.rollout import GenerationSettings, check_frames, check_resolution, chunk_starts, generate_video

DEBUG = get_config("debug")
V = DEBUG.num_views


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _mv_module(eta: float = 0.2, views: int = 3, dim: int = 16, heads: int = 2) -> NormalizedMultiViewAttention:
    torch.manual_seed(0)
    return NormalizedMultiViewAttention(dim, heads, views, eta=eta)


def _latent_inputs(config=DEBUG, frames: int = 2, h: int = 4, w: int = 8, seed: int = 0):
    """Random transformer inputs for one sample of V views: x [V, 3z, F, h, w], t [V], context [V, L, D]."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(config.num_views, config.in_channels, frames, h, w, generator=g)
    t = torch.full((config.num_views,), 700.0)
    ctx = torch.randn(config.num_views, config.text_len, config.transformer.text_dim, generator=g)
    return x, t, ctx


# --- Normalized Multi-View Attention -----------------------------------------------------------

def test_multiview_output_matches_normalisation_formula():
    mod = _mv_module(eta=0.2, views=3)
    b, f, h, w, c = 2, 2, 3, 4, 16
    x = torch.randn(b * 3, f * h * w, c)
    out = mod(x, (f, h, w))

    # regroup by hand: one sequence per (sample, frame, row), the views' rows side by side
    grid = x.reshape(b, 3, f, h, w, c)
    expected = torch.empty_like(grid)
    for bi in range(b):
        for fi in range(f):
            for hi in range(h):
                seq = torch.cat([grid[bi, v, fi, hi] for v in range(3)])[None]  # [1, V·W, C]
                y = mod.attend(seq)
                y_prime = (y - y.mean()) * seq.std() / (y.std() + 1e-5) + seq.mean()
                new = (seq + 0.2 * y_prime)[0]
                for v in range(3):
                    expected[bi, v, fi, hi] = new[v * w:(v + 1) * w]
    torch.testing.assert_close(out, expected.reshape_as(x), rtol=1e-5, atol=1e-5)

    mod.eta = 0.0
    torch.testing.assert_close(mod(x, (f, h, w)), x, rtol=0, atol=0)


def test_multiview_token_sees_only_its_row_across_views():
    mod = _mv_module(eta=1.0, views=3)
    b, f, h, w, c = 2, 2, 3, 4, 16
    x = torch.randn(b * 3, f * h * w, c, requires_grad=True)
    out = mod(x, (f, h, w)).reshape(b, 3, f, h, w, c)
    out[1, 1, 1, 2, 3].sum().backward()  # sample 1, view 1, frame 1, row 2, column 3
    grad = x.grad.reshape(b, 3, f, h, w, c).abs().sum(-1)  # [B, V, F, H, W]
    same_row = torch.zeros_like(grad, dtype=torch.bool)
    same_row[1, :, 1, 2, :] = True
    assert (grad[~same_row] == 0).all()  # other samples, frames and rows: no influence
    assert (grad[same_row] > 0).all()  # every view's token in the same row: influence
    assert grad[1, 0, 1, 2, 0] > 0 and grad[1, 2, 1, 2, 3] > 0


def test_multiview_parameter_counts():
    paper = get_config("wan2.1-1.3b")
    t = paper.transformer
    assert paper.multiview_blocks == (0, 3, 6, 9, 12, 15, 18, 21, 24, 27, 29)
    assert multiview_parameter_count(t.dim, t.num_attention_heads, 6, 1) == 9_446_400
    assert multiview_parameter_count(t.dim, t.num_attention_heads, 6, len(paper.multiview_blocks)) == 103_910_400
    assert paper.in_channels == 48 and t.dim == 1536

    model = build_video_model(DEBUG).transformer
    in_model = sum(p.numel() for n, p in model.named_parameters() if n.startswith("multiview."))
    d = DEBUG.transformer
    assert in_model == multiview_parameter_count(d.dim, d.num_attention_heads, V, len(DEBUG.multiview_blocks))
    assert sorted(model.multiview.keys()) == [str(i) for i in DEBUG.multiview_blocks]


# --- diffusers save / load, base widening ------------------------------------------------------

def test_save_load_gives_identical_outputs(tmp_path):
    model = build_video_model(DEBUG, seed=3)
    x, t, ctx = _latent_inputs()
    with torch.no_grad():
        before = model.transformer(x, t, ctx, return_dict=False)[0]
    save_video_model(model, tmp_path / "m")
    cfg_json = json.loads((tmp_path / "m" / "transformer" / "config.json").read_text())
    assert cfg_json["multiview_blocks"] == list(DEBUG.multiview_blocks)
    assert cfg_json["multiview_eta"] == pytest.approx(0.2) and cfg_json["in_channels"] == 48

    loaded = load_video_model(tmp_path / "m")
    assert loaded.config == DEBUG
    assert isinstance(loaded.transformer, MultiViewWanTransformer)
    with torch.no_grad():
        after = loaded.transformer(x, t, ctx, return_dict=False)[0]
    torch.testing.assert_close(after, before, rtol=0, atol=0)
    for (k, a), (_, b) in zip(model.vae.state_dict().items(), loaded.vae.state_dict().items()):
        assert torch.equal(a, b), k


def _tiny_base() -> WanTransformer3DModel:
    d = DEBUG.transformer
    torch.manual_seed(11)
    return WanTransformer3DModel(
        patch_size=d.patch_size, num_attention_heads=d.num_attention_heads, attention_head_dim=d.attention_head_dim,
        in_channels=16, out_channels=16, text_dim=d.text_dim, freq_dim=d.freq_dim, ffn_dim=d.ffn_dim,
        num_layers=d.num_layers,
    )


@pytest.mark.parametrize("layout", ["transformer-folder", "pipeline-folder"])
def test_widened_base_equals_base_on_its_channels(tmp_path, layout):
    base = _tiny_base().eval()
    folder = tmp_path / "base"
    base.save_pretrained(folder if layout == "transformer-folder" else folder / "transformer")
    no_mv = dataclasses.replace(DEBUG, multiview=dataclasses.replace(DEBUG.multiview, eta=0.0))
    widened = load_base_transformer(folder, no_mv).eval()
    assert widened.config.in_channels == 48 and torch.all(widened.patch_embedding.weight[:, 16:] == 0)

    x, t, ctx = _latent_inputs()
    with torch.no_grad():
        ref = base(x[:, :16], t, ctx, return_dict=False)[0]
        zeros_extra = widened(torch.cat([x[:, :16], torch.zeros_like(x[:, 16:])], 1), t, ctx, return_dict=False)[0]
        any_extra = widened(x, t, ctx, return_dict=False)[0]
    torch.testing.assert_close(zeros_extra, ref, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(any_extra, ref, rtol=1e-5, atol=1e-6)

    # with the multi-view modules on, they change the output: they are really in the loop
    with_mv = load_base_transformer(folder, DEBUG).eval()
    with torch.no_grad():
        assert not torch.allclose(with_mv(x, t, ctx, return_dict=False)[0], ref, atol=1e-4)


def test_missing_or_corrupt_weights_raise_bad_input(tmp_path):
    with pytest.raises(BadInput, match="no such folder") as missing:
        load_base_transformer(tmp_path / "nowhere" / "base", DEBUG)
    assert "\n" not in str(missing.value) and "nowhere" in str(missing.value)

    corrupt = tmp_path / "corrupt"
    _tiny_base().save_pretrained(corrupt)
    (corrupt / "diffusion_pytorch_model.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(BadInput) as bad:
        load_base_transformer(corrupt, DEBUG)
    message = str(bad.value)
    assert "\n" not in message and str(corrupt) in message and "safetensors" in message

    (corrupt / "diffusion_pytorch_model.safetensors").unlink()
    with pytest.raises(BadInput, match="FileNotFoundError: no diffusion_pytorch_model.safetensors"):
        load_base_transformer(corrupt, DEBUG)

    wrong = tmp_path / "wrong"
    _tiny_base().save_pretrained(wrong)
    with pytest.raises(BadInput, match="does not fit video config 'wan2.1-1.3b-t2v'"):
        load_base_transformer(wrong, get_config("wan2.1-1.3b-t2v"))

    with pytest.raises(BadInput, match="video_config.json"):
        load_video_model(tmp_path / "empty")
    saved = tmp_path / "saved"
    save_video_model(build_video_model(DEBUG), saved)
    (saved / "transformer" / "diffusion_pytorch_model.safetensors").write_bytes(b"\0" * 10)
    with pytest.raises(BadInput, match="cannot load MultiViewWanTransformer"):
        load_video_model(saved)


# --- flow matching: training and sampling ------------------------------------------------------

def _fixed_batch(model):
    g = torch.Generator().manual_seed(5)
    videos = torch.rand(1, V, 5, 3, 32, 64, generator=g)
    conditions = torch.rand(1, V, 5, 3, 32, 64, generator=g)
    return encode_training_batch(model.vae, videos, conditions, DEBUG)


def _fixed_loss(model, batch) -> torch.Tensor:
    return flow_matching_loss(model.transformer, batch, DEBUG.flow, torch.Generator().manual_seed(9))


def test_three_finetune_steps_lower_the_loss():
    model = build_video_model(DEBUG, seed=1)
    batch = _fixed_batch(model)
    assert batch.target.shape == (V, 16, 2, 4, 8) and batch.context.shape == (V, DEBUG.text_len, 16)
    with torch.no_grad():
        start = _fixed_loss(model, batch).item()
    opt = make_optimizer(model.transformer, DEBUG.optim)
    losses = [finetune_step(model.transformer, opt, batch, DEBUG, generator=torch.Generator().manual_seed(9)).loss
              for _ in range(3)]
    with torch.no_grad():
        end = _fixed_loss(model, batch).item()
    assert losses[0] == pytest.approx(start, rel=1e-5)  # the step reports the pre-update loss
    assert end < start and losses[2] < losses[0]


def test_gradient_checkpointing_gives_the_same_gradients():
    model = build_video_model(DEBUG, seed=2)
    batch = _fixed_batch(model)
    grads = []
    for enabled in (False, True):
        set_gradient_checkpointing(model.transformer, enabled)
        model.transformer.zero_grad()
        _fixed_loss(model, batch).backward()
        grads.append(torch.cat([p.grad.flatten() for p in model.transformer.parameters()]))
    torch.testing.assert_close(grads[1], grads[0], rtol=1e-4, atol=1e-6)


def test_guidance_with_equal_prompts_is_no_guidance():
    model = build_video_model(DEBUG, seed=4)
    x, _, ctx = _latent_inputs()
    cond, first = x[:, 16:32], x[:, 32:]
    run = dict(steps=2, shift=5.0, flow=DEBUG.flow)
    plain = sample_latents(model.transformer, cond, first, ctx, guidance=1.0,
                           generator=torch.Generator().manual_seed(0), **run)
    cfg_same = sample_latents(model.transformer, cond, first, ctx, guidance=4.0, negative_context=ctx,
                              generator=torch.Generator().manual_seed(0), **run)
    cfg_zero = sample_latents(model.transformer, cond, first, ctx, guidance=4.0,
                              generator=torch.Generator().manual_seed(0), **run)
    torch.testing.assert_close(cfg_same, plain, rtol=1e-4, atol=1e-4)
    assert not torch.allclose(cfg_zero, plain, atol=1e-3)
    assert model_input(x[:, :16], cond, first).shape == x.shape
    assert text_context(None, 1, V, DEBUG, x.device).abs().sum() == 0


# --- rollout and input checks ------------------------------------------------------------------

def test_chunk_spans_share_one_frame():
    assert chunk_starts(241, 81) == [(0, 81), (80, 81), (160, 81)]
    assert chunk_starts(45, 17) == [(0, 17), (16, 17), (32, 13)]
    assert chunk_starts(9, 81) == [(0, 9)]


def test_rollout_241_frames_seeds_each_chunk_with_the_last_frame(monkeypatch):
    model = build_video_model(DEBUG, seed=6)
    conditions = torch.rand(V, 241, 3, 16, 32, generator=torch.Generator().manual_seed(1))
    seeds_encoded = []

    def recording_first_frame_latents(vae, first, like):
        seeds_encoded.append(None if first is None else first.clone())
        return first_frame_latents(vae, first, like)

    monkeypatch.setattr(conditioning_module, "first_frame_latents", recording_first_frame_latents)
    reports = []
    settings = GenerationSettings(steps=1, guidance=2.0, chunk_frames=41, seed=0)
    prompt = torch.randn(1, DEBUG.text_len, DEBUG.transformer.text_dim)  # a prompt, so guidance runs
    video = generate_video(model.transformer, model.vae, DEBUG, conditions, settings, prompt_embeds=prompt,
                           on_chunk=reports.append)

    assert video.shape == (V, 241, 3, 16, 32)
    assert 0 <= video.min() and video.max() <= 1
    assert [r.start for r in reports] == [0, 40, 80, 120, 160, 200]
    assert seeds_encoded[0] is None  # no reference image for round 0
    for k in range(1, len(reports)):
        prev, cur = reports[k - 1], reports[k]
        # the image encoded as round k's first-frame latent is round k-1's last generated frame
        torch.testing.assert_close(seeds_encoded[k], prev.frames[:, -1], rtol=0, atol=0)
        # the seam appears once: the output keeps round k-1's frame there, then round k's new frames
        torch.testing.assert_close(video[:, cur.start], prev.frames[:, -1], rtol=0, atol=0)
        torch.testing.assert_close(video[:, cur.start + 1:cur.start + 41], cur.frames[:, 1:], rtol=0, atol=0)


def test_bad_frame_counts_and_resolutions_raise_bad_input():
    assert check_frames(241) == 241 and check_frames(1) == 1
    with pytest.raises(BadInput, match=r"--frames 240: .*nearest valid: 237 or 241"):
        check_frames(240)
    with pytest.raises(BadInput, match="--chunk-frames 80: .*77 or 81"):
        check_frames(80, "--chunk-frames")
    assert check_resolution(256, 512, 16) == (256, 512)
    with pytest.raises(BadInput, match=r"--resolution 250x500: .*multiples of 16.*240x496 or 256x512"):
        check_resolution(250, 500, 16)
    assert get_config("wan2.1-1.3b").pixel_multiple == 16

    model = build_video_model(DEBUG)
    with pytest.raises(BadInput, match="--frames 240"):
        generate_video(model.transformer, model.vae, DEBUG, torch.rand(V, 240, 3, 16, 32))
    with pytest.raises(BadInput, match="--resolution 24x32"):
        generate_video(model.transformer, model.vae, DEBUG, torch.rand(V, 9, 3, 24, 32))
    with pytest.raises(BadInput, match="--chunk-frames 1: must be at least 5"):
        generate_video(model.transformer, model.vae, DEBUG, torch.rand(V, 9, 3, 16, 32),
                       GenerationSettings(chunk_frames=1))
    with pytest.raises(BadInput, match="5 views"):
        generate_video(model.transformer, model.vae, DEBUG, torch.rand(5, 9, 3, 16, 32))


# --- the released (i2v + ref_conv) layout in configs ---------------------------------------------

DEBUG_I2V = get_config("debug-i2v")


def test_named_configs_and_their_layouts():
    released, t2v = get_config("wan2.1-1.3b"), get_config("wan2.1-1.3b-t2v")
    assert released.transformer.model_type == "i2v" and released.transformer.add_ref_conv
    assert released.transformer.image_dim == 1280 and released.transformer.image_tokens == 257
    assert released.in_channels == 48  # 16 noisy + 16 control + 16 first-frame latents, the official in_dim
    assert t2v.transformer.model_type == "t2v" and not t2v.transformer.add_ref_conv and t2v.transformer.image_dim is None
    assert t2v.base_model == "Wan-AI/Wan2.1-T2V-1.3B-Diffusers"
    # the same sizes: only the layout differs
    layout = {"model_type": "t2v", "add_ref_conv": False, "image_dim": None}
    assert dataclasses.replace(released.transformer, **layout) == t2v.transformer
    assert DEBUG.transformer.model_type == "t2v"
    assert dataclasses.replace(DEBUG_I2V.transformer, **layout, image_tokens=257) == DEBUG.transformer


def _config_dict(config=DEBUG, **transformer) -> dict:
    d = json.loads(json.dumps(config.to_dict()))
    d["transformer"].update(transformer)
    return d


@pytest.mark.parametrize("fields, needle", [
    ({"model_type": "ti2v"}, "model_type 'ti2v' is not one of t2v, i2v"),
    ({"model_type": 2}, "model_type = 2"),
    ({"image_dim": 1280}, "image_dim = 1280 with model_type 't2v'"),
    ({"model_type": "i2v"}, "image_dim = None: model_type 'i2v' needs the CLIP feature width"),
    ({"model_type": "i2v", "image_dim": 32, "image_tokens": 8}, "image_tokens = 8 must be fewer than text_len 8"),
    ({"add_ref_conv": "yes"}, "add_ref_conv = 'yes'"),
])
def test_bad_layout_in_a_config_file_is_one_line(fields, needle):
    with pytest.raises(BadInput) as err:
        VideoConfig.from_dict(_config_dict(**fields), "m/video_config.json")
    assert needle in str(err.value) and "\n" not in str(err.value) and "m/video_config.json" in str(err.value)


def test_config_files_without_the_layout_fields_read_as_text_only():
    d = _config_dict()
    for key in ("model_type", "add_ref_conv", "image_dim", "image_tokens"):
        del d["transformer"][key]
    assert VideoConfig.from_dict(d) == DEBUG
    assert VideoConfig.from_dict(_config_dict(DEBUG_I2V)) == DEBUG_I2V


def test_released_layout_debug_model_runs_saves_and_loads(tmp_path):
    model = build_video_model(DEBUG_I2V, seed=7)
    tr = model.transformer
    assert tr.ref_conv is not None and tr.config.image_dim == 32 and tr.config.image_context_len == 5
    x, t, ctx = _latent_inputs(DEBUG_I2V)
    g = torch.Generator().manual_seed(1)
    image = torch.randn(V, 5, 32, generator=g)
    ref = torch.randn(V, 16, 4, 8, generator=g)
    with torch.no_grad():
        full = tr(x, t, ctx, encoder_hidden_states_image=image, full_ref=ref, return_dict=False)[0]
        plain = tr(x, t, ctx, return_dict=False)[0]
    assert full.shape == plain.shape == (V, 16, 2, 4, 8) and not torch.allclose(full, plain, atol=1e-4)
    save_video_model(model, tmp_path / "m")
    loaded = load_video_model(tmp_path / "m")
    assert loaded.config == DEBUG_I2V and loaded.text_encoder is None and loaded.image_encoder is None
    with torch.no_grad():
        again = loaded.transformer(x, t, ctx, encoder_hidden_states_image=image, full_ref=ref, return_dict=False)[0]
    torch.testing.assert_close(again, full, rtol=0, atol=0)

    # a video_config.json that describes another layout than the saved transformer is refused
    (tmp_path / "m" / "video_config.json").write_text(json.dumps(DEBUG.to_dict()))
    with pytest.raises(BadInput, match="transformer and video_config.json disagree .*image_dim 32 \\(config None\\)"):
        load_video_model(tmp_path / "m")


def test_a_model_without_vae_loads_with_vae_none(tmp_path):
    model = build_video_model(DEBUG, seed=8)
    save_video_model(VideoModel(DEBUG, model.transformer), tmp_path / "m")
    assert not (tmp_path / "m" / "vae").exists()
    loaded = load_video_model(tmp_path / "m")
    assert loaded.vae is None and loaded.config == DEBUG
    with pytest.raises(BadInput, match="has no vae/ .*--base DIR"):
        require_vae(loaded, tmp_path / "m")


def test_a_wan_base_does_not_start_the_released_layout(tmp_path):
    base = tmp_path / "base"
    _tiny_base().save_pretrained(base)
    with pytest.raises(BadInput) as err:
        load_base_transformer(base, DEBUG_I2V)
    message = str(err.value)
    assert "\n" not in message and "--video-config wan2.1-1.3b-t2v" in message and "import-weights" in message
    with pytest.raises(BadInput, match="wan2.1-1.3b-t2v"):  # refused before the hub is asked
        load_base_transformer("Wan-AI/Wan2.1-T2V-1.3B-Diffusers", get_config("wan2.1-1.3b"))
