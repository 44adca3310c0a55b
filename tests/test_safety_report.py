"""The safety report of forecasts: the ego box against obstacle voxels and the driveable ground, per
frame in frames.json and the manifest, summarised in one warning line."""

from __future__ import annotations

import json
import math

import numpy as np

from geniedrive.pipelines.data.dataset import OccDataset
from geniedrive.pipelines.data.occ3d import CLASS_INDEX, FREE, GRID_SHAPE
from geniedrive.pipelines.geometry import planar_pose
from geniedrive.pipelines.metrics.safety import ego_safety, safety_line, summarise_safety
from tests.helpers import run_cli


def _road_world() -> np.ndarray:
    occ = np.full(GRID_SHAPE, FREE, np.uint8)
    occ[:, 90:110, 2] = CLASS_INDEX["driveable_surface"]  # a road along x, 8 m wide
    occ[:, 110:, 2] = CLASS_INDEX["sidewalk"]
    occ[125:136, 95:100, 3:7] = CLASS_INDEX["car"]  # a car 10-14 m ahead, y -2..0 m
    return occ


def test_ego_box_hits_what_lies_in_its_footprint_and_knows_its_ground():
    occ = _road_world()
    inst = np.zeros(GRID_SHAPE, np.uint16)
    inst[occ == CLASS_INDEX["car"]] = 7
    clear = ego_safety(occ, np.eye(4), inst, {7: "car_7"})
    assert not clear["collision"] and clear["on_driveable"] and clear["driveable_share"] == 1.0
    hit = ego_safety(occ, planar_pose(9.0, -1.0, 0.0), inst, {7: "car_7"})
    assert hit["collision"] and hit["instances"] == ["car_7"] and set(hit["classes"]) == {"car"}
    # beside the car, turned 90 degrees onto the sidewalk: no car, and off the road
    side = ego_safety(occ, planar_pose(0.0, 6.0, math.pi / 2), inst, {7: "car_7"})
    assert not side["collision"] and side["on_driveable"] is False and side["driveable_share"] < 0.5
    frames = [{"observed": clear}, {"observed": hit}, {"observed": hit}, {"observed": side}]
    summary = summarise_safety(frames)
    assert summary["observed"]["collision_frames"] == [2, 3] and summary["observed"]["off_road_frames"] == [4]
    assert not summary["ok"]
    line = safety_line(summary, 0.5)
    assert "overlaps car_7 at frames 2–3 (t = 1–1.5 s)" in line and "off the driveable surface at frame 4 (t = 2 s)" in line
    far = ego_safety(occ, planar_pose(60.0, 0.0, 0.0))
    assert far["footprint_in_grid"] == 0.0 and far["driveable_share"] is None and far["on_driveable"] is None


def test_a_waypoint_file_through_a_parked_car_reports_it(capsys, tmp_path):
    assert run_cli(capsys, "prepare-occ", "--scenes", "1", "--frames", "10", "--seed", "4", "--name", "d",
                   "--no-previews").code == 0
    scene = OccDataset.open("d", tmp_path / "ws").scene("scene-0000")
    start = 3
    grid = scene.frames[start].instance_grid()
    inv = np.linalg.inv(scene.poses[start])
    labels = scene.semantics(start)
    target = None
    for name, inst in scene.instances.items():  # a parked car (the same box in every frame) in view
        if inst.class_name != "car" or start not in inst.frames or np.ptp(inst.boxes[:, :2], 0).max() > 1e-3:
            continue
        if not (grid == inst.id).any():
            continue
        c = inv @ np.r_[inst.boxes[0, :3], 1.0]
        if not 8.0 < np.hypot(c[0], c[1]) < 30.0:
            continue
        heading = math.atan2(c[1], c[0])
        end = c[:2] - 1.35 * np.array([math.cos(heading), math.sin(heading)])  # the box centre on the car at 3 s
        # one whose way in is clear at 0.5 s (a car behind a row of others would be hit by them first)
        first = ego_safety(labels, planar_pose(*(end / 6), heading))
        if not first["collision"]:
            target = (name, end, heading)
            break
    assert target is not None, "the synthetic scene has no parked car in view"
    name, end, heading = target
    csv = tmp_path / "through.csv"
    csv.write_text("t,x,y\n" + "\n".join(f"{t},{end[0] * t / 3:.4f},{end[1] * t / 3:.4f}" for t in (0, 1, 2, 3)) + "\n")
    r = run_cli(capsys, "--json", "forecast", "--dataset", "d", "--scene", "scene-0000", "--traj", csv,
                "--no-previews", "--no-adherence")
    assert r.code == 0, r.err
    out = r.json()
    assert name in out["safety"]["observed"]["instances"] and 6 in out["safety"]["observed"]["collision_frames"]
    frames = json.loads((tmp_path / "ws" / "forecasts" / out["name"] / "frames.json").read_text())
    assert name in frames["frames"][5]["safety"]["observed"]["instances"]
    assert frames["frames"][0]["safety"]["observed"]["collision"] is False
    warnings = [line for line in r.err_lines if line.startswith("warning:")]
    assert len(warnings) == 1 and name in warnings[0] and "frame" in warnings[0]
    manifest = json.loads((tmp_path / "ws" / "forecasts" / out["name"] / "manifest.json").read_text())
    assert manifest["safety"] == out["safety"]
