"""The Python API (`geniedrive.forecast`, `render`, `generate`, `OccupancySequence`) on values, and
the commands as wrappers over it: what `gdrive forecast` and `gdrive render` write is what the
functions return for the same inputs."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import geniedrive as gd
from geniedrive.pipelines.data.occ3d import load_labels
from geniedrive.pipelines.geometry import planar_pose
from tests.helpers import REPO, run_cli, write_occ_folder


@pytest.fixture
def dataset(capsys, tmp_path):
    """A dataset 'w' of one logged 8-frame scene (occ-folder source) in this test's workspace."""
    src = write_occ_folder(tmp_path / "export", scenes=1, frames=8)
    assert run_cli(capsys, "prepare-occ", "--source", "occ-folder", "--dataroot", src, "--name", "w",
                   "--no-previews", "--quiet").code == 0
    ds = gd.open_dataset("w")
    return ds, ds.scene(ds.scene_names()[0])


def test_gdrive_forecast_writes_what_forecast_returns(capsys, dataset, tmp_path):
    ds, scene = dataset
    r = run_cli(capsys, "forecast", "--dataset", "w", "--scene", scene.name, "--traj", "fixed_turn_left",
                "--horizon", "3", "--frame", "2", "--speed", "4", "--no-previews", "--json")
    assert r.code == 0, r.err
    art = Path(r.json()["path"])
    fc = gd.forecast(gd.WorldModel.from_pretrained(gd.DEMO_MODEL), scene, start=2, traj="fixed_turn_left",
                     horizon=3, speed=4.0)
    assert fc.labels.shape == (3, 200, 200, 16) and fc.labels.dtype == np.uint8
    assert fc.tokens == tuple(e["token"] for e in json.loads((art / "frames.json").read_text())["frames"])
    for token, want in zip(fc.tokens, fc.labels):
        assert np.array_equal(load_labels(art / "gts" / scene.name / token / "labels.npz")["semantics"], want)
    # the forecast's sequence: the current keyframe first, poses in its ego frame
    seq = fc.sequence(with_current=True)
    assert seq.tokens == (scene.frames[2].token, *fc.tokens) and seq.sources == ("observed",) + ("forecast",) * 3
    assert np.array_equal(seq.labels[0], scene.semantics(2)) and np.array_equal(seq.labels[3], fc.labels[2])
    np.testing.assert_allclose(seq.poses[0], np.eye(4), atol=1e-12)
    np.testing.assert_allclose(seq.poses[1:], fc.trajectory.poses)
    assert seq.times.tolist() == [0.0, 0.5, 1.0, 1.5]
    # the same sequence, read back from the artifact, renders to the same id-relevant content
    back = gd.OccupancySequence.from_scene(scene, [2]).then(gd.OccupancySequence.from_folder(art, scene.rig))
    assert back.tokens == seq.tokens and np.array_equal(np.asarray(back.labels), np.asarray(seq.labels))
    np.testing.assert_allclose(back.poses, seq.poses, atol=1e-9)


def test_gdrive_render_writes_what_render_yields(capsys, dataset):
    ds, scene = dataset
    r = run_cli(capsys, "render", "--dataset", "w", "--scene", scene.name, "--resolution", "24x48", "--fps", "4",
                "--frames", "1:3", "--cameras", "CAM_FRONT,CAM_BACK", "--no-previews", "--json")
    assert r.code == 0, r.err
    art = Path(r.json()["path"])
    meta = json.loads((art / "frames.json").read_text())
    frames = list(gd.render(gd.OccupancySequence.from_scene(scene), ["CAM_FRONT", "CAM_BACK"], (24, 48), fps=4,
                            keyframes="1:3"))
    assert len(frames) == len(meta["frames"]) == 3  # keyframes 1, 2 and the one between them
    for f, entry in zip(frames, meta["frames"]):
        assert f.token == entry["keyframe"] and f.t_s == pytest.approx(entry["t_s"])
        with np.load(art / entry["cameras"]) as z:
            assert np.array_equal(z["labels"], f.cameras.labels.numpy())
        points = np.fromfile(art / entry["lidar"], np.float32).reshape(-1, 5)
        assert points.shape[0] == f.lidar.points.shape[0]


def test_generate_returns_the_condition_video_of_the_sequence_it_is_given(dataset):
    _, scene = dataset
    seq = gd.OccupancySequence.from_scene(scene, [0, 1, 2])
    video = gd.generate(seq, resolution=(16, 32))
    assert video.frames.shape == (6, 13, 16, 32, 3) and video.generated is False and video.fps == 12.0
    assert video.views[:3] == ("CAM_FRONT_LEFT", "CAM_FRONT", "CAM_FRONT_RIGHT")
    with pytest.raises(gd.BadInput, match=r"--frames 17: 3 keyframes span 13 frames"):
        gd.generate(seq, frames=17, resolution=(16, 32))


def test_sequences_made_from_arrays_and_joined(dataset):
    _, scene = dataset
    labels = np.full((2, 200, 200, 16), 17, np.uint8)
    labels[:, 100:110, 95:105, 2:6] = 4  # a car ahead
    seq = gd.OccupancySequence.from_arrays(labels, np.stack([np.eye(4), planar_pose(1.0, 0.0, 0.0)]))
    assert len(seq) == 2 and seq.times.tolist() == [0.0, 0.5] and seq.labels[1].sum() == labels[1].sum()
    same = gd.OccupancySequence.from_arrays(labels.copy(), seq.poses)
    assert same.provenance == seq.provenance  # a digest of the arrays: equal arrays, equal render ids
    with pytest.raises(gd.BadInput, match=r"labels: shape \(2, 200, 200\)"):
        gd.OccupancySequence.from_arrays(labels[..., 0])
    with pytest.raises(gd.BadInput, match=r"labels: want integer class ids 0..17"):
        gd.OccupancySequence.from_arrays(labels + 1)
    # only sequences whose poses share a frame join: a scene's frame 0 and arrays in place do not
    with pytest.raises(gd.BadInput, match="different frames"):
        gd.OccupancySequence.from_scene(scene, [0]).then(seq)


def test_trajectories_too_short_are_typed(dataset):
    _, scene = dataset
    with pytest.raises(gd.TrajectoryTooShort) as err:
        gd.plan_trajectory(scene, 5, "gt", horizon=6)
    assert err.value.available == 2 and isinstance(err.value, gd.BadInput)
    with pytest.raises(gd.BadInput, match="forecasting with the world model needs one"):
        gd.forecast(None, scene, 2, "straight")


def test_importing_geniedrive_loads_no_torch_until_the_api_is_used():
    code = ("import sys, geniedrive as gd; print('torch' in sys.modules); gd.forecast; "
            "print('torch' in sys.modules, set(dir(gd)) >= {'forecast', 'render', 'generate', 'WorldModel'})")
    p = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    assert p.stdout.split() == ["False", "True", "True"]


def test_world_models_load_by_folder_or_by_workspace_name(tmp_path):
    wm = gd.WorldModel.from_pretrained(gd.DEMO_MODEL)
    assert not wm.training and wm.cfg.forecaster is not None
    with pytest.raises(gd.BadInput, match=r"model 'nosuch': no such model in .*; make it with `gdrive train-vae"):
        gd.WorldModel.from_pretrained("nosuch")
    with pytest.raises(gd.BadInput, match="holds no config.json"):
        gd.WorldModel.from_pretrained(tmp_path)
