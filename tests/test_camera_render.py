"""Camera rendering of semantic occupancy (exact box splatting) against independent geometry."""

import numpy as np
import pytest
import torch

from geniedrive.pipelines.data.occ3d import FREE, GRID_SHAPE, RANGE_MIN, VOXEL_SIZE
from geniedrive.pipelines.data.rig import default_rig
from geniedrive.pipelines.sensors.camera import RING_ORDER, colorize, render_cameras, ring_grid
from geniedrive.pipelines.data.raycast import cast_rays

W, H = 256, 128


def _intrinsic(cam, width=W, height=H):
    k = np.array(cam.intrinsic, dtype=np.float64)
    k[0] *= width / cam.width
    k[1] *= height / cam.height
    return k


def _project(cam, point):
    """Pinhole projection of an ego-frame point: (u, v, z) at W x H."""
    p = np.linalg.inv(cam.sensor_to_ego) @ np.append(point, 1.0)
    uvw = _intrinsic(cam) @ p[:3]
    return uvw[0] / uvw[2], uvw[1] / uvw[2], p[2]


def _voxel_at(point):
    return tuple(int(i) for i in np.floor((np.asarray(point) - RANGE_MIN) / VOXEL_SIZE))


def _centre(ijk):
    return RANGE_MIN + (np.asarray(ijk) + 0.5) * VOXEL_SIZE


def _pixel_rays(cam, width=W, height=H):
    """Ego-frame origin and directions (camera z = 1) through every pixel centre, row-major."""
    u, v = np.meshgrid(np.arange(width) + 0.5, np.arange(height) + 0.5)
    d_cam = np.linalg.inv(_intrinsic(cam, width, height)) @ np.stack([u.ravel(), v.ravel(), np.ones(u.size)])
    d_cam /= d_cam[2]
    return cam.sensor_to_ego[:3, 3], (cam.sensor_to_ego[:3, :3] @ d_cam).T


def test_single_voxel_lands_where_a_pinhole_projection_puts_it_and_only_in_cameras_that_see_it():
    rig = default_rig()
    sem = np.full(GRID_SHAPE, FREE, np.uint8)
    ahead = _voxel_at([10.0, 0.0, 1.6])  # 10 m ahead at camera height
    behind_left = _voxel_at([-6.0, 7.0, 1.0])
    sem[ahead] = 4
    sem[behind_left] = 7
    r = render_cameras(sem, rig.cameras, W, H)
    assert r.labels.shape == (6, H, W) and r.labels.dtype == torch.uint8
    assert r.depth.dtype == torch.float32 and r.alpha.dtype == torch.float32
    labels = r.labels.numpy()
    seen = {}
    for ijk, label in ((ahead, 4), (behind_left, 7)):
        for i, cam in enumerate(rig.cameras):
            u, v, z = _project(cam, _centre(ijk))
            inside = z > 0 and 0 <= u < W and 0 <= v < H
            margin = min(u, W - u, v, H - v) if inside else -1
            assert not inside or margin > 8, "test voxel too near an image border"
            mask = labels[i] == label
            assert mask.any() == inside, (cam.name, label)
            if inside:
                seen.setdefault(label, []).append(cam.name)
                assert labels[i, int(v), int(u)] == label  # pixel holding the projected centre
                rows, cols = np.nonzero(mask)
                assert abs(cols.mean() + 0.5 - u) <= 1.0 and abs(rows.mean() + 0.5 - v) <= 1.0
    assert "CAM_FRONT" in seen[4] and "CAM_BACK" not in seen[4]
    assert "CAM_BACK_LEFT" in seen[7] and "CAM_FRONT" not in seen[7]


def test_near_voxel_hides_a_far_one_on_the_same_line_of_sight():
    rig = default_rig()
    cam = rig.camera("CAM_FRONT")
    far = _voxel_at([18.0, 3.0, 1.0])
    o = cam.sensor_to_ego[:3, 3]
    near = _voxel_at(o + 0.4 * (_centre(far) - o))  # on the line to the far voxel, ~7 m away
    u, v, z_far = _project(cam, _centre(far))
    _, _, z_near = _project(cam, _centre(near))
    px = (int(v), int(u))

    sem = np.full(GRID_SHAPE, FREE, np.uint8)
    sem[far] = 10
    alone = render_cameras(sem, [cam], W, H)
    assert alone.labels[0][px] == 10 and abs(float(alone.depth[0][px]) - z_far) < 0.35
    assert (alone.labels[0] == 10).sum() > 4

    # A 3x3x3 block of voxels around the near one: wide enough to hide the far voxel entirely.
    block = tuple(slice(i - 1, i + 2) for i in near)
    sem[block] = 4
    both = render_cameras(sem, [cam], W, H)
    assert both.labels[0][px] == 4
    assert not (both.labels[0] == 10).any()
    # The depth is where the pixel's ray enters the block (numpy slab test here).
    _, d = _pixel_rays(cam)
    ray = d[px[0] * W + px[1]]
    lo = RANGE_MIN + (np.asarray(near) - 1) * VOXEL_SIZE - o
    t1, t2 = lo / ray, (lo + 3 * VOXEL_SIZE) / ray
    t_in, t_out = np.minimum(t1, t2).max(), np.maximum(t1, t2).min()
    assert 0 < t_in < t_out and abs(t_in - z_near) < 0.7
    assert abs(float(both.depth[0][px]) - t_in) < 1e-3


def test_empty_grid_is_background():
    rig = default_rig()
    r = render_cameras(np.full(GRID_SHAPE, FREE, np.uint8), rig.cameras, W, H)
    assert (r.labels == FREE).all() and (r.alpha == 0).all() and torch.isinf(r.depth).all()
    rgb = colorize(r)
    assert rgb.shape == (6, H, W, 3) and rgb.dtype == np.uint8
    assert len(np.unique(rgb.reshape(-1, 3), axis=0)) == 1  # one dark background colour


def _random_scene(seed=0):
    rng = np.random.default_rng(seed)
    sem = np.full(GRID_SHAPE, FREE, np.uint8)
    sem[:, :, 2] = rng.choice([11, 13, 14], size=GRID_SHAPE[:2])  # ground, top face at z = 0.2
    for _ in range(60):  # buildings and cars of mixed classes
        x, y = rng.integers(0, 190, 2)
        if abs(x - 102) < 8 and abs(y - 100) < 6:
            continue  # keep the ego's own cell free
        dx, dy, dz = rng.integers(1, 12), rng.integers(1, 12), rng.integers(1, 13)
        sem[x : x + dx, y : y + dy, 3 : 3 + dz] = rng.integers(0, 17)
    scatter = rng.random(GRID_SHAPE) < 0.003  # floating single voxels (label 0 included)
    scatter[92:112, 92:108] = False
    sem[scatter] = rng.integers(0, 17, scatter.sum())
    return sem


def test_agrees_with_the_numba_ray_caster():
    rig = default_rig()
    sem = _random_scene()
    r = render_cameras(sem, rig.cameras, W, H)
    occupied = sem != FREE
    agree = total = 0
    for i, cam in enumerate(rig.cameras):
        o, d = _pixel_rays(cam)
        idx, dist = cast_rays(occupied, np.broadcast_to(o, d.shape), d)
        hit = idx[:, 0] >= 0
        want = np.full(len(d), FREE, np.uint8)
        want[hit] = sem[idx[hit, 0], idx[hit, 1], idx[hit, 2]]
        got = r.labels[i].numpy().ravel()
        agree += int((want == got).sum())
        total += len(d)
        # Depth: the caster's distance along the unit ray over |d| (d has camera z = 1).
        both = hit & (got != FREE)
        want_depth = dist[both] / np.linalg.norm(d[both], axis=1)
        got_depth = r.depth[i].numpy().ravel()[both]
        assert np.mean(np.abs(got_depth - want_depth) < 1e-3) > 0.999
        assert np.all(np.isinf(r.depth[i].numpy().ravel()[~hit & (got == FREE)]))
    assert agree / total >= 0.999, agree / total


def test_occlusion_culling_and_chunking_do_not_change_the_result(monkeypatch):
    import geniedrive.pipelines.sensors.camera as camera

    pairs = []
    splat = camera._splat_chunk
    monkeypatch.setattr(camera, "_splat_chunk", lambda *a: (pairs.append(a[-2]), splat(*a)))
    rig = default_rig()
    sem = _random_scene(2)
    monkeypatch.setattr(camera, "PAIRS_PER_ROUND", 2000)  # many near-to-far rounds, culling between
    culled = render_cameras(sem, rig.cameras, W, H)
    n_culled, pairs[:] = sum(pairs), []
    monkeypatch.setattr(camera, "PAIRS_PER_ROUND", 10**12)  # one round, no culling ...
    monkeypatch.setattr(camera, "PAIRS_PER_CHUNK", 1)  # ... in chunks of one image's worth of pairs
    plain = render_cameras(sem, rig.cameras, W, H)
    assert len(pairs) > 1 and n_culled < 0.9 * sum(pairs)
    assert torch.equal(culled.labels, plain.labels)
    assert torch.equal(culled.depth, plain.depth)


def test_flat_ground_gives_the_analytic_depth():
    rig = default_rig()
    cam = rig.camera("CAM_FRONT")
    sem = np.full(GRID_SHAPE, FREE, np.uint8)
    sem[:, :, 2] = 11  # top face at z = 0.2 m
    r = render_cameras(sem, [cam], W, H)
    o, d = _pixel_rays(cam)
    for v, u in ((H - 1, W // 2), (H - 20, 30), (H * 3 // 4, W - 10), (H * 5 // 8, W // 2)):
        ray = d[v * W + u]
        t = (0.2 - o[2]) / ray[2]  # d has camera z = 1, so t is the depth
        assert np.abs(o + t * ray)[:2].max() < 39  # lands on the grid
        assert r.labels[0, v, u] == 11
        assert abs(float(r.depth[0, v, u]) - t) < 0.05
    assert (r.labels[0, : H // 3] == FREE).all()  # sky above the horizon
    # Riding 1 m higher (ego_pose) pushes every ground pixel farther by the same ratio.
    up = np.eye(4)
    up[2, 3] = 1.0
    r_up = render_cameras(sem, [cam], W, H, ego_pose=up)
    v, u = H - 1, W // 2
    ray = d[v * W + u]
    assert abs(float(r_up.depth[0, v, u]) - (0.2 - o[2] - 1.0) / ray[2]) < 0.05


def test_ring_grid_layout():
    names = [c.name for c in default_rig().cameras]
    images = np.stack([np.full((4, 6, 3), i, np.uint8) for i in range(6)])
    grid = ring_grid(images, names)
    assert grid.shape == (8, 18, 3)
    for row, cams in enumerate(RING_ORDER):
        for col, name in enumerate(cams):
            assert grid[row * 4, col * 6, 0] == names.index(name)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu():
    rig = default_rig()
    sem = _random_scene(1)
    a = render_cameras(sem, rig.cameras, W, H)
    b = render_cameras(torch.from_numpy(sem).cuda(), rig.cameras, W, H, device="cuda")
    assert b.labels.is_cuda
    assert (a.labels == b.labels.cpu()).float().mean() > 0.999
