"""The official GenieDrive video transformer (occ_render WanTransformer3DModel) in gdrive's
MultiViewWanTransformer, checked against outputs of the official code on random tiny weights
(../shared/official-reference/video): the text-only layout and the released layout (i2v CLIP
branch + ref_conv), with and without the reference frame; key maps against the full-size key
list; one-line errors for weights or configs that do not fit. Skipped where the pack is absent."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from geniedrive.pipelines.errors import BadInput
from geniedrive.pipelines.video.configs import get_config
from geniedrive.pipelines.video.latents import build_vae
from geniedrive.pipelines.video.loading import VideoModel, load_video_model, save_video_model
from geniedrive.pipelines.video.import_weights import video_config_from_official
from geniedrive.pipelines.video.model import build_transformer, transformer_kwargs
from geniedrive.pipelines.video.official_transformer import (
    check_official_state_dict,
    gdrive_to_official,
    official_forward,
    official_to_gdrive,
    official_transformer_kwargs,
    transformer_from_official,
)
from tests.helpers import REPO

PACK = REPO.parent / "shared" / "official-reference"
VIDEO = PACK / "video"
needs_pack = pytest.mark.skipif(not (VIDEO / "inputs.npz").is_file(),
                                reason=f"official reference pack not at {VIDEO}")
pytestmark = [needs_pack, pytest.mark.usefixtures("one_torch_thread")]
TOL = 1e-4

# occ_render/ckpts/config.json of the release (the sizes of keys/video_official_full_state_dict.txt)
RELEASED_CONFIG = {
    "model_type": "i2v", "add_ref_conv": True, "in_dim_ref_conv": 16, "add_control_adapter": False, "dim": 1536,
    "num_heads": 12, "num_layers": 30, "ffn_dim": 8960, "freq_dim": 256, "text_dim": 4096, "text_len": 512,
    "in_dim": 48, "out_dim": 16, "patch_size": [1, 2, 2], "eps": 1e-6, "qk_norm": True, "cross_attn_norm": True,
    "window_size": [-1, -1], "cross_attn_type": None,
}


def _variant(name: str) -> tuple[dict, dict[str, torch.Tensor]]:
    folder = VIDEO / name
    return json.loads((folder / "config.json").read_text()), load_file(folder / "diffusion_pytorch_model.safetensors")


@pytest.fixture(scope="module")
def inputs() -> dict[str, np.ndarray]:
    with np.load(VIDEO / "inputs.npz") as z:
        return {k: z[k] for k in z.files}


def _max_diff(out: torch.Tensor, ref: np.ndarray) -> float:
    assert tuple(out.shape) == ref.shape
    return (out - torch.from_numpy(ref)).abs().max().item()


def test_text_only_layout_matches_official(inputs):
    cfg, state = _variant("tiny_t2v")
    model = transformer_from_official(cfg, state)
    # the model may come wrapped in a VideoModel, and the inputs as tensors
    wrapped = VideoModel(get_config("debug"), model, None)
    with torch.no_grad():
        out = official_forward(wrapped, *(torch.from_numpy(inputs[k]) for k in ("x", "t", "context_padded", "y")))
    with np.load(VIDEO / "tiny_t2v" / "ref.npz") as ref:
        assert _max_diff(out, ref["out"]) < TOL


@pytest.mark.parametrize("with_ref", [True, False], ids=["clip+full_ref", "clip-only"])
def test_released_layout_matches_official(inputs, with_ref):
    cfg, state = _variant("tiny_i2v_ref")
    model = transformer_from_official(cfg, state)
    assert model.ref_conv is not None and model.config.image_dim == 1280
    extra = {"clip_fea": inputs["clip_fea"], "full_ref": inputs["full_ref"] if with_ref else None}
    with torch.no_grad():
        out = official_forward(model, inputs["x"], inputs["t"], inputs["context_padded"], inputs["y"], **extra)
    with np.load(VIDEO / "tiny_i2v_ref" / "ref.npz") as ref:
        assert _max_diff(out, ref["out_full" if with_ref else "out_noref"]) < TOL
        # the two references differ clearly, so each comparison tests its own path
        assert np.abs(ref["out_full"] - ref["out_noref"]).max() > 100 * TOL


def test_key_maps_cover_the_released_checkpoint():
    """Every key of the full-size release maps, back and forth, onto a model of its config with
    the listed shapes (on the meta device: no memory)."""
    listed: dict[str, torch.Tensor] = {}
    for line in (PACK / "keys" / "video_official_full_state_dict.txt").read_text().splitlines():
        if line and not line.startswith("#"):
            key, shape, _ = line.split("\t")
            listed[key] = torch.empty(json.loads(shape), device="meta")
    assert len(listed) == 1095
    kwargs = official_transformer_kwargs(RELEASED_CONFIG)
    check_official_state_dict(listed, kwargs, "release")
    mapped = official_to_gdrive(listed)
    assert len(mapped) == len(listed) and set(gdrive_to_official(mapped)) == set(listed)
    assert mapped["multiview.29.attn.to_out.0.weight"] is listed["blocks.29.cross_view_attn.o.weight"]
    assert mapped["blocks.3.attn2.norm_added_k.weight"] is listed["blocks.3.cross_attn.norm_k_img.weight"]
    # the sizes and layout are gdrive's own wan2.1-1.3b config
    assert transformer_kwargs(get_config("wan2.1-1.3b")) == kwargs
    assert kwargs["add_ref_conv"] and kwargs["image_dim"] == 1280 and kwargs["image_context_len"] == 257
    assert video_config_from_official(RELEASED_CONFIG) == get_config("wan2.1-1.3b")


def _listed_keys() -> dict[str, tuple[int, ...]]:
    out = {}
    for line in (PACK / "keys" / "video_official_full_state_dict.txt").read_text().splitlines():
        if line and not line.startswith("#"):
            key, shape, _ = line.split("\t")
            out[key] = tuple(json.loads(shape))
    return out


def test_named_released_config_has_the_official_keys_and_shapes():
    """`wan2.1-1.3b`, built on the meta device, is the full-size release key for key, shape for shape;
    `wan2.1-1.3b-t2v` is it without the image branch and ref_conv."""
    listed = _listed_keys()
    with torch.device("meta"):
        released = build_transformer(get_config("wan2.1-1.3b"))
        text_only = build_transformer(get_config("wan2.1-1.3b-t2v"))
    own = {k: tuple(v.shape) for k, v in gdrive_to_official(released.state_dict()).items()}
    assert own == listed
    t2v = set(gdrive_to_official(text_only.state_dict()))
    assert t2v < set(listed)
    assert all(re.search(r"(_img|img_emb|ref_conv)", k) for k in set(listed) - t2v)


def test_tiny_weights_round_trip():
    cfg, state = _variant("tiny_i2v_ref")
    back = gdrive_to_official(transformer_from_official(cfg, state).state_dict())
    assert set(back) == set(state) and all(torch.equal(back[k], state[k]) for k in state)


def test_released_layout_saves_and_loads_as_a_gdrive_video_model(inputs, tmp_path):
    """ref_conv, the CLIP branch and its fixed 257-token split survive save_pretrained / from_config."""
    cfg, state = _variant("tiny_i2v_ref")
    config = video_config_from_official(cfg)  # the layout load_video_model checks the transformer against
    assert config.transformer.model_type == "i2v" and config.transformer.add_ref_conv
    model = transformer_from_official(cfg, state)
    save_video_model(VideoModel(config, model, build_vae(get_config("debug"), 0)), tmp_path / "m")
    loaded = load_video_model(tmp_path / "m")
    args = [inputs[k][:6] for k in ("x", "t", "context_padded", "y")]
    for extra in ({"clip_fea": inputs["clip_fea"][:6], "full_ref": inputs["full_ref"][:6]}, {}):
        with torch.no_grad():
            before = official_forward(model, *args, **extra)
            after = official_forward(loaded, *args, **extra)
        torch.testing.assert_close(after, before, rtol=0, atol=0)


def _one_line_bad_input(fn, *args, **kwargs) -> str:
    with pytest.raises(BadInput) as err:
        fn(*args, **kwargs)
    message = str(err.value)
    assert "\n" not in message
    return message


def test_weights_that_do_not_fit_their_config_are_refused():
    cfg, state = _variant("tiny_t2v")
    renamed = dict(state)
    renamed["blocks.1.self_attn.query.weight"] = renamed.pop("blocks.1.self_attn.q.weight")
    message = _one_line_bad_input(transformer_from_official, cfg, renamed, "tiny_t2v")
    assert "blocks.1.self_attn.q.weight" in message and "blocks.1.self_attn.query.weight" in message

    reshaped = dict(state, **{"head.head.weight": torch.zeros(32, 64)})
    message = _one_line_bad_input(transformer_from_official, cfg, reshaped, "tiny_t2v")
    assert "'head.head.weight'" in message and "(32, 64)" in message

    # released-layout weights under the text-only config: the image branch and ref_conv are extra
    _, i2v_state = _variant("tiny_i2v_ref")
    message = _one_line_bad_input(transformer_from_official, cfg, i2v_state, "tiny_t2v")
    assert "unexpected" in message and "blocks.0.cross_attn.k_img" in message

    with pytest.raises(BadInput, match="not official GenieDrive video transformer keys.*blocks.1.self_attn.query"):
        official_to_gdrive(renamed)


def test_unknown_or_unsupported_configs_are_refused():
    cfg, state = _variant("tiny_t2v")
    message = _one_line_bad_input(transformer_from_official, dict(cfg, model_type="ti2v"), state)
    assert "model_type 'ti2v'" in message
    assert "window_size" in _one_line_bad_input(official_transformer_kwargs, dict(cfg, window_size=[4, 4]))
    assert "num_heads" in _one_line_bad_input(official_transformer_kwargs, dict(cfg, num_heads=0))
    assert "add_control_adapter" in _one_line_bad_input(official_transformer_kwargs,
                                                        dict(cfg, add_control_adapter=True))


def test_bad_forward_inputs_are_refused(inputs):
    model = transformer_from_official(*_variant("tiny_t2v"))
    args = [inputs[k] for k in ("x", "t", "context_padded", "y")]
    assert "full_ref" in _one_line_bad_input(official_forward, model, *args, full_ref=inputs["full_ref"])
    assert "clip_fea" in _one_line_bad_input(official_forward, model, *args, clip_fea=inputs["clip_fea"])
    assert "y has shape" in _one_line_bad_input(official_forward, model, *args[:3], inputs["y"][:, :16])
    assert "6-view groups" in _one_line_bad_input(official_forward, model, *(a[:5] for a in args))
