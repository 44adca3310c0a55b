"""`gdrive import-weights --format geniedrive-video` on the official reference pack's tiny random
weights (../shared/official-reference/video): the text-only and the released (i2v + ref_conv)
transformers, with and without their Wan2.1 base; the imported folder through the public API
(`pipelines.video.load_video_model`, `official_forward` and the four base calls) against the
official outputs; bad input refused in one line with nothing written. Skipped where the pack is
absent."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from geniedrive.pipelines.errors import BadInput
from geniedrive.pipelines.video import (load_video_model, official_forward, official_image_encode, official_text_encode,
                             official_vae_decode, official_vae_encode)
from tests.helpers import REPO, artifact_dirs, run_cli

VIDEO = REPO.parent / "shared" / "official-reference" / "video"
needs_pack = pytest.mark.skipif(not (VIDEO / "inputs.npz").is_file(), reason=f"official reference pack not at {VIDEO}")
pytestmark = [needs_pack, pytest.mark.usefixtures("one_torch_thread")]
TOL = 1e-4
KIND = "video-models"
CLIP_FILE = "models_clip_open-clip-xlm-roberta-large-vit-huge-14.pth"
VAE_FILE = "Wan2.1_VAE.pth"


class NeedsCode:
    """Pickled by reference: loading it would import and run this module's code."""


def _npz(path: Path) -> dict[str, np.ndarray]:
    with np.load(path) as z:
        return {k: z[k] for k in z.files}


@pytest.fixture(scope="module")
def inputs() -> dict[str, np.ndarray]:
    return _npz(VIDEO / "inputs.npz")


@pytest.fixture
def pack(tmp_path) -> Path:
    """A writable copy of the two transformers and the tiny base (the pack itself is read-only)."""
    out = tmp_path / "pack"
    for name in ("tiny_t2v", "tiny_i2v_ref", "base_tiny"):
        shutil.copytree(VIDEO / name, out / name, ignore=shutil.ignore_patterns("*.npz"))
    for p in out.rglob("*"):
        p.chmod(0o755 if p.is_dir() else 0o644)
    return out


def _import(capsys, ws: Path, variant: Path, name: str, *extra) -> dict:
    r = run_cli(capsys, "--workspace", ws, "--json", "import-weights", "--format", "geniedrive-video",
                "--transformer", variant / "diffusion_pytorch_model.safetensors", "--config", variant / "config.json",
                "--name", name, *extra)
    assert r.code == 0, r.err
    return r.json()


def _diff(out: torch.Tensor, ref: np.ndarray) -> float:
    assert tuple(out.shape) == ref.shape
    return (out.detach().float() - torch.from_numpy(ref)).abs().max().item()


def _forward(m, inputs, **extra) -> torch.Tensor:
    with torch.no_grad():
        return official_forward(m, *(inputs[k] for k in ("x", "t", "context_padded", "y")), **extra)


def _check_base_calls(m) -> None:
    vae = _npz(VIDEO / "base_tiny" / "vae_ref.npz")
    t5 = _npz(VIDEO / "base_tiny" / "t5_ref.npz")
    clip = _npz(VIDEO / "base_tiny" / "clip_ref.npz")
    with torch.no_grad():
        assert _diff(official_vae_encode(m, vae["video"]), vae["latent_mean"]) < TOL
        assert _diff(official_vae_decode(m, vae["latent_rand"]), vae["decoded_rand"]) < TOL
        emb = official_text_encode(m, t5["ids"], t5["mask"])
        keep = torch.from_numpy(t5["mask"]).bool()
        assert tuple(emb.shape) == t5["emb"].shape
        assert (emb - torch.from_numpy(t5["emb"]))[keep].abs().max().item() < TOL
        assert _diff(official_image_encode(m, clip["pixels"]), clip["features"]) < TOL


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# --- imports that work ----------------------------------------------------------------------------------

def test_released_layout_with_base(capsys, tmp_path, pack, inputs):
    ws = tmp_path / "ws"
    out = _import(capsys, ws, pack / "tiny_i2v_ref", "genie", "--base", pack / "base_tiny")
    folder = ws / KIND / "genie"
    assert out["path"] == str(folder) and out["kind"] == "video-model" and not out["reused"]
    assert out["model_type"] == "i2v" and out["add_ref_conv"] and out["parameters"] == 2_052_224
    assert sorted(out["parts"]) == ["image_encoder", "text_encoder", "transformer", "vae"]
    assert out["sources"]["transformer"]["sha256"] == _sha256(pack / "tiny_i2v_ref" / "diffusion_pytorch_model.safetensors")
    assert out["sources"]["vae"]["sha256"] == _sha256(pack / "base_tiny" / VAE_FILE)
    assert out["sources"]["image_encoder"]["sha256"] == _sha256(pack / "base_tiny" / CLIP_FILE)
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["kind"] == "video-model" and manifest["sources"] == out["sources"]
    assert artifact_dirs(ws, KIND) == ["genie"]  # no staging or temporary folder left beside it
    assert not (folder / ".base").exists()

    m = load_video_model(folder)
    t = m.config.transformer
    assert t.model_type == "i2v" and t.add_ref_conv and t.image_dim == 1280 and m.config.text_len == 512
    assert m.config.vae.base_dim == 8  # the base's VAE sizes, not the full Wan2.1 VAE's
    ref = _npz(VIDEO / "tiny_i2v_ref" / "ref.npz")
    assert _diff(_forward(m, inputs, clip_fea=inputs["clip_fea"], full_ref=inputs["full_ref"]), ref["out_full"]) < TOL
    assert _diff(_forward(m, inputs, clip_fea=inputs["clip_fea"]), ref["out_noref"]) < TOL
    _check_base_calls(m)

    # the same files again: reused; --json still gives the path
    again = _import(capsys, ws, pack / "tiny_i2v_ref", "genie", "--base", pack / "base_tiny")
    assert again["reused"] and again["path"] == str(folder) and again["id"] == out["id"]


def test_released_layout_without_base(capsys, tmp_path, pack, inputs):
    ws = tmp_path / "ws"
    out = _import(capsys, ws, pack / "tiny_i2v_ref", "bare")
    assert out["parts"] == ["transformer"] and set(out["sources"]) == {"transformer", "config"}
    m = load_video_model(Path(out["path"]))
    assert m.vae is None and m.text_encoder is None and m.image_encoder is None
    assert m.config.vae.base_dim == 96  # the Wan2.1 VAE, which a later import with --base brings
    ref = _npz(VIDEO / "tiny_i2v_ref" / "ref.npz")
    assert _diff(_forward(m, inputs, clip_fea=inputs["clip_fea"], full_ref=inputs["full_ref"]), ref["out_full"]) < TOL
    with pytest.raises(BadInput, match="has no vae.*--base DIR"):
        official_vae_encode(m, np.zeros((1, 3, 5, 64, 96), np.float32))
    # generation needs the VAE: refused in one line before anything runs
    r = run_cli(capsys, "--workspace", ws, "generate", "--video-model", "bare", "--frames", "9")
    assert r.code == 2 and len(r.err_lines) == 1, r.err
    assert "has no vae/" in r.err and "--base" in r.err


def test_text_only_layout_with_and_without_base(capsys, tmp_path, pack, inputs):
    ws = tmp_path / "ws"
    ref = _npz(VIDEO / "tiny_t2v" / "ref.npz")
    bare = _import(capsys, ws, pack / "tiny_t2v", "t2v")
    m = load_video_model(Path(bare["path"]))
    assert m.config.transformer.model_type == "t2v" and not m.config.transformer.add_ref_conv and m.vae is None
    assert _diff(_forward(m, inputs), ref["out"]) < TOL

    # a base without the CLIP file is enough for a text-only model
    (pack / "base_tiny" / CLIP_FILE).unlink()
    full = _import(capsys, ws, pack / "tiny_t2v", "t2v-base", "--base", pack / "base_tiny")
    assert sorted(full["parts"]) == ["text_encoder", "transformer", "vae"]
    m = load_video_model(Path(full["path"]))
    assert m.image_encoder is None and m.vae is not None and m.text_encoder is not None
    assert _diff(_forward(m, inputs), ref["out"]) < TOL
    vae = _npz(VIDEO / "base_tiny" / "vae_ref.npz")
    with torch.no_grad():
        assert _diff(official_vae_decode(m, vae["latent_rand"]), vae["decoded_rand"]) < TOL
    assert sorted(artifact_dirs(ws, KIND)) == ["t2v", "t2v-base"]


# --- bad input: exit 2, one line, nothing written ---------------------------------------------------------

def _renamed_key(variant: Path) -> None:
    f = variant / "diffusion_pytorch_model.safetensors"
    state = load_file(f)
    state["blocks.1.self_attn.query.weight"] = state.pop("blocks.1.self_attn.q.weight")
    save_file(state, f)


def _wrong_shape(variant: Path) -> None:
    f = variant / "diffusion_pytorch_model.safetensors"
    state = load_file(f)
    state["head.head.weight"] = torch.zeros(32, 64)
    save_file(state, f)


def _config(variant: Path, **fields) -> None:
    f = variant / "config.json"
    f.write_text(json.dumps({**json.loads(f.read_text()), **fields}))


def _code_pickle(base: Path) -> None:
    torch.save({"encoder.conv1.weight": torch.zeros(1), "extra": NeedsCode()}, base / VAE_FILE)


CASES = {
    "renamed key": (_renamed_key, None, ["--transformer", "blocks.1.self_attn.q.weight", "blocks.1.self_attn.query.weight"]),
    "wrong shape": (_wrong_shape, None, ["--transformer", "'head.head.weight' has shape (32, 64)"]),
    "unknown model_type": (lambda v: _config(v, model_type="ti2v"), None, ["--config", "model_type 'ti2v'"]),
    "in_dim": (lambda v: _config(v, in_dim=36), None, ["--config", "in_dim 36"]),
    "base without CLIP": (None, lambda b: (b / CLIP_FILE).unlink(), ["--base", CLIP_FILE, "CLIP image encoder"]),
    "base without VAE": (None, lambda b: (b / VAE_FILE).unlink(), ["--base", VAE_FILE]),
    "code pickle as the VAE": (None, _code_pickle, ["--base", VAE_FILE, "NeedsCode"]),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_input_is_one_line_and_writes_nothing(capsys, tmp_path, pack, case):
    spoil_variant, spoil_base, needles = CASES[case]
    variant, base = pack / "tiny_i2v_ref", pack / "base_tiny"
    if spoil_variant:
        spoil_variant(variant)
    if spoil_base:
        spoil_base(base)
    ws = tmp_path / "ws"
    r = run_cli(capsys, "--workspace", ws, "import-weights", "--format", "geniedrive-video", "--transformer",
                variant / "diffusion_pytorch_model.safetensors", "--config", variant / "config.json",
                "--base", base, "--name", "bad")
    assert r.code == 2, r.err
    assert len(r.err_lines) == 1, r.err_lines
    for needle in needles:
        assert needle in r.err, (needle, r.err)
    assert artifact_dirs(ws, KIND) == []


@pytest.mark.parametrize("drop, needle", [("--transformer", "--transformer: required"),
                                          ("--config", "--config: required")])
def test_missing_flags_are_named(capsys, tmp_path, pack, drop, needle):
    variant = pack / "tiny_t2v"
    flags = {"--transformer": variant / "diffusion_pytorch_model.safetensors", "--config": variant / "config.json"}
    del flags[drop]
    ws = tmp_path / "ws"
    r = run_cli(capsys, "--workspace", ws, "import-weights", "--format", "geniedrive-video",
                *[a for kv in flags.items() for a in kv], "--name", "bad")
    assert r.code == 2 and len(r.err_lines) == 1 and needle in r.err, r.err
    r = run_cli(capsys, "--workspace", ws, "import-weights", "--format", "geniedrive-video", "--checkpoint",
                variant / "diffusion_pytorch_model.safetensors", "--name", "bad")
    assert r.code == 2 and len(r.err_lines) == 1 and "--checkpoint: not used by --format geniedrive-video" in r.err
    assert not (ws / KIND).exists()
