"""First-hit ray casting and the visibility masks."""

import numpy as np

from geniedrive.pipelines.data.occ3d import GRID_SHAPE
from geniedrive.pipelines.data.rig import default_rig
from geniedrive.pipelines.data.raycast import camera_rays, cast_rays, lidar_rays, visibility_masks


def test_flat_ground_gives_the_analytic_range_for_every_beam():
    occ = np.zeros(GRID_SHAPE, bool)
    occ[:, :, 2] = True  # top face at z = 0.2 m
    o, d = lidar_rays(default_rig().lidar)
    idx, dist = cast_rays(occ, o, d)
    d = d / np.linalg.norm(d, axis=1, keepdims=True)
    down = d[:, 2] < -1e-6
    t = np.where(down, (0.2 - o[:, 2]) / np.where(down, d[:, 2], -1), np.inf)
    p = o + d * np.where(np.isfinite(t), t, 0)[:, None]
    lands = down & (np.abs(p[:, 0]) < 40) & (np.abs(p[:, 1]) < 40)
    assert lands.sum() > 10000
    assert np.abs(dist[lands] - t[lands]).max() < 0.05
    assert np.all(idx[lands, 2] == 2)
    assert np.all(np.isinf(dist[~lands])) and np.all(idx[~lands] == -1)


def test_wall_distance_and_rays_leaving_the_grid():
    occ = np.zeros(GRID_SHAPE, bool)
    occ[150, :, :] = True  # wall whose near face is at x = -40 + 150 * 0.4 = 20 m
    origins = np.array([[0.0, 0.0, 1.0], [0.0, 3.0, 2.0], [0.0, 0.0, 1.0], [0.0, 0.0, 1.0]])
    dirs = np.array([[1.0, 0.0, 0.0], [1.0, 0.0, 0.0], [-1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
    idx, dist = cast_rays(occ, origins, dirs)
    np.testing.assert_allclose(dist[:2], [20.0, 20.0], atol=1e-9)
    assert idx[0].tolist() == [150, 100, 5]
    assert np.isinf(dist[2:]).all() and (idx[2:] == -1).all()
    # A slanted ray: 20 m along x at 45 degrees in the xy plane is 20 * sqrt(2).
    _, d45 = cast_rays(occ, origins[:1], np.array([[1.0, 1.0, 0.0]]))
    np.testing.assert_allclose(d45, [20.0 * np.sqrt(2)], atol=1e-9)


def test_max_range_cuts_rays():
    occ = np.zeros(GRID_SHAPE, bool)
    occ[150, :, :] = True
    _, dist = cast_rays(occ, [[0.0, 0.0, 1.0]], [[1.0, 0.0, 0.0]], max_range=10.0)
    assert np.isinf(dist[0])


def test_hidden_voxel_is_not_in_mask_camera():
    sem = np.full(GRID_SHAPE, 17, np.uint8)
    sem[:, :, 2] = 11
    sem[130:132, 80:120, 3:14] = 15  # a wall 12 m ahead, 16 m wide, up to 4.6 m
    ml, mc = visibility_masks(sem, default_rig())
    assert mc[130, 100, 5] == 1  # the wall's near face
    assert mc[131, 100, 5] == 0  # its second layer is behind the first
    assert mc[120, 100, 5] == 1  # free air in front of it
    assert mc[145, 100, 5] == 0 and mc[145, 100, 2] == 0  # hidden behind it
    assert mc[100, 100, 0] == 0  # below the ground
    assert ml.dtype == np.uint8 and set(np.unique(ml)) <= {0, 1}


def test_camera_rays_cover_the_image_corners():
    cam = default_rig().cameras[0]
    o, d = camera_rays(cam)
    uvw = (np.linalg.inv(cam.sensor_to_ego[:3, :3]) @ d.T)
    uv = (cam.intrinsic @ uvw)[:2] / (cam.intrinsic @ uvw)[2]
    assert np.isclose(uv[0].min(), 0) and np.isclose(uv[0].max(), cam.width)
    assert np.isclose(uv[1].min(), 0) and np.isclose(uv[1].max(), cam.height)
