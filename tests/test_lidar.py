"""LiDAR sweeps from occupancy against analytic geometry, nuscenes-devkit and the camera renderer.

Expected ranges are computed here from the beam layout (elevation, azimuth) and the extrinsic,
not from `lidar_rays`, so the ray table and the DDA are checked together.
"""

from __future__ import annotations

import os

import numpy as np
import pytest

from geniedrive.pipelines.data.occ3d import FREE, GRID_SHAPE, PALETTE, RANGE_MAX, RANGE_MIN, THING_CLASSES, VOXEL_SIZE
from geniedrive.pipelines.data.preview import BACKGROUND
from geniedrive.pipelines.data.rig import Lidar, default_rig
from geniedrive.pipelines.geometry import planar_pose
from geniedrive.pipelines.sensors.lidar import (
    REFLECTIVITY,
    lidar_sweep,
    panorama_columns,
    point_labels_path,
    range_image,
    range_raster,
    topdown_image,
    write_pcd_bin,
    write_point_labels,
)

ROAD, WALL, CAR = 11, 15, 4
W, H = 512, 256


def _beams(lidar):
    """Unit beam directions in the sensor frame, ring-major: [R * A, 3] (independent of lidar_rays)."""
    e = np.deg2rad(np.asarray(lidar.elevations_deg))
    a = np.arange(lidar.azimuth_steps) * 2 * np.pi / lidar.azimuth_steps
    e, a = np.meshgrid(e, a, indexing="ij")
    return np.stack([np.cos(e) * np.cos(a), np.cos(e) * np.sin(a), np.sin(e)], -1).reshape(-1, 3)


def _expected_plane(lidar, pose, axis, plane, ego_pose=None):
    """Per ray: analytic range to the plane {p[axis] = plane} in the grid frame, nan if the ray
    lands outside the grid, beyond max_range or never reaches the plane."""
    m = (np.eye(4) if ego_pose is None else ego_pose) @ pose
    d = _beams(lidar) @ m[:3, :3].T
    o = m[:3, 3]
    with np.errstate(divide="ignore", invalid="ignore"):
        t = (plane - o[axis]) / d[:, axis]
        p = o + d * t[:, None]
    inside = np.all((p >= RANGE_MIN) & (p <= RANGE_MAX), axis=1)
    ok = (t > 0) & (t <= lidar.max_range) & inside
    return np.where(ok, t, np.nan)


def _level_lidar():
    """The default rig's LiDAR position with a pure -90 degree yaw (no roll or pitch)."""
    lid = default_rig().lidar
    m = planar_pose(lid.sensor_to_ego[0, 3], lid.sensor_to_ego[1, 3], -np.pi / 2, lid.sensor_to_ego[2, 3])
    return Lidar("LEVEL", m)


def _ground(z_index=2, label=ROAD):
    sem = np.full(GRID_SHAPE, FREE, np.uint8)
    sem[:, :, z_index] = label
    return sem


def _check_against(sweep, expected, tol=0.05):
    has = np.isfinite(expected)
    got = np.full(len(expected), np.nan)
    got[sweep.ray_index] = sweep.range
    hit = np.isfinite(got)
    assert has.sum() > 1000
    assert np.array_equal(hit, has), f"{(hit != has).sum()} rays disagree on whether they return"
    assert np.abs(got[has] - expected[has]).max() < tol


# --- 1. flat ground ----------------------------------------------------------------------------


@pytest.mark.parametrize("lidar", [_level_lidar(), default_rig().lidar], ids=["level", "default-rig"])
def test_flat_ground_gives_the_analytic_range_per_beam(lidar):
    sem = _ground(z_index=2)  # top face at z = -1 + 3 * 0.4 = 0.2 m
    top = RANGE_MIN[2] + 3 * VOXEL_SIZE
    sweep = lidar_sweep(sem, lidar)
    expected = _expected_plane(lidar, lidar.sensor_to_ego, 2, top)
    _check_against(sweep, expected)
    assert np.all(sweep.label == ROAD) and np.all(sweep.instance == 0)
    # Only downward beams return; points lie on the plane in the sensor frame too.
    elev = np.asarray(sweep.elevations_deg)[sweep.ring]
    assert np.all(sweep.ring == sweep.ray_index // sweep.azimuth_steps)
    if lidar.name == "LEVEL":
        h = lidar.sensor_to_ego[2, 3] - top
        np.testing.assert_allclose(sweep.range, h / np.sin(np.deg2rad(-elev)), atol=0.05)
        np.testing.assert_allclose(sweep.points[:, 2], -h, atol=1e-4)
        assert np.all(elev < 0)
    np.testing.assert_allclose(np.linalg.norm(sweep.points, axis=1), sweep.range, rtol=1e-5)
    # Ego frame: every point lies on the ground's top face.
    np.testing.assert_allclose(sweep.ego_points()[:, 2], top, atol=1e-4)
    assert sweep.points.dtype == np.float32 and sweep.range.dtype == np.float32
    assert sweep.label.dtype == np.uint8 and sweep.instance.dtype == np.uint16
    # Normal-ish incidence on the road is brighter than grazing; intensity within [0, 255].
    assert sweep.intensity.min() >= 0 and sweep.intensity.max() <= REFLECTIVITY[ROAD]
    steep = elev < -25
    assert sweep.intensity[steep].mean() > sweep.intensity[elev > -8].mean()


# --- 2. a wall, and a moved ego ------------------------------------------------------------------


def test_wall_gives_the_analytic_distance_for_forward_beams():
    lidar = default_rig().lidar
    sem = np.full(GRID_SHAPE, FREE, np.uint8)
    sem[150, :, :] = WALL  # near face at x = -40 + 150 * 0.4 = 20 m
    sweep = lidar_sweep(sem, lidar)
    expected = _expected_plane(lidar, lidar.sensor_to_ego, 0, 20.0)
    _check_against(sweep, expected)
    assert np.all(sweep.label == WALL)
    ego = sweep.ego_points()
    np.testing.assert_allclose(ego[:, 0], 20.0, atol=1e-4)
    # The 0-degree beam (ring 15) at azimuth 90 degrees (step 270: lidar +y, ego forward) hits at
    # about 20 - 0.94 m (19.062 m with the rig's 1.4 degree pitch).
    straight = np.flatnonzero(sweep.ray_index == 15 * 1080 + 270)
    assert len(straight) == 1 and abs(sweep.range[straight[0]] - 19.062) < 0.05


def test_ego_pose_moves_the_sensor_through_the_grid():
    lidar = default_rig().lidar
    sem = np.full(GRID_SHAPE, FREE, np.uint8)
    sem[150, :, :] = WALL
    pose = planar_pose(5.0, 1.5, np.deg2rad(10.0))  # an interpolated sub-keyframe pose
    sweep = lidar_sweep(sem, lidar, ego_pose=pose)
    _check_against(sweep, _expected_plane(lidar, lidar.sensor_to_ego, 0, 20.0, ego_pose=pose))
    # Points are in the LiDAR frame: back in the grid frame they lie on the wall.
    grid = sweep.ego_points() @ pose[:3, :3].T + pose[:3, 3]
    np.testing.assert_allclose(grid[:, 0], 20.0, atol=1e-4)


# --- 3. nothing to hit -------------------------------------------------------------------------


def test_rays_that_leave_the_grid_return_nothing():
    lidar = default_rig().lidar
    sweep = lidar_sweep(np.full(GRID_SHAPE, FREE, np.uint8), lidar)
    assert len(sweep) == 0 and sweep.points.shape == (0, 3)
    assert sweep.n_rings == 32 and sweep.azimuth_steps == 1080
    assert range_image(sweep).shape == (32, 1080, 3)
    assert np.all(range_image(sweep) == BACKGROUND)
    assert topdown_image(sweep).shape == (400, 400, 3)
    # A wall beyond max_range gives nothing either.
    sem = np.full(GRID_SHAPE, FREE, np.uint8)
    sem[150, :, :] = WALL
    short = Lidar(lidar.name, lidar.sensor_to_ego, lidar.elevations_deg, lidar.azimuth_steps, max_range=15.0)
    assert len(lidar_sweep(sem, short)) == 0


# --- 4. files ------------------------------------------------------------------------------------


def test_pcd_bin_reads_back_with_nuscenes_devkit(scene_sweep, tmp_path):
    from nuscenes.utils.data_classes import LidarPointCloud

    sweep = scene_sweep["sweep"]
    path = write_pcd_bin(tmp_path / "n015-0001__LIDAR_TOP__1.pcd.bin", sweep)
    pc = LidarPointCloud.from_file(str(path))
    assert pc.points.shape == (4, len(sweep))
    np.testing.assert_array_equal(pc.points[:3].T, sweep.points)
    np.testing.assert_array_equal(pc.points[3], sweep.intensity)
    raw = np.fromfile(path, dtype=np.float32).reshape(-1, 5)
    np.testing.assert_array_equal(raw[:, 4], sweep.ring.astype(np.float32))
    assert set(np.unique(raw[:, 4])) <= set(range(32))
    labels_path = write_point_labels(path, sweep)
    assert labels_path == point_labels_path(path) == tmp_path / "n015-0001__LIDAR_TOP__1.labels.npz"
    with np.load(labels_path) as npz:
        np.testing.assert_array_equal(npz["label"], sweep.label)
        np.testing.assert_array_equal(npz["instance"], sweep.instance)
        np.testing.assert_array_equal(npz["range"], sweep.range)
        np.testing.assert_array_equal(npz["ray_index"], sweep.ray_index)
    assert sorted(os.listdir(tmp_path)) == sorted([path.name, labels_path.name])  # no temp files left


# --- 5. camera / LiDAR agreement ---------------------------------------------------------------


@pytest.fixture(scope="module")
def scene_sweep():
    from geniedrive.pipelines.data.synthetic.generate import SyntheticConfig, generate_scene

    scene = generate_scene(0, 0, SyntheticConfig(frames=3))
    rig = default_rig()
    sem, inst = scene.semantics[0], scene.instances[0]
    return {"rig": rig, "sem": sem, "inst": inst, "sweep": lidar_sweep(sem, rig.lidar, inst)}


# Occlusion tolerance. The rendered depth is that of the pixel centre while the point projects
# anywhere in the pixel, up to half a pixel diagonal (delta = 0.71 / f rad) off the centre ray.
# On a surface seen at incidence theta that moves the depth by ~ z * delta * tan(theta); we allow
# theta up to 85 degrees (tan = 11.4, about 2% of z for the front cameras at 512 px). The constant
# 0.3 m (under one 0.4 m voxel) absorbs the two sensors entering the same voxel through different
# faces, while a different surface a voxel or more in front still counts as an occluder.
MAX_INCIDENCE_DEG = 85.0
SAME_VOXEL_SLACK = 0.3


def test_lidar_points_carry_the_label_the_camera_shows(scene_sweep):
    from geniedrive.pipelines.sensors.camera import render_cameras

    rig, sem, sweep = scene_sweep["rig"], scene_sweep["sem"], scene_sweep["sweep"]
    render = render_cameras(sem, rig.cameras, W, H)
    labels, depth = render.labels.numpy(), render.depth.numpy()
    ego = sweep.ego_points()
    kept = agree = near = total_in = 0
    for v, cam in enumerate(rig.cameras):
        k = np.array(cam.intrinsic, dtype=np.float64)
        k[0] *= W / cam.width
        k[1] *= H / cam.height
        to_cam = np.linalg.inv(cam.sensor_to_ego)
        pc = ego @ to_cam[:3, :3].T + to_cam[:3, 3]
        z = pc[:, 2]
        front = z > 0.1
        uvw = pc[front] @ k.T
        u, vv = uvw[:, 0] / uvw[:, 2], uvw[:, 1] / uvw[:, 2]
        inside = (u >= 0) & (u < W) & (vv >= 0) & (vv < H)
        ui, vi = np.floor(u[inside]).astype(int), np.floor(vv[inside]).astype(int)
        zp = z[front][inside]
        lp = sweep.label[front][inside]
        half_diag = np.sqrt(0.5) / min(k[0, 0], k[1, 1])
        tol = SAME_VOXEL_SLACK + zp * half_diag * np.tan(np.deg2rad(MAX_INCIDENCE_DEG))
        visible = np.abs(depth[v, vi, ui] - zp) <= tol
        total_in += inside.sum()
        kept += visible.sum()
        agree += (labels[v, vi, ui][visible] == lp[visible]).sum()
        # The mismatches are sub-pixel: the point's label is on a neighbouring pixel.
        pad = np.pad(labels[v], 1, constant_values=FREE)
        neighbourhood = np.stack([pad[vi[visible] + dy, ui[visible] + dx] for dy in range(3) for dx in range(3)])
        near += (neighbourhood == lp[visible]).any(axis=0).sum()
    share, share_near = agree / kept, near / kept
    print(f"\ncamera-LiDAR agreement: {agree}/{kept} = {share:.4%} of unoccluded in-image points "
          f"({total_in} in an image); label within 1 px: {share_near:.4%}")
    assert kept > 10000
    assert share >= 0.99
    assert share_near >= 0.999


# --- 6. instances ------------------------------------------------------------------------------


def test_points_on_a_car_carry_its_instance_id():
    lidar = default_rig().lidar
    sem = _ground()
    inst = np.zeros(GRID_SHAPE, np.uint16)
    boxes = {7: (slice(120, 131), slice(95, 100), slice(3, 7)), 9: (slice(70, 81), slice(110, 115), slice(3, 7))}
    for iid, box in boxes.items():
        sem[box] = CAR
        inst[box] = iid
    sweep = lidar_sweep(sem, lidar, instances=inst)
    on_car = sweep.label == CAR
    assert set(np.unique(sweep.instance[on_car])) == {7, 9}
    assert np.all(sweep.instance[~on_car] == 0)
    # Each point's instance is the one of the voxel it lies on (ego x decides which car).
    x = sweep.ego_points()[on_car, 0]
    assert np.all(np.where(x > 0, 7, 9) == sweep.instance[on_car])
    # Without an instance grid every point has instance 0.
    assert np.all(lidar_sweep(sem, lidar).instance == 0)


def test_synthetic_scene_things_have_instances(scene_sweep):
    sweep = scene_sweep["sweep"]
    things = np.isin(sweep.label, THING_CLASSES)
    assert things.sum() > 100
    assert np.all(sweep.instance[things] > 0)
    assert np.all(sweep.instance[~things] == 0)


# --- previews ------------------------------------------------------------------------------------


def test_previews_colour_points_by_label():
    lidar = default_rig().lidar
    sem = _ground()
    sem[150, :, 3:] = WALL
    sweep = lidar_sweep(sem, lidar)
    img = topdown_image(sweep)
    assert img.shape == (400, 400, 3) and img.dtype == np.uint8
    # The wall at x = 20 m is 100 px above the centre (0.2 m per pixel), across the image.
    row = img[400 // 2 - 100 - 1: 400 // 2 - 100 + 1]
    assert (np.all(row == PALETTE[WALL], axis=-1)).any(axis=0).sum() > 50
    assert (np.all(img == PALETTE[ROAD], axis=-1)).sum() > 1000
    ri = range_image(sweep)
    assert ri.shape == (32, 1080, 3) and ri.dtype == np.uint8
    rng, lab = range_raster(sweep)
    # Top row is the highest beam (+10.67 deg): only the wall, ahead. Bottom row: all road.
    assert set(np.unique(lab[0])) == {FREE, WALL}
    assert np.all(lab[-1] == ROAD) and np.all(np.isfinite(rng[-1]))
    # Panorama: the wall ahead is in the middle columns of the top row, the sky behind is dark.
    cols = panorama_columns(sweep)
    assert sorted(cols) == list(range(1080)) and abs(int(cols[540]) - 270) <= 1  # lidar +y = forward
    assert lab[0, cols[540]] == WALL and lab[0, cols[0]] == FREE
    assert np.all(ri[0, 0] == BACKGROUND) and np.any(ri[0, 540] != BACKGROUND)
    # Left of the car is on the left: the 0-degree ring sees the wall (x = 20 m, y up to 40 m)
    # 45 degrees to the left (column 405) but not 135 degrees to the left (column 135).
    ring0 = np.flatnonzero(np.sort(sweep.elevations_deg)[::-1] == 0.0)[0]
    assert lab[ring0, cols[405]] == WALL and lab[ring0, cols[135]] == FREE
    # Shaded by range: the nearest road (bottom row) is brighter than road further out.
    far_road = np.flatnonzero(lab[:, cols[0]] == ROAD)[0]
    assert ri[-1, 0].astype(int).sum() > ri[far_road, 0].astype(int).sum()
