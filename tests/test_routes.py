"""Named trajectories follow the road graph of synthetic scenes (pipelines/data/synthetic/routes.py)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from geniedrive.pipelines.data.dataset import OccDataset
from geniedrive.pipelines.data.prepare import PrepareRequest, prepare_occ
from geniedrive.pipelines.data.synthetic.routes import ROUTES, locate, route_path, scene_roads, synthetic_origin
from geniedrive.pipelines.store import Workspace
from tests.helpers import on_a_carriageway, run_cli

START = 3


@pytest.fixture(scope="module")
def scenes(tmp_path_factory):
    root = tmp_path_factory.mktemp("routes")
    prepare_occ(Workspace.at(root / "ws"), PrepareRequest(scenes=8, frames=6, seed=11, previews=False, name="r"))
    return OccDataset.open("r", root / "ws")


def test_every_route_stays_on_the_road_and_turns_turn_by_90_degrees(scenes):
    made = {m: 0 for m in ROUTES}
    located = 0
    for name in scenes.scene_names():
        scene = scenes.scene(name)
        roads = scene_roads(*synthetic_origin(scene))
        x, y, yaw = roads.to_map(scene.poses[START])
        at = locate(roads.net, x, y, yaw)
        if at is None:  # inside a junction at the start frame: no lane to follow from there
            continue
        located += 1
        for move in ROUTES:
            route = route_path(roads.net, at, np.array([x, y]), yaw, move, 150.0, 8.0)
            if route is None:
                continue
            made[move] += 1
            path = route[0]
            assert on_a_carriageway(roads.net, path.x, path.y).all(), (name, move)
            if move in ("turn_left", "turn_right"):
                s_turn = next(s for s, kind, _ in path.events if kind.endswith("_turn"))
                k = min(int((s_turn + 40.0) / 0.25), len(path.yaw) - 1)  # 40 m past the junction's entry
                turned = math.degrees(math.atan2(math.sin(path.yaw[k] - yaw), math.cos(path.yaw[k] - yaw)))
                assert abs(turned - (90 if move == "turn_left" else -90)) < 20, (name, move, turned)
    assert located >= 6 and made["straight"] == made["stop"] == located, (located, made)
    assert made["turn_left"] >= 3 and made["turn_right"] >= 3, made


def test_a_route_that_does_not_exist_exits_2_naming_those_that_do(capsys, scenes, monkeypatch):
    monkeypatch.setenv("GDRIVE_WORKSPACE", str(scenes.root.parent.parent))
    for name in scenes.scene_names():
        scene = scenes.scene(name)
        roads = scene_roads(*synthetic_origin(scene))
        x, y, yaw = roads.to_map(scene.poses[START])
        at = locate(roads.net, x, y, yaw)
        if at is None:
            continue
        missing = [m for m in ROUTES if route_path(roads.net, at, np.array([x, y]), yaw, m, 100.0, 8.0) is None]
        if missing:
            break
    r = run_cli(capsys, "forecast", "--dataset", "r", "--scene", name, "--traj", missing[0], "--no-previews")
    assert r.code == 2 and len(r.err_lines) == 1, r.err
    assert f"--traj {missing[0]}: no such route" in r.err and "the routes that exist from there: straight" in r.err
    ok = run_cli(capsys, "--json", "forecast", "--dataset", "r", "--scene", name, "--traj", "turn_left" if missing[0] != "turn_left"
                 else "straight", "--horizon", "2", "--no-previews", "--no-adherence")
    assert ok.code == 0 and ok.json()["trajectory"]["kind"] == "route", ok.err
    shape = run_cli(capsys, "--json", "forecast", "--dataset", "r", "--scene", name, "--traj", "fixed_turn_left", "--horizon", "2",
                    "--no-previews", "--no-adherence")
    assert shape.code == 0 and shape.json()["trajectory"]["kind"] == "named", shape.err
