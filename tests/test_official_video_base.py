"""The base components of the official GenieDrive video model (Wan2.1 VAE, umT5 text encoder,
CLIP image encoder) converted from Wan's formats into diffusers / transformers models, checked
against outputs of the official code on random tiny weights (../shared/official-reference/video/
base_tiny); the full-size key plans against the official key lists; the same outputs from a base
given in library format; one-line errors for missing or unfit files. Skipped where the pack is
absent."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from diffusers import AutoencoderKLWan
from transformers import CLIPVisionModel, UMT5EncoderModel

from geniedrive.pipelines.errors import BadInput
from geniedrive.pipelines.video import official_base as ob
from tests.helpers import REPO

PACK = REPO.parent / "shared" / "official-reference"
BASE = PACK / "video" / "base_tiny"
KEYS = PACK / "keys"
needs_pack = pytest.mark.skipif(not (BASE / ob.BASE_CONFIG_FILE).is_file(),
                                reason=f"official reference pack (video/base_tiny) not at {BASE}")
pytestmark = [needs_pack, pytest.mark.usefixtures("one_torch_thread")]
TOL = 1e-4
WAN_FILES = [BASE / ob.BASE_CONFIG_FILE] + [BASE / f for f in ob.WAN_FILES.values()]


class NeedsCode:
    """Pickled by reference: loading it would import and run this module's code."""


def _ref(name: str) -> dict[str, np.ndarray]:
    with np.load(BASE / name) as z:
        return {k: z[k] for k in z.files}


def _max_diff(out: torch.Tensor, ref: np.ndarray) -> float:
    assert tuple(out.shape) == ref.shape
    return (out.detach().float() - torch.from_numpy(ref)).abs().max().item()


def _one_line(exc: pytest.ExceptionInfo) -> str:
    text = str(exc.value)
    assert "\n" not in text and text
    return text


def _copy_base(dst: Path, names: list[Path] = WAN_FILES) -> Path:
    dst.mkdir(parents=True, exist_ok=True)
    for path in names:
        shutil.copy(path, dst / path.name)
    return dst


@pytest.fixture(scope="module")
def converted(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("converted") / "base"
    done = ob.convert_base(BASE, out)
    assert set(done) == set(ob.COMPONENTS) and all(v.startswith("converted") for v in done.values())
    return out


@pytest.fixture(scope="module")
def base(converted) -> ob.BaseComponents:
    return ob.load_base_components(converted)


# --- the official calls -------------------------------------------------------------------------------

def test_written_layout(converted, base):
    for sub in ob.COMPONENTS:
        assert (converted / sub / "config.json").is_file() and list((converted / sub).glob("*.safetensors"))
    assert isinstance(base.vae, AutoencoderKLWan) and isinstance(base.text_encoder, UMT5EncoderModel)
    assert isinstance(base.image_encoder, CLIPVisionModel) and base.tokenizer_dir is None
    cfg = json.loads((BASE / ob.BASE_CONFIG_FILE).read_text())
    assert base.vae.config.latents_mean == pytest.approx(cfg["vae"]["latents_mean"], abs=0)
    assert base.vae.config.base_dim == 8 and base.text_encoder.config.d_model == 64
    assert not list(converted.parent.glob(".*staging*"))  # nothing left beside the output


def test_vae_encode(base):
    ref = _ref("vae_ref.npz")
    with torch.no_grad():
        mean, logvar = ob.official_vae_posterior(base, ref["video"])
        assert _max_diff(ob.official_vae_encode(base, ref["video"]), ref["latent_mean"]) < TOL
    assert _max_diff(mean, ref["latent_mean"]) < TOL
    assert _max_diff(logvar, ref["latent_logvar"]) < TOL
    assert _max_diff(torch.exp(0.5 * logvar), ref["latent_std"]) < TOL
    assert np.array_equal(np.float32(base.vae.config.latents_std), ref["latents_std"])


def test_vae_decode(base):
    ref = _ref("vae_ref.npz")
    with torch.no_grad():
        assert _max_diff(ob.official_vae_decode(base, ref["latent_rand"]), ref["decoded_rand"]) < TOL
        assert _max_diff(ob.official_vae_decode(base, ref["latent_mean"]), ref["recon"]) < TOL


def test_text_encode(base):
    ref = _ref("t5_ref.npz")
    with torch.no_grad():
        emb = ob.official_text_encode(base, ref["ids"], ref["mask"])
    keep = torch.from_numpy(ref["mask"]).bool()
    assert tuple(emb.shape) == ref["emb"].shape
    assert (emb - torch.from_numpy(ref["emb"]))[keep].abs().max().item() < TOL


def test_image_encode(base):
    ref = _ref("clip_ref.npz")
    with torch.no_grad():
        assert _max_diff(ob.official_image_encode(base, ref["pixels"]), ref["features"]) < TOL
        # the pipeline's clip([views]) with views [3, V, H, W] in [-1, 1]
        pixels = ob.clip_preprocess(torch.from_numpy(ref["views"]).transpose(0, 1))
        assert tuple(pixels.shape) == (6, 3, 224, 224)
        assert _max_diff(ob.official_image_encode(base, pixels), ref["features_views"]) < TOL


def test_folder_path_as_model(converted):
    ref = _ref("t5_ref.npz")
    with torch.no_grad():
        emb = ob.official_text_encode(converted, ref["ids"][:1, :16], ref["mask"][:1, :16])
    assert tuple(emb.shape) == (1, 16, 64)


# --- the same base in library format --------------------------------------------------------------------

def test_library_format_base_gives_the_same(converted, base, tmp_path):
    given = tmp_path / "given"
    for sub in ob.COMPONENTS:
        shutil.copytree(converted / sub, given / sub)
    (given / "google" / "umt5-xxl").mkdir(parents=True)
    (given / "google" / "umt5-xxl" / "tokenizer_config.json").write_text("{}\n")
    done = ob.convert_base(given, tmp_path / "out")
    assert all(done[c].startswith("copied") for c in ob.COMPONENTS)
    assert (tmp_path / "out" / "tokenizer" / "tokenizer_config.json").is_file()
    again = ob.load_base_components(tmp_path / "out")
    assert again.tokenizer_dir == tmp_path / "out" / "tokenizer"
    vae, t5, clip = _ref("vae_ref.npz"), _ref("t5_ref.npz"), _ref("clip_ref.npz")
    with torch.no_grad():
        for m_a, m_b in ((base, again), (base, tmp_path / "out")):
            assert torch.equal(ob.official_vae_encode(m_a, vae["video"]), ob.official_vae_encode(m_b, vae["video"]))
            assert torch.equal(ob.official_vae_decode(m_a, vae["latent_rand"]),
                               ob.official_vae_decode(m_b, vae["latent_rand"]))
            assert torch.equal(ob.official_text_encode(m_a, t5["ids"], t5["mask"]),
                               ob.official_text_encode(m_b, t5["ids"], t5["mask"]))
            assert torch.equal(ob.official_image_encode(m_a, clip["pixels"]),
                               ob.official_image_encode(m_b, clip["pixels"]))


def test_converted_in_memory_equals_saved(base):
    cfg = ob.read_base_config(BASE)
    direct = ob.component_from_wan(BASE / ob.WAN_FILES["text_encoder"], "text_encoder", cfg)
    saved = base.text_encoder.state_dict()
    assert set(direct.state_dict()) == set(saved)
    assert all(torch.equal(v, saved[k]) for k, v in direct.state_dict().items())


def test_dtype_kept_unless_asked():
    cfg = ob.read_base_config(BASE)
    state = ob.read_wan_pth(BASE / ob.WAN_FILES["text_encoder"], "T5")
    bf16 = {k: v.to(torch.bfloat16) for k, v in state.items()}  # as in the released file
    model = ob.text_encoder_from_wan(bf16, cfg["text_encoder"]["kwargs"])
    assert {p.dtype for p in model.parameters()} == {torch.bfloat16}
    assert model.encoder.embed_tokens.weight is model.shared.weight
    model = ob.text_encoder_from_wan(bf16, cfg["text_encoder"]["kwargs"], dtype=torch.float32)
    assert {p.dtype for p in model.parameters()} == {torch.float32}


def test_only_needed_components(tmp_path):
    base = _copy_base(tmp_path / "base", [BASE / ob.BASE_CONFIG_FILE, BASE / ob.WAN_FILES["vae"]])
    done = ob.convert_base(base, tmp_path / "out", need=["vae"])
    assert set(done) == {"vae"}
    got = ob.load_base_components(tmp_path / "out")
    assert got.vae is not None and got.text_encoder is None and got.image_encoder is None


# --- full-size key plans ----------------------------------------------------------------------------------

def _official_keys(name: str) -> dict[str, tuple[int, ...]]:
    keys = {}
    for line in (KEYS / name).read_text().splitlines():
        if line and not line.startswith("#"):
            key, shape = line.split("\t")[:2]
            keys[key] = tuple(int(s) for s in re.findall(r"\d+", shape))
    return keys


@pytest.mark.skipif(not KEYS.is_dir(), reason=f"official key lists not at {KEYS}")
@pytest.mark.parametrize("component, key_list", [
    ("vae", "wan_vae_state_dict.txt"), ("text_encoder", "t5_umt5_xxl_state_dict.txt"),
    ("image_encoder", "clip_xlm_roberta_vit_h_14_state_dict.txt")])
def test_full_size_plan_matches_official_keys(component, key_list):
    """The official full sizes build (on the meta device) a model whose every tensor comes from
    one official tensor of the released file with its shape; only the unused CLIP parts are left."""
    with torch.device("meta"):
        if component == "vae":
            model = AutoencoderKLWan(**ob.vae_config())
            plan = ob._plan(model.state_dict(), ob._vae_namer(model))
        elif component == "text_encoder":
            plan = ob._plan(UMT5EncoderModel(ob.umt5_config()).state_dict(), ob._t5_official_of)
        else:
            plan = ob._plan(CLIPVisionModel(ob.clip_vision_config()).state_dict(), ob._clip_official_of)
    official = _official_keys(key_list)
    used = {k: v for k, v in official.items() if not (component == "image_encoder" and ob._clip_unused(k))}
    assert {k: s.shape for k, s in plan.items()} == used


# --- bad input -------------------------------------------------------------------------------------------

def test_missing_component_file_named(tmp_path):
    base = _copy_base(tmp_path / "base", [BASE / ob.BASE_CONFIG_FILE, BASE / ob.WAN_FILES["vae"]])
    with pytest.raises(BadInput) as exc:
        ob.convert_base(base, tmp_path / "out")
    text = _one_line(exc)
    assert ob.WAN_FILES["text_encoder"] in text and ob.WAN_FILES["image_encoder"] in text
    assert ob.WAN_FILES["vae"] not in text
    assert not (tmp_path / "out").exists()


def test_pickle_that_needs_code(tmp_path):
    path = tmp_path / ob.WAN_FILES["vae"]
    torch.save({"encoder.conv1.weight": torch.zeros(1), "extra": NeedsCode()}, path)
    with pytest.raises(BadInput) as exc:
        ob.read_wan_pth(path, "the Wan VAE")
    text = _one_line(exc)
    assert str(path) in text and "NeedsCode" in text


def test_nested_or_unreadable_file(tmp_path):
    nested = tmp_path / "nested.pth"
    torch.save({"state_dict": {"a": torch.zeros(1)}}, nested)  # the official loaders do not unwrap this
    with pytest.raises(BadInput) as exc:
        ob.read_wan_pth(nested, "the Wan VAE")
    assert str(nested) in _one_line(exc) and "state_dict" in str(exc.value)
    broken = tmp_path / "broken.pth"
    broken.write_bytes(b"not a checkpoint")
    with pytest.raises(BadInput) as exc:
        ob.read_wan_pth(broken, "the Wan VAE")
    assert str(broken) in _one_line(exc)


@pytest.mark.parametrize("component, key", [
    ("vae", "decoder.upsamples.3.time_conv.weight"), ("text_encoder", "blocks.1.ffn.gate.0.weight"),
    ("image_encoder", "visual.transformer.2.attn.to_qkv.weight")])
def test_renamed_key_named(tmp_path, component, key):
    state = ob.read_wan_pth(BASE / ob.WAN_FILES[component], component)
    state[key + "_renamed"] = state.pop(key)
    path = _copy_base(tmp_path / "base") / ob.WAN_FILES[component]
    torch.save(state, path)
    with pytest.raises(BadInput) as exc:
        ob.convert_base(path.parent, tmp_path / "out")
    text = _one_line(exc)
    assert str(path) in text and f"missing {key}" in text and f"unexpected {key}_renamed" in text
    assert not (tmp_path / "out").exists() and not list(tmp_path.glob(".out.staging*"))


@pytest.mark.parametrize("component, key", [
    ("vae", "encoder.downsamples.3.shortcut.weight"), ("text_encoder", "blocks.0.pos_embedding.embedding.weight"),
    ("image_encoder", "visual.pos_embedding")])
def test_wrong_shape_named(component, key):
    cfg = ob.read_base_config(BASE)
    state = ob.read_wan_pth(BASE / ob.WAN_FILES[component], component)
    state[key] = torch.zeros(*state[key].shape[:-1], state[key].shape[-1] + 1)
    convert = {"vae": ob.vae_from_wan, "text_encoder": ob.text_encoder_from_wan,
               "image_encoder": ob.image_encoder_from_wan}[component]
    with pytest.raises(BadInput) as exc:
        convert(state, cfg[component]["kwargs"])
    assert f"'{key}' has shape" in _one_line(exc)


def test_library_folder_of_the_wrong_kind(converted, tmp_path):
    given = tmp_path / "given"
    shutil.copytree(converted / "image_encoder", given / "text_encoder")  # a CLIP where the umT5 goes
    with pytest.raises(BadInput) as exc:
        ob.convert_base(given, tmp_path / "out", need=["text_encoder"])
    assert str(given / "text_encoder") in _one_line(exc) and "umt5" in str(exc.value)


def test_unsupported_kwargs():
    with pytest.raises(BadInput) as exc:
        ob.umt5_config({"shared_pos": True})
    assert "shared_pos" in _one_line(exc)
    with pytest.raises(BadInput) as exc:
        ob.vae_config({"dimm": 8})
    assert "dimm" in _one_line(exc)


def test_bad_call_inputs(base):
    with pytest.raises(BadInput) as exc:
        ob.official_vae_encode(base, torch.zeros(1, 3, 4, 64, 96))  # 4 frames: not 4k + 1
    assert "frames" in _one_line(exc)
    with pytest.raises(BadInput) as exc:
        ob.official_image_encode(ob.BaseComponents(vae=base.vae), torch.zeros(1, 3, 224, 224))
    assert "image_encoder" in _one_line(exc)
