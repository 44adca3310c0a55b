"""`gdrive train-forecaster`, `gdrive forecast` and `gdrive evaluate occ` end to end on a debug model,
trajectories, waypoint files, the ego-warp baseline and ego-motion registration, and bad input."""

import json
import math
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch

from geniedrive.pipelines.data.occ3d import FREE, load_labels
from geniedrive.pipelines.errors import BadInput
from geniedrive.pipelines.geometry import planar_pose
from geniedrive.pipelines.metrics.ego_motion import motion_error, register_static, warp_occupancy
from geniedrive.pipelines.occworld.trajectories import NAMED, commands_of, from_waypoints, named, poses_of, read_waypoints
from tests.helpers import REPO, run_cli, write_occ_folder


@pytest.fixture
def trained(capsys, tmp_path):
    """A dataset 'w' (1 scene, 12 frames) and a debug world model 'wm' (1 predict step)."""
    src = write_occ_folder(tmp_path / "export", scenes=1, frames=12)
    assert run_cli(capsys, "prepare-occ", "--source", "occ-folder", "--dataroot", src, "--name", "w", "--no-previews").code == 0
    r = run_cli(capsys, "train-vae", "--dataset", "w", "--model-config", "debug", "--steps", "1", "--batch-size", "1", "--name", "v")
    assert r.code == 0, r.err
    r = run_cli(capsys, "train-forecaster", "--stage", "predict", "--dataset", "w", "--init", "v", "--steps", "2",
                "--name", "wm", "--val-windows", "1", "--json")
    assert r.code == 0, r.err
    return tmp_path / "ws"


def test_train_forecaster_publishes_both_parts_and_e2e_continues(capsys, trained):
    art = trained / "models" / "wm"
    assert sorted(p.name for p in art.iterdir()) == ["config.json", "forecaster.safetensors", "manifest.json",
                                                     "metrics.json", "vae.safetensors"]
    manifest = json.loads((art / "manifest.json").read_text())
    assert manifest["config"]["stage"] == "predict" and manifest["inputs"]["init"]
    r = run_cli(capsys, "train-forecaster", "--stage", "e2e", "--dataset", "w", "--init", "wm", "--steps", "1",
                "--name", "wm2", "--val-windows", "1", "--json")
    assert r.code == 0, r.err
    out = r.json()
    assert out["steps"] == 1 and math.isfinite(out["last_loss"])
    assert json.loads((trained / "models" / "wm2" / "config.json").read_text())["vae"]["dropout"] == 0.0
    r = run_cli(capsys, "train-forecaster", "--stage", "e2e", "--dataset", "w", "--init", "v")
    assert r.code == 2 and len(r.err_lines) == 1 and "holds no forecaster.safetensors" in r.err
    r = run_cli(capsys, "train-forecaster", "--stage", "later", "--init", "v")
    assert r.code == 2 and "--stage 'later': unknown stage" in r.err


def test_two_process_cpu_ddp_predict_stage_with_the_warp_prior(capsys, trained):
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29534",
           "-m", "geniedrive.cli.app", "--workspace", str(trained), "--device", "cpu", "train-forecaster", "--stage",
           "predict", "--dataset", "w", "--init", "v", "--steps", "2", "--motion-prior", "warp", "--name", "ddp",
           "--val-windows", "1", "--json"]
    p = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert p.returncode == 0, p.stderr[-2000:]
    lines = [json.loads(x) for x in p.stdout.splitlines() if x.startswith("{")]
    assert len(lines) == 1 and lines[0]["steps"] == 2  # only rank 0 reports
    assert sorted(x.name for x in (trained / "models").iterdir() if not x.name.startswith(".")) == ["ddp", "v", "wm"]
    assert json.loads((trained / "models" / "ddp" / "config.json").read_text())["forecaster"]["motion_prior"] == "warp"
    state = json.loads((trained / "runs" / "ddp" / "last" / "state.json").read_text())
    assert state["step"] == 2 and len(state["losses"]) == 2
    r = run_cli(capsys, "train-forecaster", "--stage", "predict", "--dataset", "w", "--init", "v", "--motion-prior", "flow")
    assert r.code == 2 and r.err_lines == ["error: --motion-prior 'flow': unknown motion prior; choose one of none, warp"]
    r = run_cli(capsys, "train-forecaster", "--stage", "e2e", "--dataset", "w", "--init", "ddp", "--motion-prior", "none")
    assert r.code == 2 and len(r.err_lines) == 1 and "the e2e stage continues the --init forecaster" in r.err


def test_forecast_writes_occ3d_frames_json_and_preview(capsys, trained):
    r = run_cli(capsys, "forecast", "--scene", "town00", "--traj", "fixed_turn_left", "--model", "wm", "--horizon", "8",
                "--speed", "6", "--name", "f", "--json")
    assert r.code == 0, r.err
    art = trained / "forecasts" / "f"
    meta = json.loads((art / "frames.json").read_text())
    assert [f["t_s"] for f in meta["frames"]] == [0.5 * i for i in range(1, 9)]  # 8 autoregressive steps
    assert meta["trajectory"] == {"kind": "named", "name": "fixed_turn_left", "speed": 6.0}
    want = poses_of(named("turn_left", 6.0, 8))
    assert np.allclose([f["ego_in_start"] for f in meta["frames"]], want, atol=1e-9)
    assert meta["frames"][0]["command"] == "left" and meta["frames"][0]["control"]["speed"] == pytest.approx(6.0, rel=1e-2)  # chord of the arc
    for f in meta["frames"]:
        lab = load_labels(art / "gts" / "town00" / f["token"] / "labels.npz")
        assert lab["semantics"].shape == (200, 200, 16) and lab["semantics"].max() <= FREE
        assert {"translation_m", "yaw_deg"} <= set(f["adherence"])
    assert (art / "preview.mp4").stat().st_size > 0
    again = run_cli(capsys, "forecast", "--scene", "town00", "--traj", "fixed_turn_left", "--model", "wm", "--horizon", "8",
                    "--speed", "6", "--name", "f")
    assert again.code == 0 and "reusing forecast 'f'" in again.err


def test_forecast_from_a_waypoint_file_and_gt(capsys, trained, tmp_path):
    csv = tmp_path / "wp.csv"
    csv.write_text("t,x,y\n0.5,2,0\n1.0,4,0.5\n1.5,6,1.5\n")
    r = run_cli(capsys, "forecast", "--scene", "town00", "--traj", csv, "--model", "wm", "--no-adherence", "--no-previews", "--json")
    assert r.code == 0, r.err
    frames = json.loads((trained / "forecasts" / r.json()["name"] / "frames.json").read_text())["frames"]
    assert [f["ego_in_start"][0][3] for f in frames] == [2.0, 4.0, 6.0]
    r = run_cli(capsys, "forecast", "--scene", "town00", "--traj", "gt", "--model", "wm", "--horizon", "3", "--no-adherence",
                "--no-previews", "--json")
    assert r.code == 0, r.err
    assert r.json()["trajectory"] == {"kind": "gt"}


def _write_bad(tmp_path, name, text):
    p = tmp_path / name
    p.write_text(text)
    return p


@pytest.mark.parametrize("case", ["scene", "traj", "nan", "unsorted", "columns", "horizon", "shape", "pickle"])
def test_forecast_bad_input_exits_2_with_one_line(capsys, trained, tmp_path, case):
    args = ["forecast", "--scene", "town00", "--model", "wm", "--no-previews"]
    if case == "scene":
        args[2], want = "town99", "--scene 'town99': not in dataset"
    elif case == "traj":
        args += ["--traj", "backflip"]
        want = "--traj 'backflip': unknown trajectory"
    elif case == "nan":
        args += ["--traj", _write_bad(tmp_path, "a.csv", "t,x,y\n0.5,1,0\n1.0,nan,0\n")]
        want = "row 2 has a NaN"
    elif case == "unsorted":
        args += ["--traj", _write_bad(tmp_path, "b.json", json.dumps([{"t": 1.0, "x": 1, "y": 0}, {"t": 0.5, "x": 2, "y": 0}]))]
        want = "times must increase strictly"
    elif case == "columns":
        args += ["--traj", _write_bad(tmp_path, "c.csv", "t,x\n0.5,1\n")]
        want = "missing column(s) y"
    elif case == "horizon":
        args += ["--horizon", "0"]
        want = "--horizon 0: must be at least 1"
    elif case == "shape":
        bad = tmp_path / "bad-model"
        shutil.copytree(trained / "models" / "wm", bad)
        cfg = json.loads((bad / "config.json").read_text())
        cfg["forecaster"]["dim"] = 16
        (bad / "config.json").write_text(json.dumps(cfg))
        args[4], want = bad, "has shape"
    else:
        bad = tmp_path / "pickled"
        shutil.copytree(trained / "models" / "wm", bad)
        torch.save({"w": torch.zeros(2)}, bad / "forecaster.safetensors")
        args[4], want = bad, "is a pickle/zip (torch.save) file, not safetensors"
    before = sorted((trained / "forecasts").iterdir()) if (trained / "forecasts").exists() else []
    r = run_cli(capsys, *args)
    assert r.code == 2 and len(r.err_lines) == 1 and want in r.err, r.err
    after = sorted((trained / "forecasts").iterdir()) if (trained / "forecasts").exists() else []
    assert [p for p in after if not p.name.startswith(".")] == [p for p in before if not p.name.startswith(".")]


def test_evaluate_occ_reports_both_conventions_baselines_and_adherence(capsys, trained, tmp_path):
    out = tmp_path / "report.json"
    r = run_cli(capsys, "evaluate", "occ", "--dataset", "w", "--model", "wm", "--max-windows", "2", "--out", out, "--json")
    assert r.code == 0, r.err
    res = r.json()
    assert json.loads(out.read_text())["windows"] == res["windows"] == 2
    for method in ("forecast", "copy_last", "ego_warp"):
        assert set(res[method]) == {"1s", "2s", "3s", "avg"}
        assert set(res[method]["1s"]) == {"miou_drop_zero", "miou_unseen_one", "iou"}
    assert set(res["adherence"]) == {"1s", "2s", "3s"}
    assert res["timing"]["fps_forecast"] > 0 and "synchronised" in res["timing"]["scope"]
    assert res["parameters"]["total"] == res["parameters"]["vae"] + res["parameters"]["forecaster"]
    r = run_cli(capsys, "evaluate", "lidar")
    assert r.code == 2 and "evaluate 'lidar': unknown target" in r.err


def test_named_trajectories_have_their_shape():
    assert set(NAMED) == {"straight", "turn_left", "turn_right", "stop", "lane_change_left", "lane_change_right"}
    s = named("straight", 10.0, 6)
    assert np.allclose(s[-1], [30.0, 0, 0])
    left, right = named("turn_left", 8.0, 8), named("turn_right", 8.0, 8)
    assert left[-1, 2] == pytest.approx(math.pi / 2, abs=0.03) and left[-1, 1] > 9
    assert np.allclose(right * [1, -1, -1], left)
    stop = named("stop", 9.0, 8)
    assert stop[-1, 0] == pytest.approx(9.0 ** 2 / (2 * 3.0), abs=0.05) and stop[-1, 0] == stop[-2, 0]
    lc = named("lane_change_left", 10.0, 8)
    assert lc[5, 1] == pytest.approx(3.5) and lc[-1, 1] == pytest.approx(3.5)
    cmds = commands_of(poses_of(left))
    assert cmds[0] == 1 and commands_of(poses_of(right))[0] == 0 and set(commands_of(poses_of(s))) == {2}
    with pytest.raises(BadInput, match="unknown trajectory"):
        named("loop", 1.0, 3)


def test_waypoint_files_csv_and_json_agree_with_yaw_in_degrees(tmp_path):
    (tmp_path / "a.csv").write_text("t,x,y,yaw_deg\n0.5,1,0,0\n1.0,2,0.5,30\n")
    (tmp_path / "a.json").write_text(json.dumps({"waypoints": [{"t": 0.5, "x": 1, "y": 0, "yaw_deg": 0},
                                                               {"t": 1.0, "x": 2, "y": 0.5, "yaw_deg": 30}]}))
    a, b = read_waypoints(tmp_path / "a.csv"), read_waypoints(tmp_path / "a.json")
    assert np.array_equal(a, b)
    xy = from_waypoints(a, None, "a.csv")
    assert np.allclose(xy, [[1, 0, 0], [2, 0.5, math.radians(30)]])
    (tmp_path / "old.csv").write_text("t,x,y,yaw\n0.5,1,0,0\n1.0,2,0.5,0.1\n")  # the unit would be a guess
    with pytest.raises(BadInput, match="column 'yaw' has no unit; name it yaw_deg"):
        read_waypoints(tmp_path / "old.csv")
    with pytest.raises(BadInput, match="--horizon 5: the waypoints"):
        from_waypoints(a, 5, "a.csv")


def _structured_grid():
    occ = np.full((200, 200, 16), FREE, np.uint8)
    occ[:, :, 2] = 11  # road
    occ[:, 60:70, 2] = 13  # sidewalk strip
    occ[30:40, 70:90, 3:10] = 15  # buildings
    occ[120:135, 20:30, 3:9] = 15
    occ[150:152, 140:170, 3:6] = 16  # a hedge
    occ[80:82, 130:132, 3:12] = 15  # a pole
    occ[100:110, 95:100, 3:6] = 4  # a car (not static)
    return occ


def test_ego_warp_and_registration_recover_a_known_motion():
    ref = _structured_grid()
    assert np.array_equal(warp_occupancy(ref, np.eye(4)), ref)
    shifted = warp_occupancy(ref, planar_pose(4.0, 0.0, 0.0))  # 10 voxels forward
    assert np.array_equal(shifted[:190], ref[10:]) and np.all(shifted[190:] == FREE)
    truth = planar_pose(3.2, -1.6, math.radians(7))
    moved = warp_occupancy(ref, truth)
    pose, share = register_static(moved, ref)
    terr, yerr = motion_error(pose, truth)
    assert terr < 0.3 and math.degrees(yerr) < 1.0 and share > 0.8


@pytest.mark.parametrize("off", [(5.0, -3.0, 20.0), (20.0, 14.0, -60.0)])
def test_registration_around_the_command_finds_the_motion_inside_and_outside_its_window(off):
    """The adherence search starts in a window around the commanded pose (±12 m, ±45°); a command
    further from the forecast's motion than that falls back to the whole range, same answer."""
    ref = _structured_grid()
    truth = planar_pose(3.2, -1.6, math.radians(7))
    moved = warp_occupancy(ref, truth)
    command = planar_pose(3.2 + off[0], -1.6 + off[1], math.radians(7 + off[2]))
    pose, share = register_static(moved, ref, around=command)
    terr, yerr = motion_error(pose, truth)
    assert terr < 0.3 and math.degrees(yerr) < 1.0 and share > 0.8


def test_demo_weights_forecast_with_only_scene_and_trajectory(capsys, tmp_path):
    r = run_cli(capsys, "prepare-occ", "--scenes", "1", "--frames", "6", "--name", "demo", "--no-previews")
    assert r.code == 0, r.err
    r = run_cli(capsys, "forecast", "--scene", "scene-0000", "--traj", "turn_left", "--horizon", "2", "--no-previews", "--json")
    assert r.code == 0, r.err
    meta = json.loads((tmp_path / "ws" / "forecasts" / r.json()["name"] / "frames.json").read_text())
    assert meta["model"].endswith("assets/demo/world-small") and len(meta["frames"]) == 2
