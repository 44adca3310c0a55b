"""Named routes on scenes without a road graph: lanes and junctions read from the observed driveable
surface (pipelines/occworld/surface_routes.py)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from geniedrive.pipelines.data.occ3d import CLASS_INDEX, FREE, GRID_SHAPE, RANGE_MIN, VOXEL_SIZE
from geniedrive.pipelines.errors import BadInput
from geniedrive.pipelines.metrics.safety import ego_safety
from geniedrive.pipelines.occworld.surface_routes import FRONT, STOP_DECEL, surface_route
from geniedrive.pipelines.occworld.trajectories import poses_of
from tests.helpers import run_cli, write_occ_folder

GROUND = 2  # the voxel layer at z = 0


def _ix(x: float) -> int:
    return int(round((x - RANGE_MIN[0]) / VOXEL_SIZE))


def _iy(y: float) -> int:
    return int(round((y - RANGE_MIN[1]) / VOXEL_SIZE))


def _street(branch_left: bool = True) -> np.ndarray:
    """A two-lane road along x (y from -1.75 to 5.25 m: the ego in the right lane at y = 0),
    sidewalk elsewhere, and a side road to the left between x = 20 and 28 m."""
    occ = np.full(GRID_SHAPE, FREE, np.uint8)
    occ[:, :, GROUND] = CLASS_INDEX["sidewalk"]
    occ[:, _iy(-1.75):_iy(5.25), GROUND] = CLASS_INDEX["driveable_surface"]
    if branch_left:
        occ[_ix(20.0):_ix(28.0), _iy(5.25):, GROUND] = CLASS_INDEX["driveable_surface"]
    return occ


def _heading_deg(xyyaw: np.ndarray) -> float:
    return math.degrees(math.atan2(math.sin(xyyaw[-1, 2]), math.cos(xyyaw[-1, 2])))


def _on_road(occ: np.ndarray, xyyaw: np.ndarray) -> list[bool]:
    return [ego_safety(occ, p)["on_driveable"] in (True, None) for p in poses_of(xyyaw)]


def test_turn_left_takes_the_side_road_and_the_others_stay_in_lane():
    occ = _street()
    left = surface_route(occ, "turn_left", 8.0, 12, "frame 3")
    assert abs(_heading_deg(left) - 90.0) < 5.0  # turned into the side road
    assert 20.0 < left[-1, 0] < 28.0 and left[-1, 1] > 6.0  # in it, past the main road's far edge
    assert all(_on_road(occ, left))
    assert not any(ego_safety(occ, p)["collision"] for p in poses_of(left))
    straight = surface_route(occ, "straight", 8.0, 8, "frame 3")
    assert np.allclose(straight[:, 1], 0.0, atol=0.05) and np.allclose(straight[:, 2], 0.0, atol=1e-3)
    assert straight[-1, 0] == pytest.approx(8.0 * 4.0, abs=0.3)
    lc = surface_route(occ, "lane_change_left", 8.0, 12, "frame 3")
    assert lc[-1, 1] == pytest.approx(3.5, abs=0.1) and abs(lc[-1, 2]) < 0.01  # one lane over, straight again
    stop = surface_route(occ, "stop", 9.0, 10, "frame 3")
    assert stop[-1, 0] == pytest.approx(9.0 ** 2 / (2 * STOP_DECEL), abs=0.3) and stop[-1, 0] == stop[-2, 0]


def test_a_manoeuvre_the_surface_does_not_have_names_the_ones_it_has():
    occ = _street()
    for move in ("turn_right", "lane_change_right"):  # no road to the right of the ego's lane
        with pytest.raises(BadInput) as e:
            surface_route(occ, move, 8.0, 8, "frame 3 of 'town00'")
        msg = str(e.value)
        assert f"--traj {move}" in msg and "frame 3 of 'town00'" in msg
        assert "the routes it has: straight, turn_left, lane_change_left, stop" in msg
    with pytest.raises(BadInput, match="the routes it has: straight, lane_change_left, stop"):
        surface_route(_street(branch_left=False), "turn_left", 8.0, 8, "frame 3")


def test_ground_no_sensor_saw_does_not_end_a_route_but_a_kerb_does():
    occ = _street(branch_left=False)
    occ[_ix(15.0):, :, GROUND] = FREE  # nothing seen beyond 15 m: Occ3D leaves it free
    straight = surface_route(occ, "straight", 8.0, 10, "frame 3")
    assert straight[-1, 0] == pytest.approx(40.0, abs=0.3)  # straight on beyond what was seen
    occ[_ix(15.0):, :, GROUND] = CLASS_INDEX["sidewalk"]  # the road ends at a kerb 15 m ahead
    with pytest.raises(BadInput, match="the routes it has: stop"):
        surface_route(occ, "straight", 8.0, 10, "frame 3")


def test_a_car_standing_in_the_lane_is_stopped_behind():
    occ = _street()
    occ[_ix(15.0):_ix(19.6), _iy(-0.9):_iy(0.9), 3:7] = CLASS_INDEX["car"]
    for move in ("straight", "stop"):
        xyyaw = surface_route(occ, move, 10.0, 10, "frame 3")
        assert 15.0 - STOP_DECEL <= xyyaw[-1, 0] + FRONT <= 15.0 - 1.5, move  # its bumper about 2 m short
        assert not any(ego_safety(occ, p)["collision"] for p in poses_of(xyyaw)), move
        assert xyyaw[-1, 0] == xyyaw[-2, 0]  # standing
    # the lane change goes round it
    lc = surface_route(occ, "lane_change_left", 10.0, 10, "frame 3")
    assert lc[-1, 0] > 25.0 and not any(ego_safety(occ, p)["collision"] for p in poses_of(lc))


def test_forecast_on_an_occ_folder_scene_follows_its_surface(capsys, tmp_path):
    # the fixture's world: road everywhere (no edges, so no junction), a car moving beside the
    # ego's lane and a wall across the road 28 m ahead
    src = write_occ_folder(tmp_path / "export", scenes=1, frames=6)
    assert run_cli(capsys, "prepare-occ", "--source", "occ-folder", "--dataroot", src, "--name", "o", "--no-previews").code == 0
    r = run_cli(capsys, "forecast", "--dataset", "o", "--scene", "town00", "--traj", "turn_left", "--frame", "0", "--no-previews")
    assert r.code == 2 and len(r.err_lines) == 1, r.err
    assert "--traj turn_left: the driveable surface at frame 0 of 'town00' has no such route" in r.err
    assert "the routes it has: straight, lane_change_left, lane_change_right, stop" in r.err and "fixed_turn_left" in r.err
    r = run_cli(capsys, "--json", "forecast", "--dataset", "o", "--scene", "town00", "--traj", "straight", "--frame", "0",
                "--horizon", "12", "--speed", "10", "--no-previews", "--no-adherence")
    assert r.code == 0, r.err
    out = r.json()
    assert out["trajectory"] == {"kind": "surface_route", "name": "straight", "speed": 10.0}
    frames = json.loads((tmp_path / "ws" / "forecasts" / out["name"] / "frames.json").read_text())["frames"]
    x = [f["ego_in_start"][0][3] for f in frames]
    assert 28.0 - STOP_DECEL <= x[-1] + FRONT <= 28.0 - 1.5 and x[-1] == x[-2]  # stopped short of the wall
    assert out["safety"]["observed"]["collision_frames"] == []
