"""Official GenieDrive weights on gdrive's modules, checked against outputs of the official code
(../shared/official-reference: random weights, CPU). Skipped with a reason where the pack is absent."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from pipelines.errors import BadInput
from pipelines.occworld.configs import CONFIGS
from pipelines.occworld.official_weights import vae_state_from_official
from pipelines.occworld.vae import TriplaneVAE
from pipelines.weights import read_state_dict
from tests.helpers import REPO

PACK = REPO.parent / "shared" / "official-reference" / "occ"
needs_pack = pytest.mark.skipif(not (PACK / "vae_ref.npz").is_file(), reason=f"official reference pack not at {PACK}")


def _official_vae(path: Path) -> TriplaneVAE:
    vae = TriplaneVAE(CONFIGS["paper"].vae).eval()
    raw = read_state_dict(path, "--vae")
    raw = {k[len("vqvae."):]: v for k, v in raw.items() if k.startswith("vqvae.")} or raw
    vae.load_state_dict(vae_state_from_official(raw, vae.state_dict(), str(path)))
    return vae


@needs_pack
@pytest.mark.parametrize("file", ["vae_random.pth", "stage2_random.pth"])
def test_official_vae_encodes_and_decodes_as_the_official_code(file, one_torch_thread):
    ref = np.load(PACK / "vae_ref.npz")
    vae = _official_vae(PACK / file)
    xyz = ref["sample_xyz"]
    with torch.no_grad():
        mu = vae.encode(torch.from_numpy(ref["labels"]), sample=False)
        assert np.abs(mu.numpy() - ref["mu"]).max() < 1e-4
        for latent, name in ((mu, ""), (torch.from_numpy(ref["latent_rand"]), "rand_")):
            logits = vae.decode(latent)[0]
            assert np.array_equal(logits.argmax(0).numpy().astype(np.uint8), ref[f"logits_{name}argmax"][0])
            sample = logits[:, xyz[:, 0], xyz[:, 1], xyz[:, 2]].T.numpy()
            assert np.abs(sample - ref[f"logits_{name}sample"]).max() < 1e-4


@needs_pack
def test_an_official_vae_with_a_key_missing_or_left_over_is_named():
    raw = read_state_dict(PACK / "vae_random.pth", "--vae")
    own = TriplaneVAE(CONFIGS["paper"].vae).state_dict()
    gone = dict(raw)
    del gone["cls_head.3.bias"]
    with pytest.raises(BadInput, match=r"gdrive weights not filled: head\.3\.bias"):
        vae_state_from_official(gone, own, "x.pth")
    extra = {**raw, "surprise.weight": torch.zeros(1)}
    with pytest.raises(BadInput, match=r"official keys with no place: surprise\.weight"):
        vae_state_from_official(extra, own, "x.pth")
    small = TriplaneVAE(CONFIGS["small"].vae).state_dict()
    with pytest.raises(BadInput, match="not a checkpoint of the official VAE sizes"):
        vae_state_from_official(raw, small, "x.pth")
