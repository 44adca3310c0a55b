"""Observation fusion: the shared ego warp, the identity start of the head, and the `fuse` stage
(only the head trains; it learns to use the warped observation)."""

import dataclasses

import numpy as np
import pytest
import torch

from geniedrive.pipelines.data.cache import open_cache
from geniedrive.pipelines.data.dataset import OccDataset
from geniedrive.pipelines.data.occ3d import FREE, GRID_SHAPE, RANGE_MIN, VOXEL_SIZE
from geniedrive.pipelines.geometry import planar_pose
from geniedrive.pipelines.metrics.ego_motion import warp_occupancy
from geniedrive.pipelines.occworld.configs import CONFIGS
from geniedrive.pipelines.runtime.distributed import DistInfo
from geniedrive.pipelines.occworld.forecast_stage import forecaster_stage
from geniedrive.pipelines.data.warp import warp_labels
from geniedrive.pipelines.occworld.observation_fusion import accumulated_poses
from geniedrive.pipelines.runtime.trainer import TrainSettings, train
from geniedrive.pipelines.occworld.world_model import WorldModel
from tests.helpers import run_cli, write_occ_folder

CPU = torch.device("cpu")


def _reference_warp(occ: np.ndarray, pose: np.ndarray) -> np.ndarray:
    """Per-voxel loop: each B voxel centre mapped into A, nearest voxel, z shifted by the height."""
    nx, ny, nz = GRID_SHAPE
    out = np.full(occ.shape, FREE, np.uint8)
    dz = int(round(pose[2, 3] / VOXEL_SIZE))
    for i in range(0, nx, 7):  # a strided subset keeps the loop quick; the test compares it
        for j in range(ny):
            x = RANGE_MIN[0] + (i + 0.5) * VOXEL_SIZE
            y = RANGE_MIN[1] + (j + 0.5) * VOXEL_SIZE
            a = pose[:2, :2] @ np.array([x, y]) + pose[:2, 3]
            ia, ja = int(np.floor((a[0] - RANGE_MIN[0]) / VOXEL_SIZE)), int(np.floor((a[1] - RANGE_MIN[1]) / VOXEL_SIZE))
            if 0 <= ia < nx and 0 <= ja < ny:
                for k in range(nz):
                    if 0 <= k + dz < nz:
                        out[i, j, k] = occ[ia, ja, k + dz]
    return out


@pytest.mark.parametrize("pose", [planar_pose(3.2, -1.6, 0.0), planar_pose(7.3, 2.1, 0.4), planar_pose(-12.0, 5.5, -2.0)])
def test_warp_matches_a_per_voxel_reference(pose):
    rng = np.random.default_rng(0)
    occ = rng.integers(0, 18, GRID_SHAPE).astype(np.uint8)
    pose = np.array(pose, np.float64)
    pose[2, 3] = 0.8  # two voxels up
    got = warp_occupancy(occ, pose)
    ref = _reference_warp(occ, pose)
    assert np.array_equal(got[::7], ref[::7])
    assert (got[::7] != FREE).any() and (got[::7] == FREE).any()


def test_warp_labels_batches_and_flags_inside():
    occ = torch.full((2, *GRID_SHAPE), 3, dtype=torch.uint8)
    pose = torch.stack([torch.eye(4, dtype=torch.float64), torch.from_numpy(planar_pose(20.0, 0.0, 0.0))])
    warped, inside = warp_labels(occ, pose)
    assert torch.equal(warped[0], occ[0]) and bool(inside[0].all())
    # 20 m forward: the last 50 rows (20 m / 0.4 m) come from beyond the grid and are free.
    assert bool(inside[1, :150].all()) and not bool(inside[1, 150:].any())
    assert bool((warped[1, 150:] == FREE).all()) and bool((warped[1, :150] == 3).all())


def test_accumulated_poses_chain_the_steps():
    step = torch.from_numpy(planar_pose(2.0, 0.0, 0.1)).float()
    moved = accumulated_poses(step.expand(1, 3, 4, 4))
    assert torch.allclose(moved[0, 2], step @ step @ step, atol=1e-6)


def test_head_starts_with_the_decoded_labels_and_the_model_decodes_through_it():
    torch.manual_seed(0)
    cfg = CONFIGS["debug"]
    cfg = dataclasses.replace(cfg, forecaster=dataclasses.replace(cfg.forecaster, observation_fusion=True))
    model = WorldModel(cfg).eval()
    lat = torch.randn(1, *model.vae_latent_shape)
    current = torch.randint(0, 18, (1, *GRID_SHAPE))
    moved = torch.eye(4)[None]
    head = model.forecaster.obs_fusion
    with torch.no_grad():
        decoded = model.vae.decode(lat).argmax(1)
        assert torch.equal(model.decode_future(lat, current, moved).argmax(1), decoded)
        # Rows where the observation says traffic cone (8) and was inside the grid now vote cone.
        rows = head.context(torch.arange(18), torch.full((18,), 8), torch.ones(18, dtype=torch.bool))
        head.table[rows, 8] = 50.0
        fused = model.decode_future(lat, current, moved).argmax(1)
        assert torch.equal(fused, torch.where(current == 8, 8, decoded))
        # A voxel's logits are exactly its table row.
        logits = torch.randn(5, 18)
        warped, inside = torch.tensor([0, 8, 17, 3, 8]), torch.tensor([True, True, False, True, False])
        rows = (logits.argmax(1) * 18 + warped) * 2 + inside.long()
        assert torch.equal(head.lookup(logits.argmax(1), warped, inside), head.table[rows])


def test_fuse_stage_trains_only_the_head_and_uses_the_observation(capsys, tmp_path):
    src = write_occ_folder(tmp_path / "export", scenes=1, frames=12)
    assert run_cli(capsys, "prepare-occ", "--source", "occ-folder", "--dataroot", src, "--name", "w", "--no-previews").code == 0
    cache = open_cache(OccDataset.open("w", tmp_path / "ws"))
    torch.manual_seed(0)
    cfg = CONFIGS["debug"]
    cfg = dataclasses.replace(cfg, forecaster=dataclasses.replace(cfg.forecaster, observation_fusion=True))
    model = WorldModel(cfg)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    stage = forecaster_stage("fuse", model, cache, CPU, 40, 0, train_windows=[0])
    out = train(stage, TrainSettings(steps=40, batch_size=1, lr=0.1, ema=False, ckpt_every=0, seed=0),
                tmp_path / "run", {}, CPU, DistInfo())
    after = model.state_dict()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed and all(k.startswith("forecaster.obs_fusion.") for k in changed), changed
    # An untrained debug VAE decodes noise; the head can only get the loss down by trusting the
    # warped observation, which for this static export is close to the truth.
    first, last = out["losses"][0], float(np.mean(out["losses"][-5:]))
    assert last < 0.5 * first, (first, last)


def test_fuse_stage_rejects_a_model_without_a_head(capsys, tmp_path):
    src = write_occ_folder(tmp_path / "export", scenes=1, frames=12)
    assert run_cli(capsys, "prepare-occ", "--source", "occ-folder", "--dataroot", src, "--name", "w", "--no-previews").code == 0
    cache = open_cache(OccDataset.open("w", tmp_path / "ws"))
    with pytest.raises(Exception, match="observation-fusion head"):
        forecaster_stage("fuse", WorldModel(CONFIGS["debug"]), cache, CPU, 2, 0)
