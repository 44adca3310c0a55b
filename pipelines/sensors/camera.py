"""Camera conditions from semantic occupancy: exact box splatting in PyTorch (CPU or CUDA).

Every occupied voxel is an opaque axis-aligned 0.4 m box. For each camera we splat the boxes
that can be a first hit onto the pixels their projection covers, test the ray through each covered
pixel centre against the box exactly (slab test in the ego frame), and keep the nearest hit per
pixel (scatter-amin of a packed int64 key: quantised depth, then voxel index). The first voxel a
pixel ray meets is always a surface voxel seen through an open face turned to the camera (the ray
enters it from a free neighbour or from outside the grid), so only those are splatted, each over
the pixel bounding box of its open front faces, and the result equals exact first-hit ray casting
through the grid (the numba DDA in `data/raycast.py`), with no compiled extension.

Speed: all views are processed together and nothing loops over voxels in Python. Voxels outside
a frustum or without an open face towards the camera are dropped first; the rest are splatted
near to far in rounds, and between rounds a voxel whose whole footprint already holds nearer hits
(max-depth pyramid of the z-buffer) is dropped, which is exact and removes most hidden ground.

SPEC (paper eq. 11) asks for the argmax of an alpha-composited one-hot along the ray. With opaque
voxels (alpha = 1 each) compositing front to back gives the front voxel weight 1 and everything
behind it weight 0, so the label is the front voxel's label, depth its entry depth and alpha 1;
a pixel whose ray meets no voxel is background (FREE, depth inf, alpha 0).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from ..data.occ3d import FREE, PALETTE, RANGE_MIN, VOXEL_SIZE, check_grid
from ..data.preview import BACKGROUND
from ..data.rig import VIEW_RING
from ..errors import BadInput

NEAR = 0.1  # near plane (m along the optical axis)
# (voxel, pixel) pairs expanded at once. Small on purpose: each pair temporary is then about 1 MB,
# which the C allocator keeps and reuses, where multi-MB temporaries were returned to the system
# and page-faulted back in every chunk (measured on 2 cores: 47-69 ms a frame with 4M, 39-41 with 2^17).
PAIRS_PER_CHUNK = 1 << 17
PAIRS_PER_ROUND = 60_000  # pairs splatted between two occlusion-culling passes
_VID_BITS = 20  # 200 * 200 * 16 = 640000 < 2**20 voxel ids
_DEPTH_SCALE = 2.0**20  # depth quantum in the z-buffer key: ~1e-6 m (43 bits: up to 8000 km)
_NO_HIT = torch.iinfo(torch.int64).max

# nuScenes ring layout for a 2 x 3 mosaic: front row left to right, back row as seen turning round.
RING_ORDER = (VIEW_RING[:3], VIEW_RING[3:])

# Corner k of a voxel has offset sign (+/-) per axis from bits (x: 4, y: 2, z: 1).
_CORNER_SIGNS = np.array([[(k >> 2) & 1, (k >> 1) & 1, k & 1] for k in range(8)], np.float64) * 2 - 1
# Faces in the order (-x, +x, -y, +y, -z, +z); bit f of _CORNER_FACES[k]: corner k lies on face f.
_CORNER_FACES = np.array(
    [sum(1 << f for f in range(6) if _CORNER_SIGNS[k, f // 2] == (1 if f % 2 else -1)) for k in range(8)],
    np.uint8,
)
# The 12 box edges as corner pairs (corners differing in one bit).
_EDGES = np.array([(a, a | b) for b in (4, 2, 1) for a in range(8) if not a & b], np.int64)


@dataclass
class CameraRender:
    """Per-view rasters, views in the order the cameras were given."""

    labels: torch.Tensor  # [V, H, W] uint8, FREE (17) where no voxel is hit
    depth: torch.Tensor  # [V, H, W] float32 metres along the optical axis, inf for background
    alpha: torch.Tensor  # [V, H, W] float32 in [0, 1], 0 for background


@dataclass
class _Surface:
    """Surface voxels of one frame, structure-of-arrays."""

    labels: torch.Tensor  # [N] uint8
    lo: torch.Tensor  # [3, N] float32 box minimum (ego metres)
    hi: torch.Tensor  # [3, N] float32 box maximum
    centre: torch.Tensor  # [3, N] float32
    exposed: torch.Tensor  # [N] uint8 bit f set: face f (-x, +x, -y, +y, -z, +z) borders free space


# Peak memory of one render_cameras call per output pixel (all views), measured with the default
# rig: 155 B at 256x512, 107 at 512x1024, 78 at 1024x2048 (ray tables, z-buffer, outputs, the
# splatting chunks); the constant covers the grid, the surface list and the chunk temporaries.
BYTES_PER_PIXEL = 80
BASE_BYTES = 200 * 2**20


def render_memory_bytes(views: int, height: int, width: int) -> float:
    """About the peak memory `render_cameras` needs for `views` images of height x width."""
    return BASE_BYTES + BYTES_PER_PIXEL * views * height * width


def surface_voxels(semantics: torch.Tensor) -> _Surface:
    """Occupied voxels with at least one free (or out-of-grid) 6-neighbour, and which faces are open."""
    occ = (semantics != FREE).to(torch.uint8)
    free = 1 - occ
    flags = torch.zeros_like(occ)
    for axis in range(3):
        n = occ.shape[axis]
        lo_bit, hi_bit = 1 << (2 * axis), 1 << (2 * axis + 1)
        # Face towards -axis is open where the previous voxel is free (or the grid ends there).
        flags.narrow(axis, 0, 1).add_(lo_bit)
        flags.narrow(axis, 1, n - 1).add_(free.narrow(axis, 0, n - 1) * lo_bit)
        flags.narrow(axis, n - 1, 1).add_(hi_bit)
        flags.narrow(axis, 0, n - 1).add_(free.narrow(axis, 1, n - 1) * hi_bit)
    flags *= occ
    ijk = flags.nonzero().T  # [3, N], no integer division needed
    vid = (ijk[0] * occ.shape[1] + ijk[1]) * occ.shape[2] + ijk[2]
    # Plane coordinates from one table so neighbouring boxes share bit-identical faces (no cracks).
    planes = [
        torch.as_tensor(RANGE_MIN[a] + np.arange(occ.shape[a] + 1) * VOXEL_SIZE, dtype=torch.float32,
                        device=occ.device)
        for a in range(3)
    ]
    lo = torch.stack([planes[a].index_select(0, ijk[a]) for a in range(3)])
    hi = torch.stack([planes[a].index_select(0, ijk[a] + 1) for a in range(3)])
    return _Surface(semantics.reshape(-1).index_select(0, vid), lo, hi, (lo + hi) * 0.5,
                    flags.reshape(-1).index_select(0, vid))


def _as_grid(semantics, device: torch.device) -> torch.Tensor:
    sem = semantics if torch.is_tensor(semantics) else torch.from_numpy(np.ascontiguousarray(semantics))
    check_grid("semantics", sem, "render", dtype=None)
    return sem.to(device=device, dtype=torch.uint8)


def render_cameras(semantics, cameras, width: int, height: int, device="cpu", ego_pose=None) -> CameraRender:
    """Render labels, depth and alpha for every camera at width x height.

    semantics: [200, 200, 16] uint8 labels (numpy or torch) in the grid's ego frame; FREE = empty.
    cameras: rig `Camera`s (intrinsics at their own size; rescaled to width x height here).
    ego_pose: optional 4x4 pose of the rendering ego in the grid's ego frame (e.g. an interpolated
    pose between keyframes); the cameras ride on it. Identity when None.
    Returns tensors on `device`; all views are rendered together.
    """
    dev = torch.device(device)
    if width <= 0 or height <= 0:
        raise BadInput(f"camera size {width}x{height}: width and height must be positive")
    sem = _as_grid(semantics, dev)
    pose = np.eye(4) if ego_pose is None else np.asarray(ego_pose, dtype=np.float64)
    n_views = len(cameras)
    labels = torch.full((n_views * height * width,), FREE, dtype=torch.uint8, device=dev)
    depth = torch.full((n_views * height * width,), float("inf"), dtype=torch.float32, device=dev)
    if n_views:
        surf = surface_voxels(sem)
        if surf.labels.numel():
            _render(surf, [cam.scaled(width, height) for cam in cameras], pose, labels, depth)
    shape = (n_views, height, width)
    alpha = torch.isfinite(depth).to(torch.float32)  # opaque voxels: 1 where hit, 0 for background
    return CameraRender(labels.view(shape), depth.view(shape), alpha.view(shape))


@lru_cache(maxsize=4)
def _pixel_directions(k_bytes: bytes, width: int, height: int) -> np.ndarray:
    """Camera-frame pixel-centre ray directions of all views scaled to unit z: [V, 3, H*W] float64.
    Cached on the intrinsics alone: they do not change from frame to frame, the pose does."""
    ks = np.frombuffer(k_bytes, dtype=np.float64).reshape(-1, 3, 3)
    u, v = np.meshgrid(np.arange(width) + 0.5, np.arange(height) + 0.5)
    pix = np.stack([u.ravel(), v.ravel(), np.ones(u.size)])
    out = []
    for k in ks:
        d = np.linalg.solve(k, pix)
        out.append(d / d[2])
    return np.stack(out)


@lru_cache(maxsize=4)
def _inverse_rays(k_bytes: bytes, rot_bytes: bytes, width: int, height: int, device: str) -> torch.Tensor:
    """Per-axis reciprocals of the ego-frame pixel-centre ray directions of all views: [3, V*H*W].

    Directions are scaled to unit camera z, so a ray parameter is the depth along the optical axis.
    A zero component gives inf, which the slab test handles (a ray lying in a face plane misses).
    Cached: a rig at a fixed pose reuses its tables from frame to frame; a moving one only rotates
    the cached camera-frame directions.
    """
    rots = np.frombuffer(rot_bytes, dtype=np.float64).reshape(-1, 3, 3)
    dirs = _pixel_directions(k_bytes, width, height)
    out = [torch.as_tensor(rot @ d, dtype=torch.float32, device=device) for rot, d in zip(rots, dirs)]
    return torch.cat(out, dim=1).reciprocal_()


def _slab(box: list[torch.Tensor], invd: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Ray parameters where rays (direction 1 / invd, from the camera) enter and leave boxes.

    box: (lo_x, lo_y, lo_z, hi_x, hi_y, hi_z) relative to the camera centre, 1-D each.
    """
    t_in = t_out = None
    for a in range(3):
        t1 = box[a] * invd[a]
        t2 = box[a + 3] * invd[a]
        lo, hi = torch.minimum(t1, t2), torch.maximum(t1, t2)
        t_in = lo if t_in is None else torch.maximum(t_in, lo, out=t_in)
        t_out = hi if t_out is None else torch.minimum(t_out, hi, out=t_out)
    return t_in, t_out


def _render(surf: _Surface, cams: list, pose: np.ndarray, labels: torch.Tensor, depth: torch.Tensor) -> None:
    """Fill the flat label and depth buffers ([V*H*W] each) of all views at once."""
    dev = labels.device
    f32 = dict(dtype=torch.float32, device=dev)
    w, h = cams[0].width, cams[0].height
    n_views, hw = len(cams), w * h
    c2g = [pose @ cam.sensor_to_ego for cam in cams]
    ks = [np.asarray(cam.intrinsic, dtype=np.float64) for cam in cams]
    # Per view, linear maps of ego-frame offsets from the camera: camera z, the four side planes
    # of the frustum (n . p >= 0 inside), then homogeneous pixel (u z, v z, z).
    lin = []
    for k, m in zip(ks, c2g):
        side = np.stack([k[0], w * k[2] - k[0], k[1], h * k[2] - k[1]])
        side /= np.linalg.norm(side, axis=1, keepdims=True)
        lin.append(np.concatenate([k[2:3], side, k]) @ m[:3, :3].T)
    lin = np.stack(lin)  # [V, 8, 3]
    origin = torch.as_tensor(np.stack([m[:3, 3] for m in c2g]), **f32)  # [V, 3]
    half = 0.5 * VOXEL_SIZE

    # --- Cull: outside the frustum (bounding sphere), or no open face turned to the camera.
    n = surf.labels.numel()
    lin_t = torch.as_tensor(lin.reshape(-1, 3), **f32)
    shift = torch.as_tensor(np.einsum("vij,vj->vi", lin, np.stack([m[:3, 3] for m in c2g])), **f32)
    proj = (lin_t @ surf.centre).view(n_views, 8, n).sub_(shift[:, :, None])  # maps of centre - origin
    rad = half * np.sqrt(3.0)
    inside = proj[:, 0] > NEAR - rad
    for row in range(1, 5):
        inside &= proj[:, row] > -rad
    facing = torch.zeros((n_views, n), dtype=torch.uint8, device=dev)
    for a in range(3):  # camera beyond the -a face (offset > half) or the +a face
        c, o_a = surf.centre[a][None], origin[:, a, None]
        facing |= (c > o_a + half).to(torch.uint8) << (2 * a)
        facing |= (c < o_a - half).to(torch.uint8) << (2 * a + 1)
    front = surf.exposed[None] & facing
    keep = (inside & (front != 0)).nonzero()
    if keep.numel() == 0:
        return
    kv, kn = keep[:, 0].contiguous(), keep[:, 1].contiguous()  # view, surface index
    front = front.view(-1).index_select(0, kv * n + kn)

    # --- Footprint: pixel bounding box of the projected front-facing open faces.
    at = kv * (8 * n) + kn
    flat = proj.view(-1)
    offs = torch.as_tensor(lin[:, 5:] @ (_CORNER_SIGNS * half).T, **f32)  # [V, 3, 8] corner offsets
    offs = offs.reshape(n_views, 24).T.contiguous().index_select(1, kv).view(3, 8, -1)
    cu, cv, cz = (flat.index_select(0, at + (5 + i) * n)[None] + offs[i] for i in range(3))  # [8, M]
    behind = cz < NEAR
    cmask = (front[None, :] & torch.as_tensor(_CORNER_FACES, device=dev)[:, None]) != 0  # [8, M]
    zc = cz.clamp(min=NEAR)
    u, v = cu / zc, cv / zc
    ok = cmask & ~behind
    inf = torch.tensor(float("inf"), **f32)
    umin = torch.where(ok, u, inf).amin(0)
    umax = torch.where(ok, u, -inf).amax(0)
    vmin = torch.where(ok, v, inf).amin(0)
    vmax = torch.where(ok, v, -inf).amax(0)
    n_behind = behind.sum(0)
    straddle = ((n_behind > 0) & (n_behind < 8)).nonzero().squeeze(1)
    if straddle.numel():
        # Clip by the near plane: the clipped box's vertices are its corners in front of the plane
        # and the points where its edges cross the plane; their projection bounds the footprint.
        edges = torch.as_tensor(_EDGES, device=dev)
        cs = torch.stack([cu, cv, cz]).index_select(2, straddle)  # [3, 8, S]
        a, b = cs.index_select(1, edges[:, 0]), cs.index_select(1, edges[:, 1])  # [3, 12, S]
        cross = (a[2] < NEAR) != (b[2] < NEAR)
        t = (NEAR - a[2]) / torch.where(cross, b[2] - a[2], torch.ones_like(a[2]))
        pts = torch.cat([cs, a + t * (b - a)], dim=1)  # [3, 20, S] homogeneous pixels
        okp = torch.cat([~behind.index_select(1, straddle), cross], dim=0)
        pz = pts[2].clamp(min=NEAR)
        pu, pv = pts[0] / pz, pts[1] / pz
        umin[straddle] = torch.where(okp, pu, inf).amin(0)
        umax[straddle] = torch.where(okp, pu, -inf).amax(0)
        vmin[straddle] = torch.where(okp, pv, inf).amin(0)
        vmax[straddle] = torch.where(okp, pv, -inf).amax(0)
    # Pixels whose centre (i + 0.5) lies in the box, widened by a hair; the slab test decides.
    eps = 1e-3
    u0 = torch.ceil(umin - (0.5 + eps)).clamp_(0, w).to(torch.int64)
    u1 = torch.floor(umax - (0.5 - eps)).clamp_(-1, w - 1).to(torch.int64)
    v0 = torch.ceil(vmin - (0.5 + eps)).clamp_(0, h).to(torch.int64)
    v1 = torch.floor(vmax - (0.5 - eps)).clamp_(-1, h - 1).to(torch.int64)
    nz_ = ((u1 >= u0) & (v1 >= v0)).nonzero().squeeze(1)
    if nz_.numel() == 0:
        return
    # Near to far by the voxel's nearest corner depth, so nearer voxels fill the z-buffer first.
    zmin, order = cz.amin(0).clamp_(min=NEAR).index_select(0, nz_).sort()
    nz_ = nz_.index_select(0, order)
    sid, view = kn.index_select(0, nz_), kv.index_select(0, nz_)
    # Per voxel: footprint (u0, u1, v0, v1), surface index, view; box relative to its camera, zmin.
    ints = torch.cat([torch.stack([u0, u1, v0, v1]).index_select(1, nz_), sid[None], view[None]])
    cam_o = origin.T.index_select(1, view)
    floats = torch.cat([surf.lo.index_select(1, sid) - cam_o, surf.hi.index_select(1, sid) - cam_o,
                        zmin[None]])

    # --- Expand (voxel, pixel) pairs; nearest hit per pixel via a packed key. Rounds of about
    # PAIRS_PER_ROUND pairs per view, near to far; between rounds, voxels whose whole footprint
    # already holds nearer hits are dropped (hierarchical max-depth test; exact: such a voxel
    # can win no pixel).
    rots = np.ascontiguousarray(np.stack([m[:3, :3] for m in c2g]), dtype=np.float64)
    invd = list(_inverse_rays(np.stack(ks).tobytes(), rots.tobytes(), w, h, str(dev)))  # 3 x [V*H*W]
    zbuf = torch.full((n_views * hw,), _NO_HIT, dtype=torch.int64, device=dev)
    budget = max(PAIRS_PER_ROUND * n_views, 1)
    while ints.shape[1]:
        u0, u1, v0, v1, sid, view = ints
        bw, bh = u1 - u0 + 1, v1 - v0 + 1
        cnt = bw * bh
        cum = cnt.cumsum(0)
        total = int(cum[-1])
        upto = total if total <= 2 * budget else budget  # finish in one go when little is left
        base = view * hw + v0 * w + u0
        start, m = 0, len(cnt)
        while start < m:
            before = int(cum[start - 1]) if start else 0
            if before >= upto:
                break
            stop = torch.tensor(before + min(PAIRS_PER_CHUNK, upto - before), device=dev)
            end = max(int(torch.searchsorted(cum, stop, right=True)), start + 1)
            sl = slice(start, end)
            _splat_chunk(zbuf, invd, list(floats[:6, sl]), bw[sl], bh[sl], cnt[sl], base[sl], sid[sl],
                         int(cum[end - 1]) - before, w)
            start = end
        if start >= m:
            break
        ints, floats = ints[:, start:], floats[:, start:]
        alive = _maybe_visible(zbuf, ints, floats[6], n_views, w, h).nonzero().squeeze(1)
        ints, floats = ints.index_select(1, alive), floats.index_select(1, alive)

    # --- Resolve: label of the winning voxel and its entry depth (camera z) from the key.
    hit = zbuf != _NO_HIT
    win = torch.where(hit, zbuf & ((1 << _VID_BITS) - 1), 0)  # surface index
    labels.copy_(torch.where(hit, surf.labels.index_select(0, win), FREE))
    z = (zbuf >> _VID_BITS).to(torch.float32).mul_(1.0 / _DEPTH_SCALE).clamp_(min=NEAR)
    depth.copy_(torch.where(hit, z, float("inf")))


def _maybe_visible(zbuf: torch.Tensor, ints: torch.Tensor, zmin: torch.Tensor, n_views: int, w: int,
                   h: int) -> torch.Tensor:
    """False for voxels whose footprint holds only hits nearer than the voxel's nearest point."""
    zd = (zbuf >> _VID_BITS).to(torch.float32) * (1.0 / _DEPTH_SCALE)  # no hit: ~1e8 m, never hides
    # Max-depth pyramid per view: level L texel (i, j) covers pixels [i 2^L, (i+1) 2^L) x [j 2^L, (j+1) 2^L).
    img = zd.view(n_views, 1, h, w)
    levels, dims = [zd], [(h, w)]
    while img.shape[-1] > 1 or img.shape[-2] > 1:
        img = F.max_pool2d(img, 2, ceil_mode=True)
        levels.append(img.reshape(-1))
        dims.append(tuple(img.shape[-2:]))
    dev = zbuf.device
    offsets = torch.tensor(np.cumsum([0] + [lv.numel() for lv in levels[:-1]]), device=dev)
    widths = torch.tensor([dw for _, dw in dims], device=dev)
    areas = torch.tensor([dh * dw for dh, dw in dims], device=dev)
    pyramid = torch.cat(levels)
    u0, u1, v0, v1, _, view = ints
    # The smallest level with span < 2^L, where a footprint touches at most 2 x 2 texels.
    span = torch.maximum(u1 - u0, v1 - v0).to(torch.float32)
    lvl = (span.log2().floor() + 1).clamp_(0, len(levels) - 1).to(torch.int64)
    lw = widths.index_select(0, lvl)
    start = offsets.index_select(0, lvl) + view * areas.index_select(0, lvl)
    a0, a1 = u0 >> lvl, u1 >> lvl
    b0, b1 = (v0 >> lvl) * lw + start, (v1 >> lvl) * lw + start
    far = torch.maximum(
        torch.maximum(pyramid.index_select(0, b0 + a0), pyramid.index_select(0, b0 + a1)),
        torch.maximum(pyramid.index_select(0, b1 + a0), pyramid.index_select(0, b1 + a1)),
    )
    return ~(far < zmin - 1e-4)


def _splat_chunk(zbuf, invd, box, bw, bh, cnt, base, sid, total: int, w: int) -> None:
    """Test every (voxel, pixel) pair of these footprints; keep the nearest hit per pixel."""
    dev = zbuf.device
    m = len(cnt)
    first = torch.cumsum(cnt, 0) - cnt  # first pair of each voxel
    # Voxel of every pair: a running count of voxel starts (cheaper than repeat_interleave).
    mark = torch.zeros(total, dtype=torch.int64, device=dev)
    mark.index_fill_(0, first[1:], 1)
    pid = torch.cumsum(mark, 0)
    # Pixel of every pair without a division: +1 along a footprint row and a jump at the start of
    # each row (one entry per row, far fewer than pairs), then a running sum.
    n_rows = int(bh.sum())
    row_vox = torch.repeat_interleave(torch.arange(m, device=dev), bh, output_size=n_rows)
    r = torch.arange(n_rows, device=dev) - (torch.cumsum(bh, 0) - bh).index_select(0, row_vox)
    row_bw = bw.index_select(0, row_vox)
    row_pix = base.index_select(0, row_vox) + r * w
    row_at = first.index_select(0, row_vox) + r * row_bw
    jump = row_pix.clone()
    jump[1:] -= row_pix[:-1] + row_bw[:-1] - 1
    jump[0] += 1  # the running sum below starts at 1
    inc = torch.ones(total, dtype=torch.int64, device=dev)
    inc.index_copy_(0, row_at, jump)
    pix = torch.cumsum(inc, 0).sub_(1)
    t_in, t_out = _slab([b.index_select(0, pid) for b in box], [d.index_select(0, pix) for d in invd])
    miss = ~((t_in <= t_out) & (t_out > NEAR))  # NaN (a ray lying in a face plane) misses too
    key = (t_in.clamp_(min=0) * _DEPTH_SCALE).to(torch.int64).bitwise_left_shift_(_VID_BITS)
    key.bitwise_or_(sid.index_select(0, pid)).masked_fill_(miss, _NO_HIT)
    zbuf.scatter_reduce_(0, pix, key, reduce="amin")


def colorize(render: CameraRender) -> np.ndarray:
    """[V, H, W, 3] uint8 RGB: the project palette, darker with depth; background dark."""
    labels = render.labels.detach().cpu().numpy()
    depth = render.depth.detach().cpu().numpy()
    hit = labels != FREE
    rgb = PALETTE[np.minimum(labels, len(PALETTE) - 1)].astype(np.float32)
    shade = 1.0 / (1.0 + np.where(hit, depth, 0.0) / 60.0)
    out = np.where(hit[..., None], rgb * shade[..., None], BACKGROUND.astype(np.float32))
    return out.clip(0, 255).astype(np.uint8)


def ring_grid(images, names: Sequence[str]) -> np.ndarray:
    """Six views [V, H, W, C] (named by camera) as one 2 x 3 mosaic in nuScenes ring order."""
    images = np.asarray(images)
    names = list(names)
    if len(names) != len(images):
        raise BadInput(f"ring_grid: {len(images)} images but {len(names)} camera names")
    missing = [n for row in RING_ORDER for n in row if n not in names]
    if missing:
        raise BadInput(f"ring_grid: no view for {', '.join(missing)}; a ring needs all six nuScenes cameras")
    rows = [np.concatenate([images[names.index(n)] for n in row], axis=1) for row in RING_ORDER]
    return np.concatenate(rows, axis=0)


MIN_LABELLED_SIDE = 64  # px: smaller views (test sizes) are left unlabelled


def labelled_grid(images, names: Sequence[str], t_s: float | None = None) -> np.ndarray:
    """The ring grid of six views (or the views side by side when they are not the six nuScenes
    cameras) with each view's name in its corner and the time in the top-right one (views under
    MIN_LABELLED_SIDE rows are left unlabelled)."""
    from PIL import Image, ImageDraw

    from ..data.preview import font, label

    images = np.asarray(images)
    names = list(names)
    ring = len(names) == 6 and all(n in names for row in RING_ORDER for n in row)
    grid = ring_grid(images, names) if ring else np.concatenate(list(images), 1)
    order = [n for row in RING_ORDER for n in row] if ring else names
    cols = 3 if ring else len(names)
    h, w = images.shape[1:3]
    if h < MIN_LABELLED_SIDE or w < 2 * MIN_LABELLED_SIDE:
        return grid  # a label would cover the whole view
    img = Image.fromarray(np.ascontiguousarray(grid))
    draw = ImageDraw.Draw(img)
    size = max(10, min(16, h // 16))
    for k, n in enumerate(order):
        label(draw, ((k % cols) * w + 6, (k // cols) * h + 4), n.replace("CAM_", ""), size)
    if t_s is not None:
        text = f"t = {t_s:.2f} s"
        width = draw.textlength(text, font=font(size))
        label(draw, (img.width - width - 8, 4), text, size)
    return np.asarray(img)


__all__ = ["CameraRender", "RING_ORDER", "colorize", "labelled_grid", "render_cameras", "ring_grid", "surface_voxels"]
