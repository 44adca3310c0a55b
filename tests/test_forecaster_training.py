"""Forecaster stages: one-window overfit, kill + resume equality, rollout and control helpers."""

import math

import numpy as np
import pytest
import torch

from geniedrive.pipelines.data.cache import open_cache
from geniedrive.pipelines.data.dataset import OccDataset
from geniedrive.pipelines.occworld.configs import CONFIGS
from geniedrive.pipelines.runtime.distributed import DistInfo
from geniedrive.pipelines.occworld.forecast_stage import forecaster_stage
from geniedrive.pipelines.occworld.forecaster import quat_to_rotmat
from geniedrive.pipelines.runtime.trainer import TrainSettings, train
from geniedrive.pipelines.occworld.world_model import (WorldModel, initial_history, motion_features, rotmat_to_quat,
                                            teacher_probability)
from geniedrive.pipelines.geometry import planar_pose
from tests.helpers import run_cli, write_occ_folder

CPU = torch.device("cpu")


@pytest.fixture
def cache(capsys, tmp_path):
    src = write_occ_folder(tmp_path / "export", scenes=1, frames=10)
    assert run_cli(capsys, "prepare-occ", "--source", "occ-folder", "--dataroot", src, "--name", "w", "--no-previews").code == 0
    return open_cache(OccDataset.open("w", tmp_path / "ws"))


def _stage(cache, steps, seed=0, windows=None):
    torch.manual_seed(seed)
    model = WorldModel(CONFIGS["debug"])
    return forecaster_stage("predict", model, cache, CPU, steps, seed, train_windows=windows)


def test_seeded_debug_predict_run_overfits_one_window(cache, tmp_path):
    stage = _stage(cache, 150, windows=[3])
    s = TrainSettings(steps=150, batch_size=1, lr=3e-3, ema=False, ckpt_every=0, seed=0)
    out = train(stage, s, tmp_path / "run", {}, CPU, DistInfo())
    first, last = out["losses"][0], np.mean(out["losses"][-5:])
    assert last <= 0.1 * first, (first, last)


def test_killed_predict_run_resumes_to_the_same_weights(cache, tmp_path):
    s = TrainSettings(steps=4, batch_size=1, lr=1e-3, ckpt_every=1, seed=3)
    full = train(_stage(cache, 4, seed=3), s, tmp_path / "a", {}, CPU, DistInfo())
    train(_stage(cache, 4, seed=3), s, tmp_path / "b", {}, CPU, DistInfo(), stop_after=2)
    resumed = train(_stage(cache, 4, seed=3), s, tmp_path / "b", {}, CPU, DistInfo(), resume=True)
    assert resumed["losses"] == full["losses"]
    for (k, a), (_, b) in zip(full["ema"].state_dict().items(), resumed["ema"].state_dict().items()):
        assert torch.equal(a, b), k


def test_motion_features_and_quaternions():
    step = torch.from_numpy(planar_pose(1.5, -0.5, 0.2)).float()
    f = motion_features(step)
    assert torch.allclose(f[:2], torch.tensor([1.5, -0.5]))
    assert torch.allclose(f[2:6], torch.tensor([math.cos(0.1), 0, 0, math.sin(0.1)]), atol=1e-6)
    assert torch.allclose(f[6:], torch.tensor([3.0, -1.0, 0.4]), atol=1e-6)  # per second at 2 Hz
    q = torch.nn.functional.normalize(torch.randn(32, 4), dim=-1)
    back = rotmat_to_quat(quat_to_rotmat(q))
    assert torch.allclose(back, q * torch.sign(q[:, :1]), atol=1e-5)


def test_initial_history_repeats_the_first_frame_and_pads_motion():
    lat = torch.arange(4.0).view(1, 4, 1, 1, 1).expand(1, 4, 2, 50, 58)
    steps = torch.from_numpy(np.stack([planar_pose(1.0, 0, 0)] * 3)).float()[None]
    hist, motion = initial_history(lat, steps, 9)
    assert hist[0, :, 0, 0, 0].tolist() == [0, 0, 0, 0, 0, 0, 1, 2, 3]
    assert motion.shape == (1, 9, 9)
    assert motion[0, :6, :2].abs().sum() == 0 and torch.all(motion[0, :6, 2] == 1)  # identity quaternion
    assert torch.all(motion[0, 6:, 0] == 1.0)


def test_scheduled_sampling_probability():
    assert teacher_probability(0, 100) == 1.0
    assert teacher_probability(100, 100) == pytest.approx(math.exp(-2.5))


def test_horizon_curriculum_grows_from_the_official_six_to_future_over_half_the_run():
    from geniedrive.pipelines.occworld.forecast_stage import horizon_at
    from geniedrive.pipelines.occworld.losses import BETA, step_weights
    assert [horizon_at(s, 100, 4) for s in (0, 50, 99)] == [4, 4, 4]  # at or below 6: fixed
    assert [horizon_at(s, 100, 12) for s in (0, 9, 25, 49, 50, 99)] == [6, 7, 9, 11, 12, 12]
    assert step_weights(6) == BETA[:6] and step_weights(10) == BETA + (BETA[-1],) * 2


def test_predict_stage_rolls_out_the_curriculum_horizon(cache, monkeypatch):
    import geniedrive.pipelines.occworld.forecast_stage as fs
    seen = []
    real = fs.rollout
    monkeypatch.setattr(fs, "rollout", lambda *a, **k: seen.append(a[3].shape[1]) or real(*a, **k))
    torch.manual_seed(0)
    stage = forecaster_stage("predict", WorldModel(CONFIGS["debug"]), cache, CPU, 10, 0, train_windows=[0], future=8)
    batch = stage.make_batch(np.array([0]))
    assert batch["occ"].shape[1] == 3 + 1 + 8
    for step in (0, 5, 9):
        loss, terms = stage.loss(stage.model, batch, step)
        assert torch.isfinite(loss) and set(terms) == {"traj", "rot", "latent_mse"}
    assert seen == [6, 8, 8]  # motion steps rolled out: the horizon at steps 0, 5 and 9 of 10


def test_future_flag_is_checked_and_recorded(capsys, tmp_path):
    src = write_occ_folder(tmp_path / "export", scenes=1, frames=10)
    assert run_cli(capsys, "prepare-occ", "--source", "occ-folder", "--dataroot", src, "--name", "w", "--no-previews").code == 0
    assert run_cli(capsys, "train-vae", "--dataset", "w", "--model-config", "debug", "--steps", "1", "--name", "v").code == 0
    r = run_cli(capsys, "train-forecaster", "--stage", "predict", "--dataset", "w", "--init", "v", "--future", "0")
    assert r.code == 2 and len(r.err_lines) == 1 and "--future 0: must be a positive number" in r.err
    r = run_cli(capsys, "train-forecaster", "--stage", "fuse", "--dataset", "w", "--init", "v", "--future", "8")
    assert r.code == 2 and "--future 8: the fuse stage" in r.err
    assert not (tmp_path / "ws" / "models" / "wm").exists()
    r = run_cli(capsys, "train-forecaster", "--stage", "predict", "--dataset", "w", "--init", "v", "--future", "8",
                "--steps", "2", "--name", "wm", "--val-windows", "1", "--json")
    assert r.code == 0, r.err
    import json
    assert json.loads((tmp_path / "ws" / "models" / "wm" / "manifest.json").read_text())["config"]["future"] == 8
