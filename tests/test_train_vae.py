"""`gdrive train-vae`: artifacts, reuse, resume errors, and a 2-process CPU DDP run (gloo)."""

import json
import os
import subprocess
import sys

import pytest

from geniedrive.pipelines.runtime.checkpoint import load_weights
from geniedrive.pipelines.occworld.configs import CONFIGS
from geniedrive.pipelines.occworld.vae import TriplaneVAE
from tests.helpers import REPO, run_cli, write_occ_folder


@pytest.fixture
def dataset(capsys, tmp_path):
    src = write_occ_folder(tmp_path / "export", scenes=1, frames=3)
    assert run_cli(capsys, "prepare-occ", "--source", "occ-folder", "--dataroot", src, "--name", "tiny", "--no-previews").code == 0
    return "tiny"


ARGS = ("train-vae", "--dataset", "tiny", "--model-config", "debug", "--steps", "2", "--batch-size", "1")


def test_train_vae_publishes_a_loadable_model_and_reuses_it(capsys, tmp_path, dataset):
    r = run_cli(capsys, *ARGS, "--name", "v", "--json")
    assert r.code == 0, r.err
    out = r.json()
    art = tmp_path / "ws" / "models" / "v"
    assert out["steps"] == 2 and set(out["metrics"]) == {"recon_miou_drop_zero", "recon_miou_unseen_one", "recon_iou"}
    assert json.loads((art / "config.json").read_text())["name"] == "debug"
    load_weights(TriplaneVAE(CONFIGS["debug"].vae), art / "vae.safetensors")
    assert (tmp_path / "ws" / "runs" / "v" / "last" / "optimizer.safetensors").is_file()
    again = run_cli(capsys, *ARGS, "--name", "v", "--json")
    assert again.code == 0 and again.json()["reused"] is True and "reusing model 'v'" in again.err


def test_the_default_paper_config_on_a_cpu_says_so(capsys, dataset):
    """Without --model-config the VAE is the official GPU size; on a CPU the run says so and names
    the CPU config (a user who left the flag out trained 'paper' without a word)."""
    r = run_cli(capsys, "train-vae", "--dataset", "tiny", "--steps", "1", "--batch-size", "1", "--device", "cpu",
                "--name", "p")
    assert r.code == 0, r.err
    assert "training the 'paper' VAE" in r.err and "--model-config small" in r.err
    r = run_cli(capsys, *ARGS, "--name", "d", "--device", "cpu")
    assert r.code == 0 and "training the 'paper' VAE" not in r.err


def test_train_vae_bad_input(capsys, tmp_path, dataset):
    r = run_cli(capsys, *ARGS, "--name", "fresh", "--resume")
    assert r.code == 2 and len(r.err_lines) == 1 and "--resume: no run state" in r.err
    r = run_cli(capsys, "train-vae", "--dataset", "nope")
    assert r.code == 2 and "--dataset 'nope': no such dataset" in r.err and "tiny" in r.err
    r = run_cli(capsys, *ARGS, "--steps", "0")
    assert r.code == 2 and r.err_lines == ["error: --steps 0: must be a positive number"]
    assert not (tmp_path / "ws" / "models").exists()


def test_two_process_cpu_ddp_trains_and_writes_one_checkpoint(tmp_path, dataset):
    ws = tmp_path / "ws"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29533",
           "-m", "geniedrive.cli.app", "--workspace", str(ws), "--device", "cpu", *ARGS, "--name", "ddp", "--json"]
    p = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300,
                       env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert p.returncode == 0, p.stderr[-2000:]
    lines = [json.loads(x) for x in p.stdout.splitlines() if x.startswith("{")]
    assert len(lines) == 1 and lines[0]["steps"] == 2  # only rank 0 reports
    assert sorted(x.name for x in (ws / "models").iterdir() if not x.name.startswith(".")) == ["ddp"]
    assert sorted(x.name for x in (ws / "runs" / "ddp").iterdir()) == [".lock", "last"]  # the run's lock stays
    state = json.loads((ws / "runs" / "ddp" / "last" / "state.json").read_text())
    assert state["step"] == 2 and len(state["losses"]) == 2


def test_another_config_under_a_taken_name_is_refused_before_training(capsys, tmp_path, dataset):
    assert run_cli(capsys, *ARGS, "--name", "v").code == 0
    before = (tmp_path / "ws" / "models" / "v" / "vae.safetensors").read_bytes()
    r = run_cli(capsys, "train-vae", "--dataset", "tiny", "--model-config", "debug", "--steps", "3",
                "--batch-size", "1", "--name", "v")
    assert r.code == 2 and len(r.err_lines) == 1
    assert "--name v: a model of that name exists with another configuration" in r.err
    assert "training" not in r.err  # refused before any step ran
    assert (tmp_path / "ws" / "models" / "v" / "vae.safetensors").read_bytes() == before
