"""The `warp` motion prior: the tri-plane latent warp agrees with the occupancy warp, and a fresh
forecaster with that prior forecasts the warped current frame."""

import dataclasses
import math

import numpy as np
import pytest
import torch

from geniedrive.pipelines.errors import BadInput
from geniedrive.pipelines.geometry import planar_pose
from geniedrive.pipelines.metrics.ego_motion import warp_occupancy
from geniedrive.pipelines.occworld.configs import CONFIGS, WorldModelConfig
from geniedrive.pipelines.occworld.forecaster import Forecaster
from geniedrive.pipelines.occworld.latent_warp import warp_latent
from geniedrive.pipelines.occworld.params import parameter_report


def _step(x: float, y: float, yaw: float) -> torch.Tensor:
    return torch.from_numpy(planar_pose(x, y, yaw)).float()[None]


def test_identity_step_leaves_the_latent_unchanged():
    z = torch.randn(2, 4, 50, 58)
    torch.testing.assert_close(warp_latent(z, torch.eye(4).repeat(2, 1, 1)), z, rtol=0, atol=1e-4)


def test_forward_step_shifts_rows_and_the_xz_profile():
    z = torch.randn(1, 3, 50, 58)
    out = warp_latent(z, _step(3.2, 0.0, 0.0))  # two 1.6 m latent cells forward
    torch.testing.assert_close(out[..., :48, :50], z[..., 2:, :50], rtol=0, atol=1e-4)  # xy rows
    torch.testing.assert_close(out[..., :48, 50:54], z[..., 2:, 50:54], rtol=0, atol=1e-4)  # xz rows
    torch.testing.assert_close(out[..., 54:], z[..., 54:], rtol=0, atol=1e-4)  # yz: no lateral motion
    torch.testing.assert_close(out[..., 48:, :50], z[..., 49:, :50].expand(-1, -1, 2, -1), rtol=0, atol=1e-4)  # border


@pytest.mark.parametrize("pose", [(6.4, 0.0, 0.0), (0.0, -4.8, 0.0), (3.2, 1.6, math.pi / 2), (0.0, 0.0, -math.pi / 2)])
def test_xy_plane_warp_agrees_with_the_occupancy_warp(pose):
    """A column-occupancy image pooled to the latent grid, warped in latent space, equals the pooled
    warp of the occupancy itself (exact for whole-cell shifts and right-angle turns)."""
    rng = np.random.default_rng(0)
    occ = np.full((200, 200, 16), 17, np.uint8)
    cells = rng.random((50, 50)) < 0.3
    occ[np.repeat(np.repeat(cells, 4, 0), 4, 1), 3] = 4
    step = planar_pose(*pose)

    def pooled(o):
        return torch.from_numpy((o[..., 3] == 4).reshape(50, 4, 50, 4).mean((1, 3)).astype(np.float32))

    z = torch.zeros(1, 1, 50, 58)
    z[0, 0, :, :50] = pooled(occ)
    got = warp_latent(z, torch.from_numpy(step).float()[None])[0, 0, :, :50]
    want = pooled(warp_occupancy(occ, step))
    # Compare where the source lies inside the grid (warp_occupancy frees the outside; the latent repeats its border).
    inside = warp_occupancy(np.ones_like(occ), step)[..., 3].reshape(50, 4, 50, 4).min((1, 3)) == 1
    torch.testing.assert_close(got[torch.from_numpy(inside)], want[torch.from_numpy(inside)], rtol=0, atol=1e-4)
    assert inside.mean() > 0.8


def test_fresh_warp_forecaster_forecasts_the_warped_frame_and_learns_its_residual():
    torch.manual_seed(0)
    cfg = dataclasses.replace(CONFIGS["debug"].forecaster, motion_prior="warp")
    fc = Forecaster(cfg)
    k = cfg.history
    z = torch.randn(1, 8, 50, 58)
    step = _step(4.0, 0.5, 0.1)
    nxt, _ = fc.step(z, torch.randn(1, k, 8, 50, 58), torch.randn(1, k, 9), torch.eye(3)[[0]], step)
    torch.testing.assert_close(nxt, warp_latent(z, step))
    nxt.square().mean().backward()
    assert fc.residual_scale.grad.abs().sum() > 0  # the residual starts contributing after one step


def test_motion_prior_is_checked_and_the_paper_config_keeps_the_official_counts():
    assert CONFIGS["paper"].forecaster.motion_prior == "none"
    assert parameter_report(CONFIGS["paper"])["forecaster"]["total"] == 1_722_418
    d = CONFIGS["small"].to_dict()
    d["forecaster"]["motion_prior"] = "flow"
    with pytest.raises(BadInput, match="motion_prior 'flow'"):
        WorldModelConfig.from_dict(d)
