"""`gdrive render`: artifact layout, 12 Hz interpolation and official repetition, Occ3D folders as
sources, reuse, and bad input (each exits 2 with one line and writes nothing)."""

import json
import shutil

import numpy as np
import pytest

from geniedrive.pipelines.data.preview import read_mp4
from geniedrive.pipelines.data.rig import default_rig
from geniedrive.pipelines.geometry import planar_pose
from geniedrive.pipelines.data.sequence import OccupancySequence
from geniedrive.pipelines.sensors.render import interpolate_pose, output_frames
from tests.helpers import artifact_dirs, run_cli, write_occ_folder

RES = ("--resolution", "32x64")


@pytest.fixture
def ws(capsys, tmp_path):
    src = write_occ_folder(tmp_path / "export", scenes=1, frames=3)
    assert run_cli(capsys, "prepare-occ", "--source", "occ-folder", "--dataroot", src, "--name", "w", "--no-previews").code == 0
    return tmp_path / "ws"


def test_render_scene_writes_cameras_lidar_frames_and_previews(capsys, ws):
    r = run_cli(capsys, "render", "--dataset", "w", "--scene", "town00", *RES, "--fps", "4", "--name", "r", "--json")
    assert r.code == 0, r.err
    out = r.json()
    assert out["frames"] == 5 and out["keyframes"] == 3  # 2 per keyframe interval + the last keyframe
    art = ws / "renders" / "r"
    meta = json.loads((art / "frames.json").read_text())
    assert meta["cameras"] == [c.name for c in default_rig().cameras] and meta["fps"] == 4
    assert [f["t_s"] for f in meta["frames"]] == pytest.approx([0, 0.25, 0.5, 0.75, 1.0])
    with np.load(art / meta["frames"][1]["cameras"]) as z:
        assert z["labels"].shape == (6, 32, 64) and z["labels"].dtype == np.uint8
        assert z["depth"].shape == (6, 32, 64) and z["alpha"].dtype == np.uint8
        hit = z["alpha"] > 0
        assert hit.any() and np.isfinite(z["depth"][hit]).all() and (z["labels"][~hit] == 17).all()
    pts = np.fromfile(art / "lidar" / "000000.pcd.bin", np.float32).reshape(-1, 5)
    with np.load(art / "lidar" / "000000.labels.npz") as z:
        assert len(z["label"]) == len(pts) > 0
    for f in ("preview.png", "cameras.mp4", "lidar_topdown.png", "lidar_range.png", "lidar_topdown.mp4", "rig.json", "manifest.json"):
        assert (art / f).is_file(), f
    assert len(read_mp4(art / "lidar_topdown.mp4")) == 5 and read_mp4(art / "lidar_topdown.mp4")[0].shape == (400, 400, 3)
    assert json.loads((art / "rig.json").read_text())["cameras"][0]["width"] == 64
    again = run_cli(capsys, "render", "--dataset", "w", "--scene", "town00", *RES, "--fps", "4", "--name", "r", "--json")
    assert again.code == 0 and again.json()["reused"] is True


def test_repeat_reproduces_the_official_repetition_and_occ_folders_render(capsys, ws, tmp_path):
    r = run_cli(capsys, "render", "--dataset", "w", "--scene", "town00", *RES, "--repeat", "6", "--no-lidar",
                "--cameras", "CAM_FRONT,CAM_BACK", "--name", "rep", "--json")
    assert r.code == 0, r.err
    art = ws / "renders" / "rep"
    meta = json.loads((art / "frames.json").read_text())
    assert len(meta["frames"]) == 18 and meta["fps"] == 12 and meta["cameras"] == ["CAM_FRONT", "CAM_BACK"]
    assert [f["cameras"] for f in meta["frames"][:6]] == ["cameras/000000.npz"] * 6
    assert sorted(p.name for p in (art / "cameras").iterdir()) == ["000000.npz", "000006.npz", "000012.npz"]
    assert not (art / "lidar").exists()
    # The dataset's own Occ3D folder renders the same keyframe identically.
    occ = tmp_path / "occ"
    shutil.copytree(ws / "datasets" / "w" / "gts", occ / "gts")
    r = run_cli(capsys, "render", "--occ", str(occ), *RES, "--repeat", "1", "--no-lidar", "--cameras",
                "CAM_FRONT,CAM_BACK", "--name", "folder", "--json")
    assert r.code == 0, r.err
    with np.load(art / "cameras" / "000000.npz") as a, np.load(ws / "renders" / "folder" / "cameras" / "000000.npz") as b:
        assert np.array_equal(a["labels"], b["labels"])


def test_interpolated_frames_use_the_nearest_keyframe_at_the_interpolated_pose():
    poses = np.stack([planar_pose(0, 0, 0), planar_pose(4.0, 0, 0.2)])
    seq = OccupancySequence.from_arrays(np.zeros((2, 200, 200, 16), np.uint8), poses, [0.0, 0.5], default_rig())
    plan = output_frames(seq, [0, 1], 12.0, None)
    assert len(plan) == 7 and [p["key"] for p in plan] == [0, 0, 0, 1, 1, 1, 1]
    np.testing.assert_allclose(plan[1]["ego_pose"][:2, 3], [4.0 / 6, 0.0], atol=1e-9)
    np.testing.assert_allclose(plan[3]["ego_pose"], np.linalg.inv(poses[1]) @ interpolate_pose(poses[0], poses[1], 0.5), atol=1e-12)
    mid = interpolate_pose(poses[0], poses[1], 0.5)
    assert np.arctan2(mid[1, 0], mid[0, 0]) == pytest.approx(0.1)


def _bad_rig(tmp_path):
    d = default_rig().to_dict()
    d["cameras"][0]["sensor_to_ego"][0][0] *= 2.0  # a scaled axis: not a rotation
    p = tmp_path / "bad_rig.json"
    p.write_text(json.dumps(d))
    return str(p)


def _bad_occ(tmp_path):
    d = tmp_path / "badocc" / "gts" / "s" / "t0"
    d.mkdir(parents=True)
    np.savez_compressed(d / "labels.npz", semantics=np.zeros((100, 100, 16), np.uint8))
    return str(tmp_path / "badocc")


@pytest.mark.parametrize("case", ["shape", "camera", "zero_res", "negative_res", "rig", "fps"])
def test_render_bad_input_exits_2_with_one_line(capsys, ws, tmp_path, case):
    base = ["render", "--dataset", "w", "--scene", "town00", *RES]
    args, expect = {
        "shape": (["render", "--occ", _bad_occ(tmp_path)], "labels.npz"),
        "camera": (base + ["--cameras", "CAM_TOP"], "--cameras: unknown camera 'CAM_TOP'"),
        "zero_res": (["render", "--dataset", "w", "--scene", "town00", "--resolution", "0x512"], "--resolution 0x512"),
        "negative_res": (["render", "--dataset", "w", "--scene", "town00", "--resolution", "-256x512"], "--resolution -256x512"),
        "rig": (base + ["--rig", _bad_rig(tmp_path)], "is not a rotation"),
        "fps": (base + ["--fps", "5"], "--fps 5.0: must be a positive multiple"),
    }[case]
    r = run_cli(capsys, *args)
    assert r.code == 2 and len(r.err_lines) == 1, r.err
    assert expect in r.err
    assert artifact_dirs(ws, "renders") == []
