"""Training infrastructure: safetensors checkpoints, resume equality, batch order."""

import numpy as np
import pytest
import torch

from geniedrive.pipelines.data.cache import open_cache
from geniedrive.pipelines.data.dataset import OccDataset
from geniedrive.pipelines.errors import BadInput
from geniedrive.pipelines.runtime.checkpoint import load_checkpoint, load_weights, save_checkpoint
from geniedrive.pipelines.occworld.configs import CONFIGS
from geniedrive.pipelines.runtime.distributed import DistInfo
from geniedrive.pipelines.runtime.trainer import Stage, TrainSettings, batch_indices, train
from geniedrive.pipelines.occworld.vae import TriplaneVAE
from geniedrive.pipelines.occworld.vae_stage import vae_stage
from tests.helpers import run_cli, write_occ_folder


def test_checkpoint_roundtrip_and_refusals(tmp_path):
    torch.manual_seed(0)
    m = TriplaneVAE(CONFIGS["debug"].vae)
    opt = torch.optim.AdamW(m.parameters(), lr=1e-3)
    m(torch.randint(0, 18, (1, 200, 200, 16)))[0].mean().backward()
    opt.step()
    save_checkpoint(tmp_path / "ck", m, opt, {"step": 7}, {"name": "debug"})
    m2 = TriplaneVAE(CONFIGS["debug"].vae)
    opt2 = torch.optim.AdamW(m2.parameters(), lr=1e-3)
    meta = load_checkpoint(tmp_path / "ck", m2, opt2)
    assert meta["step"] == 7
    for (k, a), b in zip(m.state_dict().items(), m2.state_dict().values()):
        assert torch.equal(a, b), k
    s1, s2 = opt.state_dict()["state"], opt2.state_dict()["state"]
    assert all(torch.equal(s1[i]["exp_avg"], s2[i]["exp_avg"]) for i in s1)
    # A pickle where safetensors is expected.
    torch.save(m.state_dict(), tmp_path / "model.safetensors")
    with pytest.raises(BadInput, match="is a pickle/zip \\(torch.save\\) file, not safetensors"):
        load_weights(m2, tmp_path / "model.safetensors")
    # Weights of another shape (the paper VAE's are not the debug VAE's).
    with pytest.raises(BadInput, match="has shape .* the model needs"):
        from safetensors.torch import save_file

        big = TriplaneVAE(CONFIGS["small"].vae)
        save_file(big.state_dict(), str(tmp_path / "big.safetensors"))
        load_weights(m2, tmp_path / "big.safetensors")
    # A run killed between the two renames of a checkpoint swap: the old one comes back.
    (tmp_path / "ck").rename(tmp_path / ".old-ck-deadbeef")
    assert load_checkpoint(tmp_path / "ck", m2, opt2)["step"] == 7
    (tmp_path / "junk.safetensors").write_bytes(b"\x00" * 40)
    with pytest.raises(BadInput, match="not a safetensors file"):
        load_weights(m2, tmp_path / "junk.safetensors")


def test_batch_indices_are_a_pure_function_of_seed_and_step():
    a = [batch_indices(10, s, 3, 1, 0, seed=1).tolist() for s in range(7)]
    b = [batch_indices(10, s, 3, 1, 0, seed=1).tolist() for s in range(7)]
    assert a == b
    first_epoch = sum(a[:3], []) + a[3][:1]
    assert sorted(first_epoch) == list(range(10))  # every item once per epoch
    r0 = batch_indices(10, 0, 2, 2, 0, seed=1).tolist()
    r1 = batch_indices(10, 0, 2, 2, 1, seed=1).tolist()
    assert not set(r0) & set(r1)  # ranks see different items


@pytest.fixture
def cache(capsys, tmp_path):
    src = write_occ_folder(tmp_path / "export", scenes=1, frames=3)
    assert run_cli(capsys, "prepare-occ", "--source", "occ-folder", "--dataroot", src, "--name", "t", "--no-previews").code == 0
    return open_cache(OccDataset.open("t"))


def test_killed_and_resumed_run_ends_with_the_same_weights(cache, tmp_path):
    cpu = torch.device("cpu")
    settings = TrainSettings(steps=4, batch_size=1, lr=3e-3, ema=True, ckpt_every=1, seed=5)

    def run(run_dir, **kw):
        torch.manual_seed(123)  # model init is seeded outside the loop
        stage = vae_stage(CONFIGS["debug"].vae, cache, cpu)
        return train(stage, settings, run_dir, {"stage": "vae"}, cpu, DistInfo(), **kw), stage.model

    full, m_full = run(tmp_path / "a")
    part, _ = run(tmp_path / "b", stop_after=2)  # "killed" after its step-2 checkpoint
    assert part["step"] == 2
    resumed, m_res = run(tmp_path / "b", resume=True)
    assert resumed["step"] == 4
    for (k, a), b in zip(m_full.state_dict().items(), m_res.state_dict().values()):
        assert torch.equal(a, b), k
    for a, b in zip(full["ema"].parameters(), resumed["ema"].parameters()):
        assert torch.equal(a, b)
    assert full["losses"] == resumed["losses"]
    assert np.isfinite(full["losses"]).all()


def test_ema_copy_keeps_frozen_weights_exactly(tmp_path):
    """A stage that freezes part of the model publishes that part bit for bit: averaging a constant
    with decay d (d * w + (1 - d) * w) would drift by rounding."""
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(64, 64), torch.nn.Linear(64, 1))
    net[0].requires_grad_(False)
    frozen = net[0].weight.detach().clone()
    data = torch.randn(32, 64)

    def loss(model, batch, step):
        value = model(batch["x"]).pow(2).mean()
        return value, {}

    stage = Stage(net, 32, lambda idx: {"x": data[torch.as_tensor(idx)]}, loss)
    out = train(stage, TrainSettings(steps=300, batch_size=4, lr=1e-2, ema=True, ckpt_every=0, seed=0),
                tmp_path / "run", {}, torch.device("cpu"), DistInfo())
    assert torch.equal(out["ema"][0].weight, frozen)
    assert not torch.equal(out["ema"][1].weight, net[1].weight)  # the trained part is averaged
