"""Nothing outside the workspace, nothing lost (issue 13): one test per finding, each reproducing
what a deliberate attempt to break gdrive found. Kills, interrupts and concurrent runs use real
processes."""

from __future__ import annotations

import csv
import functools
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from safetensors.torch import load_file, save_file

from geniedrive.cli.app import COMMANDS
from geniedrive.pipelines.data.dataset import OccDataset
from geniedrive.pipelines.errors import BadInput, RunFailure
from geniedrive.pipelines.runtime.trainer import Stage, TrainSettings, train
from geniedrive.pipelines.runtime.distributed import DistInfo
from geniedrive.pipelines.store import Workspace, publish
from geniedrive.pipelines.store.artifacts import folder_contents
from tests.helpers import (GDRIVE, REPO, alive, artifact_dirs, descendants, run_cli, temporaries, wait_for,
                           write_occ_folder)

DEMO = REPO / "assets" / "demo" / "world-small"


@pytest.fixture(scope="module")
def base_dataset(tmp_path_factory):
    """A synthetic dataset 'd' (1 scene x 8 frames) built once; `ws` copies it into each test."""
    from geniedrive.cli.app import main

    ws = tmp_path_factory.mktemp("safety") / "ws"
    assert main(["--workspace", str(ws), "--quiet", "prepare-occ", "--scenes", "1", "--frames", "8", "--name", "d",
                 "--no-previews", "--workers", "1"]) == 0
    return ws


@pytest.fixture
def ws(tmp_path, base_dataset):
    root = tmp_path / "ws"
    shutil.copytree(base_dataset, root)
    return root


def one_error(r, *needles):
    assert len(r.err_lines) == 1, r.err
    for n in needles:
        assert n in r.err, r.err


def popen(*args, **kw):
    return subprocess.Popen([*GDRIVE, *map(str, args)], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env={**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}, **kw)


# --------------------------------------------------------------------------------------------
# 1. One name rule for every artifact kind, checked before any work
# --------------------------------------------------------------------------------------------


def test_1_absolute_relative_and_odd_names_exit_2_before_any_work(capsys, ws, tmp_path):
    outside = tmp_path / "outside"
    d1 = ws / "datasets" / "d"
    before = folder_contents(d1)
    forecast = ("forecast", "--scene", "scene-0000", "--horizon", "1", "--no-previews", "--no-adherence")
    r = run_cli(capsys, *forecast, "--name", str(d1), "--force")
    assert r.code == 2
    one_error(r, "--name", "not a valid artifact name", "1-120 characters")
    assert folder_contents(d1) == before and OccDataset.open("d", ws).manifest["kind"] == "dataset"
    for stage in (forecast, ("render", "--scene", "scene-0000", "--frames", "0:1", "--resolution", "16x32", "--no-lidar"),
                  ("train-vae", "--dataset", "d", "--model-config", "debug", "--steps", "1")):
        for name in (str(outside / "x"), "../x", "*", "a\nb", "x" * 300, "latest", ".hidden", ""):
            r = run_cli(capsys, *stage, "--name", name)
            assert r.code == 2, (stage[0], name, r.err)
            one_error(r, "--name")
    assert not outside.exists() and not (ws / "x").exists()
    assert artifact_dirs(ws, "forecasts") == [] and artifact_dirs(ws, "renders") == [] and not (ws / "runs").exists()


def test_1_force_replaces_only_an_artifact_of_the_same_kind(capsys, ws):
    shutil.copytree(ws / "datasets" / "d", ws / "forecasts" / "f")  # a dataset where a forecast would go
    r = run_cli(capsys, "forecast", "--scene", "scene-0000", "--horizon", "1", "--no-previews", "--no-adherence",
                "--name", "f", "--force")
    assert r.code == 2
    one_error(r, "--name f:", "holds a gdrive dataset, not a forecast")
    assert json.loads((ws / "forecasts" / "f" / "manifest.json").read_text())["kind"] == "dataset"


# --------------------------------------------------------------------------------------------
# 2. Owned temporaries, a publish that checks itself, reuse that re-validates
# --------------------------------------------------------------------------------------------


def test_2_a_run_named_x_leaves_the_temporaries_of_x_y_alone(capsys, tmp_path):
    slow = write_occ_folder(tmp_path / "six", scenes=6, frames=4, masks=False)  # ray cast: slow to write
    fast = write_occ_folder(tmp_path / "one", scenes=1, frames=2)
    ws = tmp_path / "ws"
    a = popen("--workspace", ws, "--quiet", "prepare-occ", "--source", "occ-folder", "--dataroot", slow, "--name", "x-y",
              "--workers", "1", "--no-previews")
    assert wait_for(lambda: len(list((ws / "datasets").glob(".tmp-x-y-*/scenes/*/scene.json"))) >= 1)
    # x runs (in this process, so it is quick) while x-y is still writing its scenes
    b = run_cli(capsys, "--workspace", ws, "--quiet", "prepare-occ", "--source", "occ-folder", "--dataroot", fast,
                "--name", "x", "--no-previews")
    assert b.code == 0, b.err
    assert a.poll() is None, "x-y finished before x ran; the test proves nothing"
    assert a.wait(300) == 0, a.stderr.read()
    ds = OccDataset.open("x-y", ws)
    assert len(ds.scene_names()) == 6
    for scene in ds.scenes():  # every frame of every scene is there
        assert all((f.path / "labels.npz").is_file() for f in scene.frames)
    assert temporaries(ws) == []


def _kill_between_renames(ws: Path) -> None:
    """A real process publishes dataset 'x-y' again with --force and is SIGKILLed between the two
    renames of the swap (the old copy renamed aside, the new one not yet in place)."""
    script = f"""
import os, signal
from geniedrive.pipelines.store import Workspace, publish
from geniedrive.pipelines.store import artifacts
real = artifacts.replace_dir
def dying(tmp, target):
    target.rename(target.parent / (".old-" + target.name + "-" + "ab" * 6))
    os.kill(os.getpid(), signal.SIGKILL)
artifacts.replace_dir = dying
from pathlib import Path
publish(Workspace(Path({str(ws)!r})), "dataset", "st", 1, "x-y", {{}}, {{"v": 2}}, {{}},
        lambda w: {{"summary": w.write_bytes("v.txt", b"2") and None}}, force=True)
"""
    p = subprocess.run([sys.executable, "-c", script], cwd=REPO)
    assert p.returncode == -signal.SIGKILL


def test_2_a_swap_killed_between_its_renames_is_restored_only_to_its_own_name(tmp_path):
    ws = Workspace(tmp_path / "ws")
    publish(ws, "dataset", "st", 1, "x-y", {}, {"v": 1}, {}, lambda w: {"n": w.write_bytes("v.txt", b"1") and 1})
    _kill_between_renames(ws.root)
    datasets = ws.root / "datasets"
    assert not (datasets / "x-y").exists() and len(list(datasets.glob(".old-x-y-*"))) == 1
    publish(ws, "dataset", "st", 1, "x", {}, {"v": 9}, {}, lambda w: {"n": w.write_bytes("v.txt", b"x") and 1})
    assert (datasets / "x" / "v.txt").read_text() == "x"  # built, not x-y's old copy renamed to x
    assert len(list(datasets.glob(".old-x-y-*"))) == 1  # not x's to touch
    again = publish(ws, "dataset", "st", 1, "x-y", {}, {"v": 1}, {}, lambda w: {"n": w.write_bytes("v.txt", b"?") and 1})
    assert again.reused and (datasets / "x-y" / "v.txt").read_text() == "1"  # x-y's own run restored it
    assert temporaries(ws.root) == []


def test_2_publish_checks_its_contents_and_reuse_revalidates(capsys, ws):
    def vanishing(w):
        w.write_bytes("a.txt", b"a")
        w.write_bytes("b.txt", b"b")
        (w.tmp / "a.txt").unlink()  # what another run's cleanup did to x-y
        return {}

    with pytest.raises(RunFailure, match="1 of its 2 files vanished"):
        publish(Workspace(ws), "dataset", "st", 1, "broken", {}, {}, {}, vanishing)
    assert not (ws / "datasets" / "broken").exists() and temporaries(ws) == []
    args = ("prepare-occ", "--scenes", "1", "--frames", "8", "--name", "d", "--no-previews", "--workers", "1")
    victim = next((ws / "datasets" / "d" / "gts").rglob("labels.npz"))
    victim.unlink()  # a dataset that lost a frame
    r = run_cli(capsys, *args, "--json")
    assert r.code == 0 and r.json()["reused"] is False and "no longer holds what it was published with" in r.err
    assert victim.is_file()
    r = run_cli(capsys, *args, "--json")
    assert r.code == 0 and r.json()["reused"] is True


# --------------------------------------------------------------------------------------------
# 3. Paths read from files are validated like flags
# --------------------------------------------------------------------------------------------


def test_3_a_scene_json_name_that_climbs_out_is_refused(capsys, ws, tmp_path):
    record = ws / "datasets" / "d" / "scenes" / "scene-0000" / "scene.json"
    scene = json.loads(record.read_text())
    scene["name"] = "../../../outside/evil"
    record.write_text(json.dumps(scene))
    for args in (("forecast", "--scene", "scene-0000", "--horizon", "1"), ("render", "--scene", "scene-0000"),
                 ("edit", "--scene", "scene-0000", "--list")):
        r = run_cli(capsys, *args)
        assert r.code == 2, r.err
        one_error(r, "scene.json", "scene name", "cannot be a file name")
    assert not (tmp_path / "outside").exists() and artifact_dirs(ws, "forecasts") == []


def test_3_an_occ_folder_frame_or_scene_called_dotdot_is_refused(capsys, tmp_path):
    src = write_occ_folder(tmp_path / "export", scenes=2, frames=2)
    poses = src / "town00" / "poses.csv"
    rows = list(csv.reader(poses.open()))
    rows[1][0] = ".."
    with poses.open("w", newline="") as fh:
        csv.writer(fh).writerows(rows)
    r = run_cli(capsys, "prepare-occ", "--source", "occ-folder", "--dataroot", src, "--name", "o", "--workers", "1")
    assert r.code == 2
    one_error(r, "poses.csv", "frame name '..'")
    shutil.rmtree(src / "town00")
    (src / "town 01").mkdir()
    shutil.move(str(src / "town01" / "poses.csv"), src / "town 01" / "poses.csv")
    r = run_cli(capsys, "prepare-occ", "--source", "occ-folder", "--dataroot", src, "--name", "o")
    assert r.code == 2
    one_error(r, "scene folder name 'town 01'")
    assert artifact_dirs(tmp_path / "ws") == []


def test_3_a_manifest_scene_entry_that_climbs_out_is_refused(capsys, ws):
    m = ws / "datasets" / "d" / "manifest.json"
    manifest = json.loads(m.read_text())
    manifest["scenes"][0]["name"] = "../../x"
    m.write_text(json.dumps(manifest))
    r = run_cli(capsys, "forecast", "--scene", "../../x")
    assert r.code == 2
    one_error(r, "manifest.json", "scene name")


# --------------------------------------------------------------------------------------------
# 4. Ctrl-C: exit 130, "interrupted", temporaries cleaned, workers ended
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_4_ctrl_c_exits_130_for_every_command(capsys, monkeypatch, command):
    real = COMMANDS[command]

    @functools.wraps(real)
    def interrupted(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setitem(COMMANDS, command, interrupted)
    argv = [command] + {"evaluate": ["occ"], "forecast": ["--scene", "s"],
                        "import-weights": ["--format", "geniedrive-occ"]}.get(command, [])
    r = run_cli(capsys, *argv)
    assert r.code == 130 and r.err_lines == ["error: interrupted"]
    r = run_cli(capsys, "--json", *argv)
    assert r.code == 130 and r.json() == {"command": command, "error": "interrupted", "exit_code": 130}


def test_4_sigint_ends_prepare_workers_and_cleans_its_temporary(tmp_path):
    ws = tmp_path / "ws"
    p = popen("--workspace", ws, "prepare-occ", "--scenes", "4", "--frames", "20", "--workers", "2", "--name", "k")
    assert wait_for(lambda: len(descendants(p.pid)) >= 2 and list((ws / "datasets").glob(".tmp-k-*")), 120)
    workers = descendants(p.pid)
    time.sleep(1.0)  # the workers are building scenes
    p.send_signal(signal.SIGINT)
    out, err = p.communicate(timeout=60)
    assert p.returncode == 130, err
    assert err.strip().splitlines()[-1] == "error: interrupted" and "Traceback" not in err
    assert wait_for(lambda: not any(alive(w) for w in workers), 10), "workers outlived the interrupted run"
    assert temporaries(ws) == [] and artifact_dirs(ws) == []


def test_4_sigint_and_sigterm_during_training_clean_up(base_dataset, tmp_path):
    for sig, code, word in ((signal.SIGINT, 130, "interrupted"), (signal.SIGTERM, 143, "terminated")):
        ws = tmp_path / f"ws-{code}"
        shutil.copytree(base_dataset, ws)
        p = popen("--workspace", ws, "train-vae", "--dataset", "d", "--model-config", "debug", "--steps", "100000",
                  "--batch-size", "1", "--ckpt-every", "1", "--name", "t", "--json")
        assert wait_for(lambda: (ws / "runs" / "t" / "last" / "state.json").is_file(), 120)
        p.send_signal(sig)
        out, err = p.communicate(timeout=60)
        assert p.returncode == code, err
        assert word in err.strip().splitlines()[-1] and json.loads(out)["exit_code"] == code
        assert temporaries(ws) == [] and artifact_dirs(ws, "models") == []


# --------------------------------------------------------------------------------------------
# 5. Training state: one run per name, no silent restart over a killed run's state
# --------------------------------------------------------------------------------------------

TRAIN = ("train-vae", "--dataset", "d", "--model-config", "debug", "--batch-size", "1", "--ckpt-every", "1")


def test_5_a_rerun_over_a_killed_runs_state_asks_for_resume_or_force(capsys, ws):
    p = popen("--workspace", ws, "--quiet", *TRAIN, "--steps", "100000", "--name", "cv")
    state = ws / "runs" / "cv" / "last" / "state.json"
    assert wait_for(lambda: state.is_file() and json.loads(state.read_text())["step"] >= 2, 120)
    p.send_signal(signal.SIGKILL)
    p.wait()
    r = run_cli(capsys, "--workspace", ws, *TRAIN, "--steps", "100000", "--name", "cv")
    assert r.code == 2
    one_error(r, "of 100000", "--resume to continue it or --force to start over")
    step = int(r.err.split("(step ")[1].split(" ")[0])
    assert step >= 2 and json.loads(state.read_text())["step"] == step  # untouched
    r = run_cli(capsys, "--workspace", ws, *TRAIN, "--steps", str(step + 1), "--name", "cv", "--resume", "--json")
    assert r.code == 0 and r.json()["steps"] == step + 1, r.err
    r = run_cli(capsys, "--workspace", ws, *TRAIN, "--steps", "1", "--name", "cw")  # a fresh name just trains
    assert r.code == 0, r.err


def test_5_two_concurrent_runs_of_one_name(ws):
    args = ("--workspace", ws, *TRAIN, "--steps", "8", "--name", "cv", "--json")
    lock = ws / "runs" / "cv" / ".lock"
    a = popen(*args)
    assert wait_for(lambda: lock.is_file() and lock.read_text(), 120)
    # Started while the first trains: one of another configuration exits 2 at once, one of the
    # same configuration waits for the first and reuses its model.
    other = popen(*args[:-3], "--lr", "0.01", "--name", "cv")
    b = popen(*args)
    out_o, err_o = other.communicate(timeout=120)
    assert a.poll() is None, "the first run ended before the others started; the test proves nothing"
    assert other.returncode == 2 and "another run (pid " in err_o and "with another configuration" in err_o, err_o
    (out_a, err_a), (out_b, err_b) = a.communicate(timeout=300), b.communicate(timeout=300)
    assert a.returncode == 0 and b.returncode == 0, (err_a, err_b)
    assert [json.loads(o)["reused"] for o in (out_a, out_b)] == [False, True]
    assert "waiting for the other run training 'cv'" in err_b
    assert load_file(ws / "models" / "cv" / "vae.safetensors")


# --------------------------------------------------------------------------------------------
# 6. Every size bounded or its memory estimated before work
# --------------------------------------------------------------------------------------------


def test_6_sizes_from_flags_and_files_are_bounded(capsys, ws, tmp_path, monkeypatch):
    cases = [
        (("render", "--scene", "scene-0000", "--resolution", "20000x20000"), "1..4096 pixels"),
        (("generate", "--scene", "scene-0000", "--resolution", "20000x20000"), "1..4096 pixels"),
        (("forecast", "--scene", "scene-0000", "--horizon", "100000"), "at most 600 future keyframes"),
        (("generate", "--scene", "scene-0000", "--frames", "100001"), "at most 3601"),
        (("render", "--scene", "scene-0000", "--fps", "1000000"), "at most 120"),
        (("prepare-occ", "--scenes", "1", "--frames", "100000"), "--frames"),
        (("prepare-occ", "--scenes", "2", "--workers", "100000"), "--workers"),
        (("train-vae", "--dataset", "d", "--batch-size", "100000000"), "--batch-size"),
    ]
    wp = tmp_path / "far.csv"
    wp.write_text("t,x,y\n1e12,1,0\n")
    cases.append((("forecast", "--scene", "scene-0000", "--traj", wp), "limit of 600 keyframes"))
    rig = json.loads((ws / "datasets" / "d" / "scenes" / "scene-0000" / "scene.json").read_text())["rig"]
    rig["lidar"]["azimuth_steps"] = 1e9
    (tmp_path / "rig.json").write_text(json.dumps(rig))
    cases.append((("render", "--scene", "scene-0000", "--rig", tmp_path / "rig.json"), "azimuth_steps 1,000,000,000"))
    for args, needle in cases:
        r = run_cli(capsys, *args)
        assert r.code == 2, (args, r.err)
        one_error(r, needle)
    # What fits the bounds but not this machine's memory is refused from an estimate.
    monkeypatch.setattr("geniedrive.pipelines.limits.available_memory", lambda: 2**30)
    r = run_cli(capsys, "render", "--scene", "scene-0000", "--resolution", "4096x4096")
    assert r.code == 2
    one_error(r, "--resolution 4096x4096", "GiB of memory", "1.0 GiB is available")
    r = run_cli(capsys, "generate", "--scene", "scene-0000", "--resolution", "1024x2048", "--frames", "241")
    assert r.code == 2
    one_error(r, "241 frames x 6 views at 1024x2048")
    assert artifact_dirs(ws, "renders") == [] and artifact_dirs(ws, "forecasts") == [] and temporaries(ws) == []


# --------------------------------------------------------------------------------------------
# 7. Workers die with their parent
# --------------------------------------------------------------------------------------------


def test_7_kill_9_of_prepare_takes_its_workers_with_it(tmp_path):
    ws = tmp_path / "ws"
    p = popen("--workspace", ws, "prepare-occ", "--scenes", "4", "--frames", "20", "--workers", "2", "--name", "k")
    assert wait_for(lambda: len(descendants(p.pid)) >= 2 and list((ws / "datasets").glob(".tmp-k-*")), 120)
    workers = descendants(p.pid)
    time.sleep(1.0)
    p.send_signal(signal.SIGKILL)
    p.wait()
    assert wait_for(lambda: not any(alive(w) for w in workers), 10), "workers outlived their killed parent"
    r = subprocess.run([*GDRIVE, "--workspace", str(ws), "--quiet", "prepare-occ", "--scenes", "1", "--frames", "2",
                        "--name", "k", "--no-previews", "--json"], cwd=REPO, capture_output=True, text=True)
    assert r.returncode == 0 and temporaries(ws) == []  # the rerun cleaned the dead run's folder


# --------------------------------------------------------------------------------------------
# 8. Garbage is never reported as success
# --------------------------------------------------------------------------------------------


def test_8_a_non_finite_loss_stops_training_naming_the_step(tmp_path):
    model = torch.nn.Linear(2, 1)

    def loss(net, batch, step):
        out = net(torch.ones(1, 2)).sum()
        return (out * float("nan") if step == 2 else out), {}

    stage = Stage(model, 4, lambda idx: {}, loss)
    with pytest.raises(RunFailure, match=r"step 3: the training loss is nan .* keeps step 2"):
        train(stage, TrainSettings(steps=10, ckpt_every=1, ema=False), tmp_path / "run", {}, torch.device("cpu"), DistInfo())
    assert json.loads((tmp_path / "run" / "last" / "state.json").read_text())["step"] == 2


def test_8_a_diverging_cli_run_exits_1_and_publishes_nothing(capsys, ws):
    r = run_cli(capsys, "--json", "--quiet", *TRAIN, "--steps", "50", "--lr", "1e30", "--name", "nan")
    assert r.code == 1, r.err
    one_error(r, "error: step ", "(lr 1e+30); training stopped and nothing was published", "lower --lr")
    assert r.json()["exit_code"] == 1 and not (ws / "models" / "nan").exists()
    for lr in ("0", "-1", "nan", "inf"):
        r = run_cli(capsys, *TRAIN, "--steps", "1", "--lr", lr)
        assert r.code == 2
        one_error(r, "--lr")


def _model_copy(tmp_path: Path) -> Path:
    folder = tmp_path / "model"
    shutil.copytree(DEMO, folder)
    return folder


def test_8_broken_weights_and_implausible_values_exit_2(capsys, ws, tmp_path):
    forecast = ("forecast", "--scene", "scene-0000", "--horizon", "1", "--no-previews")
    for kind, mutate in (("NaN", lambda t: torch.full_like(t, float("nan"))), ("int64", lambda t: t.to(torch.int64))):
        folder = _model_copy(tmp_path / kind)
        weights = load_file(folder / "forecaster.safetensors")
        save_file({k: mutate(v) for k, v in weights.items()}, folder / "forecaster.safetensors")
        r = run_cli(capsys, *forecast, "--model", folder)
        assert r.code == 2, r.err
        one_error(r, "forecaster.safetensors", "NaN or infinite" if kind == "NaN" else "dtype int64")
    far = tmp_path / "far.csv"
    far.write_text("t,x,y\n0.5,1e300,0\n1.0,2e300,0\n")
    r = run_cli(capsys, *forecast, "--traj", far)
    assert r.code == 2
    one_error(r, "--traj", "m/s", "at most 60 m/s apart")
    first = sorted(OccDataset.open("d", ws).scene("scene-0000").instances)[0]
    r = run_cli(capsys, "edit", "--scene", "scene-0000", "--insert", "car", "--at", "10,0", "--speed", "1e300")
    assert r.code == 2
    one_error(r, "--speed 1e+300", "0 to 60 m/s")
    rig = json.loads((ws / "datasets" / "d" / "scenes" / "scene-0000" / "scene.json").read_text())["rig"]
    bad_rigs = {"max_range NaN": ("lidar", "max_range", float("nan")), "duplicate camera": ("cameras", None, "dup"),
                "no camera": ("cameras", None, "none")}
    for what, (part, key, value) in bad_rigs.items():
        broken = json.loads(json.dumps(rig))
        if key is not None:
            broken[part][key] = value
        elif value == "dup":
            broken["cameras"] = broken["cameras"] + broken["cameras"][:1]
        else:
            broken["cameras"] = []
        path = tmp_path / f"{what}.json"
        path.write_text(json.dumps(broken))
        r = run_cli(capsys, "render", "--scene", "scene-0000", "--rig", path, "--no-lidar")
        assert r.code == 2, (what, r.err)
        one_error(r, str(path), {"max_range NaN": "max_range nan", "duplicate camera": "appears twice",
                                 "no camera": "0 cameras"}[what])
    assert artifact_dirs(ws, "forecasts") == [] and artifact_dirs(ws, "renders") == [] and first


def test_8_json_output_stays_valid_with_non_finite_numbers(capsys, monkeypatch):
    from geniedrive.cli.options import emit, state

    monkeypatch.setattr(state, "json", True)
    emit({"last_loss": float("nan"), "metrics": {"a": float("inf"), "b": 1.5}})
    assert json.loads(capsys.readouterr().out) == {"last_loss": None, "metrics": {"a": None, "b": 1.5}}


# --------------------------------------------------------------------------------------------
# 9. Bad input exits 2 with one line, never a Python error
# --------------------------------------------------------------------------------------------


def test_9_malformed_manifests_and_model_configs_exit_2(capsys, ws, tmp_path):
    m = ws / "datasets" / "d" / "manifest.json"
    good = m.read_text()
    m.write_text("[1, 2]")
    for ref in ("latest", "d"):
        r = run_cli(capsys, "forecast", "--dataset", ref, "--scene", "scene-0000")
        assert r.code == 2
        one_error(r, "--dataset", "no such dataset")
    manifest = json.loads(good)
    del manifest["scenes"]
    m.write_text(json.dumps(manifest))
    r = run_cli(capsys, "forecast", "--scene", "scene-0000")
    assert r.code == 2
    one_error(r, "manifest.json", "no valid 'scenes' list")
    m.write_text(good)
    for field, value, needle in (("dim", "64", "vae.dim = '64': expected int"), ("heads", 0, "vae.heads = 0"),
                                 ("num_classes", -3, "vae.num_classes = -3"), ("dim", 10**7, "vae.dim = 10000000"),
                                 ("down_kernel", 15, "billion parameters")):
        folder = _model_copy(tmp_path / f"{field}-{value}")
        cfg = json.loads((folder / "config.json").read_text())
        cfg["vae"][field] = value
        if field == "down_kernel":
            cfg["vae"]["dim"] = cfg["forecaster"]["dim"] = 1024
            cfg["vae"]["heads"] = 2
        (folder / "config.json").write_text(json.dumps(cfg))
        r = run_cli(capsys, "forecast", "--scene", "scene-0000", "--model", folder)
        assert r.code == 2, (field, value, r.err)
        one_error(r, "config.json", needle)


def test_9_recipes_seeds_and_workspaces_with_wrong_values_exit_2(capsys, tmp_path):
    recipe = tmp_path / "r.yaml"
    for text, needle in (("scenes: 1.5\n", "'scenes: 1.5' is a float"), ("scenes: true\n", "'scenes: True' is a bool"),
                         ("force: yes please\n", "'force: 'yes please'' is a str"), ("frames: [1]\n", "is a list")):
        recipe.write_text(text)
        r = run_cli(capsys, "prepare-occ", "--config", recipe)
        assert r.code == 2, (text, r.err)
        one_error(r, "--config", needle)
    recipe.write_bytes(b"scenes: 2\nname: \xff\xfe\n")
    r = run_cli(capsys, "prepare-occ", "--config", recipe)
    assert r.code == 2
    one_error(r, "not UTF-8 text")
    recipe.write_text("steps: 1.0e+23\n")
    r = run_cli(capsys, "train-vae", "--config", recipe)
    assert r.code == 2
    one_error(r, "'steps: 1e+23' is a float")
    for seed in ("1e23", "100000000000000000000000", "-1"):
        r = run_cli(capsys, "--seed", seed, "prepare-occ", "--scenes", "1")
        assert r.code == 2
        one_error(r, "--seed")
    r = run_cli(capsys, "--workspace", "", "prepare-occ")
    assert r.code == 2
    one_error(r, "--workspace '': empty")
    assert not (tmp_path / "ws").exists()


def test_9_a_full_disk_exits_1_naming_the_folder_and_leaves_nothing(capsys, monkeypatch, tmp_path):
    import errno

    real = Path.write_bytes

    def full(self, data):
        if ".tmp-" in str(self) and self.name == "labels.npz":
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(self, data)

    monkeypatch.setattr(Path, "write_bytes", full)
    r = run_cli(capsys, "prepare-occ", "--scenes", "1", "--frames", "2", "--name", "full", "--workers", "1")
    assert r.code == 1
    one_error(r, str(tmp_path / "ws" / "datasets"), "No space left on device", "free space")
    assert temporaries(tmp_path / "ws") == [] and artifact_dirs(tmp_path / "ws") == []


def test_9_repeated_ids_bom_files_and_the_pickle_refusal(capsys, ws, tmp_path):
    first = sorted(OccDataset.open("d", ws).scene("scene-0000").instances)[0]
    r = run_cli(capsys, "edit", "--scene", "scene-0000", "--remove", first, "--remove", first)
    assert r.code == 2
    one_error(r, f"--remove {first}: names the instance 2 times")
    bom = tmp_path / "bom.csv"
    bom.write_bytes("\ufefft,x,y\n0.5,1,0\n1.0,2,0\n".encode("utf-8"))
    r = run_cli(capsys, "forecast", "--scene", "scene-0000", "--traj", bom, "--no-previews", "--no-adherence", "--json")
    assert r.code == 0 and r.json()["frames"] == 2, r.err
    src = write_occ_folder(tmp_path / "export", scenes=1, frames=2)
    poses = src / "town00" / "poses.csv"
    poses.write_bytes(b"\xef\xbb\xbf" + poses.read_bytes())
    r = run_cli(capsys, "prepare-occ", "--source", "occ-folder", "--dataroot", src, "--name", "bom", "--no-previews")
    assert r.code == 0, r.err
    from geniedrive.pipelines.weights import read_state_dict

    evil = tmp_path / "evil.pth"
    torch.save({"w": torch.zeros(1), "run": os.system}, evil)
    with pytest.raises(BadInput) as exc:
        read_state_dict(evil, "--fid-weights")
    msg = str(exc.value)
    assert msg.startswith(f"--fid-weights {evil}: not a safetensors or torch state-dict file (it holds the Python object ")
    assert "system, which weights_only loading refuses to build)" in msg
    assert msg.endswith("save the weights as a plain state dict (safetensors.torch.save_file)")
