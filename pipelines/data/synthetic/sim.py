"""The traffic simulator: every agent moves along its own path, collision-free by construction.

One compiled loop (numba) over fixed time steps. Per step and agent:

1. Desired speed = min(own cruise speed, the path's curve-aware limit).
2. Leader: sample the path ahead of the front bumper and find the first sample that lies inside
   another agent's box widened by half this agent's width (a forward corridor check). Intelligent
   Driver Model (IDM) acceleration towards that gap.
3. Zones: before entering an intersection (or a crosswalk) the agent checks its light and that no
   conflicting agent is inside; if it may not enter and can still stop, the stop line becomes a
   standing leader.
4. Integrate speed and arc length.
5. Guarantee pass: boxes at the proposed poses are tested pairwise (separating axes); an agent
   whose proposed box overlaps another is held at its previous pose (speed 0) and the test is
   repeated until nothing changes. Previous poses never overlap, so holding everyone is always a
   valid fixed point: no two boxes ever overlap, whatever the controller did.

Agent kinds: vehicle and pedestrian (controlled), trailer (rigidly follows its tractor on the
tractor's path; trailers only exist on straight routes), static (parked, cones, barriers...).

The compiled functions are cached on disk (numba `cache=True`). A cache entry records the module's
import name and is keyed on this file's size and time, so this file changed with the move to
`geniedrive.pipelines` (a checkout's caches from `pipelines.` would otherwise be loaded and fail).
"""

from __future__ import annotations

import math

import numba
import numpy as np

VEHICLE, PEDESTRIAN, TRAILER, STATIC = 0, 1, 2, 3
SAFETY_MARGIN = 0.05  # m: boxes are kept at least this far apart on some separating axis
MAX_SAMPLES = 256


@numba.njit(cache=True, nogil=True)
def _interp(arr, off, n, s, ds):  # pragma: no cover - jit
    f = s / ds
    if f <= 0.0:
        return arr[off]
    if f >= n - 1:
        return arr[off + n - 1]
    k = int(f)
    t = f - k
    return arr[off + k] + (arr[off + k + 1] - arr[off + k]) * t


@numba.njit(cache=True, nogil=True)
def _body(px, py, pyaw, off, n, s, ds, e):  # pragma: no cover - jit
    """Box pose at arc length s: axles on the path at s -+ e, centre between them, heading along
    the chord (e = 0: the path point and heading)."""
    if e <= 0.0:
        return _interp(px, off, n, s, ds), _interp(py, off, n, s, ds), _interp(pyaw, off, n, s, ds)
    xf = _interp(px, off, n, s + e, ds)
    yf = _interp(py, off, n, s + e, ds)
    xr = _interp(px, off, n, s - e, ds)
    yr = _interp(py, off, n, s - e, ds)
    return (xf + xr) / 2, (yf + yr) / 2, math.atan2(yf - yr, xf - xr)


@numba.njit(cache=True, nogil=True)
def boxes_overlap(x1, y1, yaw1, hl1, hw1, x2, y2, yaw2, hl2, hw2, margin):  # pragma: no cover - jit
    """Separating-axis test of two oriented rectangles (centre, yaw, half length, half width):
    True unless some axis separates them by more than `margin`."""
    c1, s1 = math.cos(yaw1), math.sin(yaw1)
    c2, s2 = math.cos(yaw2), math.sin(yaw2)
    dx, dy = x2 - x1, y2 - y1
    for a in range(4):
        if a == 0:
            ax, ay = c1, s1
        elif a == 1:
            ax, ay = -s1, c1
        elif a == 2:
            ax, ay = c2, s2
        else:
            ax, ay = -s2, c2
        d = abs(dx * ax + dy * ay)
        r1 = hl1 * abs(c1 * ax + s1 * ay) + hw1 * abs(-s1 * ax + c1 * ay)
        r2 = hl2 * abs(c2 * ax + s2 * ay) + hw2 * abs(-s2 * ax + c2 * ay)
        if d > r1 + r2 + margin:
            return False
    return True


@numba.njit(cache=True, nogil=True)
def simulate(
    kind, parent, child, trail_off, path_id, path_off, path_n, px, py, pyaw, pvlim, ds,
    zone_off, zone_n, z0, z1, znode, zapp,
    length, width, half_base, v0, amax, bcomf, s0, thead, look, prio,
    s_init, v_init, stat_x, stat_y, stat_yaw,
    cyc, loff, gs, ge, ws, we,
    dt, steps, rec_every,
    out_x, out_y, out_yaw, out_v, out_s, ego_trace, stats, held_n, held_by,
):  # pragma: no cover - jit
    """Run `steps` steps of `dt`; record every `rec_every` steps into out_* [frames, N].

    ego_trace[k] = arc length of agent 0 at step k. stats = [agent-steps held by the guarantee
    pass, pairs found overlapping in it]; held_n[i] = steps agent i was held, held_by[i] = the
    agent whose box it last had to give way to (diagnostics).
    """
    n = kind.shape[0]
    n_nodes = cyc.shape[0]
    s = s_init.copy()
    v = v_init.copy()
    x = np.empty(n)
    y = np.empty(n)
    yaw = np.empty(n)
    nxp = np.empty(n)
    nyp = np.empty(n)
    nyaw = np.empty(n)
    s_new = np.empty(n)
    v_new = np.empty(n)
    acc = np.zeros(n)
    held = np.zeros(n, np.bool_)
    hdiag = np.sqrt(length * length + width * width) / 2
    occ = np.zeros((n_nodes, 5), np.int64)
    qx = np.empty(MAX_SAMPLES)
    qy = np.empty(MAX_SAMPLES)
    qyaw = np.empty(MAX_SAMPLES)
    frame = 0
    for step in range(steps + 1):
        t = step * dt
        # Poses on the paths.
        for i in range(n):
            if kind[i] == STATIC:
                x[i], y[i], yaw[i] = stat_x[i], stat_y[i], stat_yaw[i]
            else:
                p = path_id[i]
                x[i], y[i], yaw[i] = _body(px, py, pyaw, path_off[p], path_n[p], s[i], ds, half_base[i])
        ego_trace[step] = s[0]
        if step % rec_every == 0:
            for i in range(n):
                out_x[frame, i] = x[i]
                out_y[frame, i] = y[i]
                out_yaw[frame, i] = yaw[i]
                out_v[frame, i] = v[i] if kind[i] != TRAILER else v[parent[i]]
                out_s[frame, i] = s[i]
            frame += 1
        if step == steps:
            break
        # Who is inside which intersection / crosswalk.
        occ[:, :] = 0
        for i in range(n):
            if kind[i] == STATIC:
                continue
            p = path_id[i]
            for z in range(zone_off[p], zone_off[p] + zone_n[p]):
                if s[i] + length[i] / 2 > z0[z] and s[i] - length[i] / 2 < z1[z]:
                    slot = zapp[z] if zapp[z] >= 0 else 4
                    occ[znode[z], slot] += 1
        # Controllers.
        for i in range(n):
            if kind[i] != VEHICLE and kind[i] != PEDESTRIAN:
                continue
            p = path_id[i]
            o, m = path_off[p], path_n[p]
            vi = v[i]
            sf = s[i] + length[i] / 2
            vd = min(v0[i], _interp(pvlim, o, m, s[i], ds))
            vd = max(vd, 0.3)
            free = 1.0 - (vi / vd) ** 4
            a = amax[i] * free
            sq = math.sqrt(amax[i] * bcomf[i])
            # Forward corridor.
            is_ped = kind[i] == PEDESTRIAN
            step_q = 0.25 if is_ped else 0.5
            lk = look[i] if is_ped else min(look[i], max(12.0, vi * 3.5 + 12.0))
            nq = min(int(lk / step_q) + 1, MAX_SAMPLES)
            for k in range(nq):
                sk = sf + k * step_q
                qx[k] = _interp(px, o, m, sk, ds)
                qy[k] = _interp(py, o, m, sk, ds)
                qyaw[k] = _interp(pyaw, o, m, sk, ds)
            # Walkers turn on the spot at corners, so their whole footprint (half diagonal)
            # must stay clear; vehicles only need their half width.
            infl = min(hdiag[i] + 0.1, 0.6) if is_ped else width[i] / 2 + 0.3
            gap = 1e9
            vlead = 0.0
            reach = lk + length[i] / 2 + infl
            for j in range(n):
                if j == i or j == child[i]:
                    continue
                dx = x[j] - x[i]
                dy = y[j] - y[i]
                rr = reach + hdiag[j]
                if dx * dx + dy * dy > rr * rr:
                    continue
                cj, sj = math.cos(yaw[j]), math.sin(yaw[j])
                hl = length[j] / 2 + infl
                hw = width[j] / 2 + infl
                for k in range(nq):
                    d = k * step_q
                    if d >= gap:
                        break
                    ex = qx[k] - x[j]
                    ey = qy[k] - y[j]
                    if abs(ex * cj + ey * sj) <= hl and abs(-ex * sj + ey * cj) <= hw:
                        gap = d
                        vj = v[j] if kind[j] != TRAILER else v[parent[j]]
                        if kind[j] == STATIC:
                            vj = 0.0
                        vlead = vj * math.cos(yaw[j] - qyaw[k])
                        break
            if is_ped:
                # Crossing walkers: give way *before* the crossing point to a higher-priority
                # walker whose next 2.5 s of path cross ours, unless we are already on it. Only
                # the lower-priority one yields, so two walkers never wait for each other.
                for j in range(n):
                    if kind[j] != PEDESTRIAN or prio[j] >= prio[i]:
                        continue
                    dx = x[j] - x[i]
                    dy = y[j] - y[i]
                    if dx * dx + dy * dy > (lk + 5.0) ** 2:
                        continue
                    if math.cos(yaw[j] - yaw[i]) > 0.85:
                        continue  # walking the same way: the corridor handles following
                    pj = path_id[j]
                    oj, mj = path_off[pj], path_n[pj]
                    sweep = length[j] + v[j] * 2.5
                    nsw = min(int(sweep / 0.25) + 1, 64)
                    clear = (width[i] + width[j]) / 2 + 0.25
                    for k in range(nq):
                        d = k * step_q
                        if d >= gap:
                            break
                        hit = False
                        for q in range(nsw):
                            sq_ = s[j] - length[j] / 2 + q * 0.25
                            ex = qx[k] - _interp(px, oj, mj, sq_, ds)
                            ey = qy[k] - _interp(py, oj, mj, sq_, ds)
                            if ex * ex + ey * ey < clear * clear:
                                hit = True
                                break
                        if hit:
                            if d > 0.3:
                                gap = d
                                vlead = 0.0
                            break
            if gap < 1e8:
                g = max(gap, 0.05)
                dv = vi - max(vlead, 0.0)
                sstar = s0[i] + max(0.0, vi * thead[i] + vi * dv / (2 * sq))
                a = min(a, amax[i] * (free - (sstar / g) ** 2))
            # Zone gating: the first zone not yet left.
            for z in range(zone_off[p], zone_off[p] + zone_n[p]):
                if s[i] - length[i] / 2 >= z1[z]:
                    continue
                if sf > z0[z]:
                    break  # already inside: committed
                dist = z0[z] - sf
                if dist > 80.0:
                    break
                nd = znode[z]
                clock = (t + loff[nd]) % cyc[nd]
                ap = zapp[z]
                allowed = True
                if ap >= 0:
                    if not (gs[nd, ap] <= clock < ge[nd, ap]):
                        allowed = False
                    else:
                        for b in range(5):
                            if b != ap and occ[nd, b] > 0:
                                allowed = False
                    can_stop = vi * vi / (2 * 5.0) <= dist + 0.5
                    if allowed and dist < max(15.0, vi * vi / 6.0 + 5.0):
                        # Do not block the box: enter only if the lane beyond the intersection
                        # (up to the next one) has room for us after everyone already on it or
                        # on our way through the intersection.
                        sa = z0[z]
                        sb = z0[z + 1] if z + 1 < zone_off[p] + zone_n[p] else z1[z] + 60.0
                        sb = min(sb, z1[z] + 120.0, (m - 1) * ds)
                        seg = sb - z1[z]
                        nr = min(int(sb - sa) + 1, MAX_SAMPLES)
                        for k in range(nr):
                            qx[k] = _interp(px, o, m, sa + k, ds)
                            qy[k] = _interp(py, o, m, sa + k, ds)
                        mx_ = _interp(px, o, m, (sa + sb) / 2, ds)
                        my_ = _interp(py, o, m, (sa + sb) / 2, ds)
                        half_span = (sb - sa) / 2
                        used = length[i] + 4.0
                        for j in range(n):
                            if j == i or j == child[i] or kind[j] == PEDESTRIAN or kind[j] == STATIC:
                                continue
                            dx = x[j] - mx_
                            dy = y[j] - my_
                            rr = half_span + hdiag[j] + 1.0
                            if dx * dx + dy * dy > rr * rr:
                                continue
                            cj, sj = math.cos(yaw[j]), math.sin(yaw[j])
                            for k in range(nr):
                                ex = qx[k] - x[j]
                                ey = qy[k] - y[j]
                                if abs(ex * cj + ey * sj) <= length[j] / 2 + 0.5 and abs(-ex * sj + ey * cj) <= width[j] / 2 + 0.5:
                                    used += length[j] + 4.0  # standing gaps are ~s0 + corridor margin
                                    break
                        if used > seg:
                            allowed = False
                else:
                    need = (z1[z] - z0[z]) / max(v0[i], 0.5) + 1.0
                    if not (ws[nd] <= clock < we[nd] - need):
                        allowed = False
                    for b in range(4):
                        if occ[nd, b] > 0:
                            allowed = False
                    can_stop = True
                if not allowed and can_stop:
                    g = max(dist, 0.05)
                    sstar = 0.3 + max(0.0, vi * thead[i] + vi * vi / (2 * sq))
                    a = min(a, amax[i] * (free - (sstar / g) ** 2))
                break
            acc[i] = max(a, -8.0 if not is_ped else -3.0)
        # Proposed motion.
        for i in range(n):
            if kind[i] != VEHICLE and kind[i] != PEDESTRIAN:
                continue
            p = path_id[i]
            a = min(acc[i], amax[i])
            vn = v[i] + a * dt
            if vn < 0.0:
                dsn = v[i] * v[i] / (2 * -a) if a < 0 else 0.0
                vn = 0.0
            else:
                dsn = (v[i] + vn) / 2 * dt
            sn = s[i] + dsn
            s_max = (path_n[p] - 1) * ds - length[i] / 2 - look[i] - 1.0
            if sn > s_max:
                sn = max(s[i], s_max)
                vn = 0.0
            s_new[i] = sn
            v_new[i] = vn
        for i in range(n):
            if kind[i] == TRAILER:
                s_new[i] = s_new[parent[i]] - trail_off[i]
                v_new[i] = v_new[parent[i]]
            elif kind[i] == STATIC:
                s_new[i] = s[i]
                v_new[i] = 0.0
        # Guarantee pass.
        for i in range(n):
            held[i] = kind[i] == STATIC
            if kind[i] == STATIC:
                nxp[i], nyp[i], nyaw[i] = x[i], y[i], yaw[i]
            else:
                p = path_id[i]
                nxp[i], nyp[i], nyaw[i] = _body(px, py, pyaw, path_off[p], path_n[p], s_new[i], ds, half_base[i])
        changed = True
        while changed:
            changed = False
            for i in range(n):
                for j in range(i + 1, n):
                    if held[i] and held[j]:
                        continue
                    dx = nxp[j] - nxp[i]
                    dy = nyp[j] - nyp[i]
                    rr = hdiag[i] + hdiag[j] + SAFETY_MARGIN
                    if dx * dx + dy * dy > rr * rr:
                        continue
                    if not boxes_overlap(nxp[i], nyp[i], nyaw[i], length[i] / 2, width[i] / 2,
                                         nxp[j], nyp[j], nyaw[j], length[j] / 2, width[j] / 2, SAFETY_MARGIN):
                        continue
                    stats[1] += 1
                    gi = parent[i] if kind[i] == TRAILER else i
                    gj = parent[j] if kind[j] == TRAILER else j
                    if gi == gj:
                        victim = gi
                    elif held[gi] and not held[gj]:
                        victim = gj
                    elif held[gj] and not held[gi]:
                        victim = gi
                    elif held[gi] and held[gj]:
                        continue  # cannot happen: previous poses never overlap
                    else:
                        victim = gi if prio[gi] > prio[gj] else gj
                    held_by[victim] = gj if victim == gi else gi
                    for w in (victim, child[victim]):
                        if w < 0:
                            continue
                        held[w] = True
                        held_n[w] += 1
                        nxp[w], nyp[w], nyaw[w] = x[w], y[w], yaw[w]
                        s_new[w] = s[w]
                        v_new[w] = 0.0
                    stats[0] += 1
                    changed = True
        for i in range(n):
            s[i] = s_new[i]
            v[i] = v_new[i]
    return frame
