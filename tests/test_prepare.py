"""prepare-occ as a stage: reuse, --force, recipes, and a run killed mid-write."""

import json
import os
import signal
import subprocess
import time

import yaml

from geniedrive.pipelines.data.dataset import OccDataset
from tests.helpers import GDRIVE, REPO, artifact_dirs, run_cli, write_occ_folder


def test_second_run_reuses_and_says_so(capsys, tmp_path):
    src = write_occ_folder(tmp_path / "export", scenes=1, frames=2)
    args = ("prepare-occ", "--source", "occ-folder", "--dataroot", src, "--name", "d", "--no-previews")
    first = run_cli(capsys, *args, "--json")
    assert first.code == 0 and first.json()["reused"] is False
    mtime = (tmp_path / "ws" / "datasets" / "d" / "manifest.json").stat().st_mtime_ns
    second = run_cli(capsys, *args)
    assert second.code == 0
    assert "reusing dataset 'd' (id " in second.err
    assert (tmp_path / "ws" / "datasets" / "d" / "manifest.json").stat().st_mtime_ns == mtime
    forced = run_cli(capsys, *args, "--force", "--json")
    assert forced.code == 0 and forced.json()["reused"] is False
    assert forced.json()["id"] == first.json()["id"]


def test_recipe_is_overridden_by_flags_and_saved(capsys, tmp_path):
    src = write_occ_folder(tmp_path / "export", scenes=3, frames=2)
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(yaml.safe_dump({"source": "occ-folder", "dataroot": str(src), "scenes": 1, "previews": False}))
    r = run_cli(capsys, "prepare-occ", "--config", recipe, "--scenes", "2", "--name", "r", "--json")
    assert r.code == 0, r.err
    m = json.loads((tmp_path / "ws" / "datasets" / "r" / "manifest.json").read_text())
    assert m["config"]["scenes"] == 2 and m["config"]["previews"] is False and m["config"]["source"] == "occ-folder"
    assert OccDataset.open("r").scene_names() == ["town00", "town01"]
    recipe.write_text("scenes: [1, 2\n")
    bad = run_cli(capsys, "prepare-occ", "--config", recipe)
    assert bad.code == 2 and len(bad.err_lines) == 1 and f"--config {recipe}: not valid YAML" in bad.err
    recipe.write_text(yaml.safe_dump({"scnes": 1}))
    bad = run_cli(capsys, "prepare-occ", "--config", recipe)
    assert bad.code == 2 and "unknown key(s) scnes" in bad.err


def test_sigkill_mid_write_leaves_no_artifact_and_the_rerun_succeeds(tmp_path):
    # No masks in the export: every frame is ray cast, so the run takes long enough to be killed.
    src = write_occ_folder(tmp_path / "export", scenes=2, frames=10, masks=False)
    ws = tmp_path / "ws"
    cmd = [*GDRIVE, "--workspace", str(ws), "prepare-occ", "--source", "occ-folder", "--dataroot", str(src),
           "--name", "k", "--workers", "1"]
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    deadline = time.time() + 120
    while time.time() < deadline:  # wait until frames are being written
        tmps = list((ws / "datasets").glob(".tmp-k-*/gts/town00/*/labels.npz")) if (ws / "datasets").exists() else []
        if len(tmps) >= 3:
            break
        time.sleep(0.05)
    assert proc.poll() is None, "the run finished before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (ws / "datasets" / "k").exists()
    assert [n for n in artifact_dirs(ws) if not n.startswith(".tmp-")] == []
    assert not list((ws / "datasets").glob("*/manifest.json"))  # nothing reads as complete
    # The rerun cleans the dead run's temporary folder and publishes a complete dataset.
    r = subprocess.run([*cmd, "--quiet", "--no-previews", "--json"], cwd=REPO, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert artifact_dirs(ws) == ["k"]
    assert json.loads(r.stdout)["reused"] is False
    assert OccDataset.open("k", ws).scene("town01").num_frames == 10
