"""The occ-folder source and bad input through `gdrive prepare-occ`."""

import numpy as np
import pytest
import yaml

from geniedrive.pipelines.data.dataset import OccDataset
from geniedrive.pipelines.data.occ3d import CLASS_INDEX
from tests.helpers import artifact_dirs, run_cli, scene_occupancy, write_occ_folder


def _prepare(capsys, src, *extra):
    return run_cli(capsys, "prepare-occ", "--source", "occ-folder", "--dataroot", src, "--no-previews", "--json", *extra)


def test_roundtrip_maps_classes_and_keeps_poses(capsys, tmp_path):
    src = write_occ_folder(tmp_path / "export", scenes=2, frames=3)
    r = _prepare(capsys, src, "--name", "sim")
    assert r.code == 0, r.err
    ds = OccDataset.open("sim")
    assert ds.scene_names() == ["town00", "town01"]
    scene = ds.scene("town01")
    want = scene_occupancy(3, seed=1)
    lut = np.array([17, CLASS_INDEX["driveable_surface"], CLASS_INDEX["car"], CLASS_INDEX["manmade"]], np.uint8)
    for t in range(3):
        labels = scene.frames[t].labels()
        np.testing.assert_array_equal(labels["semantics"], lut[want[t]])
        np.testing.assert_array_equal(labels["mask_camera"], (want[t] != 0).astype(np.uint8))
    assert scene.tokens if hasattr(scene, "tokens") else True
    assert scene.meta.tokens == ["f000", "f001", "f002"]
    np.testing.assert_allclose(scene.poses[2][:2, 3], [10.0, 1.2], atol=1e-9)
    np.testing.assert_allclose(np.arctan2(scene.poses[2][1, 0], scene.poses[2][0, 0]), 0.1, atol=1e-9)


def test_masks_are_ray_cast_when_the_export_has_none(capsys, tmp_path):
    src = write_occ_folder(tmp_path / "export", scenes=1, frames=1, masks=False)
    assert _prepare(capsys, src, "--name", "nomask").code == 0
    labels = OccDataset.open("nomask").scene("town00").frames[0].labels()
    mc = labels["mask_camera"]
    # The wall at x index 170..171 hides what is behind it from the cameras; the road in front is seen.
    assert mc[150, 100, 2] == 1 and mc[170, 100, 6] == 1
    assert mc[185, 100, 6] == 0
    assert labels["mask_lidar"].sum() > 0


def _break(src, case):
    f = src / "town00" / "f001.npz"
    if case == "truncated":
        f.write_bytes(f.read_bytes()[:200])
    elif case == "corrupt":
        f.write_bytes(b"this is not a zip file at all" * 20)
    elif case == "wrong_shape":
        np.savez_compressed(f, semantics=np.zeros((200, 200, 8), np.uint8))
    elif case == "wrong_dtype":
        np.savez_compressed(f, semantics=np.zeros((200, 200, 16), np.float32))
    elif case == "unmapped_label":
        np.savez_compressed(f, semantics=np.full((200, 200, 16), 9, np.uint8))
    elif case == "label_above_17":
        (src / "classes.yaml").write_text(yaml.safe_dump({0: 17, 1: 11, 2: 4, 3: 18}))
    elif case == "missing_frame":
        f.unlink()
    elif case == "missing_poses":
        (src / "town00" / "poses.csv").unlink()
        (src / "town01" / "poses.csv").unlink()
    elif case == "missing_classes":
        (src / "classes.yaml").unlink()
    elif case == "bad_mask":
        np.savez_compressed(f, semantics=np.zeros((200, 200, 16), np.uint8), mask_lidar=np.full((200, 200, 16), 3, np.uint8),
                            mask_camera=np.ones((200, 200, 16), np.uint8))
    elif case == "pose_nan":
        p = src / "town00" / "poses.csv"
        p.write_text(p.read_text().replace("500000,", "500000,nan,", 1).replace(",nan,5.0", ",nan", 1))


BAD = {
    "truncated": "f001.npz: not a readable array file",
    "corrupt": "f001.npz: not a readable array file",
    "wrong_shape": "expected (200, 200, 16)",
    "wrong_dtype": "expected integer labels",
    "unmapped_label": "label value(s) [9] are not in",
    "label_above_17": "classes.yaml: entry 3: 18",
    "missing_frame": "f001.npz: frame listed in poses.csv has no occupancy file",
    "missing_poses": "no scene folders with a poses.csv",
    "missing_classes": "classes.yaml: class-mapping file is missing",
    "bad_mask": "'mask_lidar' holds value 3",
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_input_exits_2_with_one_line_and_writes_nothing(capsys, tmp_path, case):
    src = write_occ_folder(tmp_path / "export", scenes=2, frames=3)
    # A good dataset already there must survive a bad --force rebuild untouched.
    assert _prepare(capsys, src, "--name", "keep").code == 0
    before = (tmp_path / "ws" / "datasets" / "keep" / "manifest.json").read_bytes()
    _break(src, case)
    for name_args in (("--name", "fresh"), ("--name", "keep", "--force")):
        r = _prepare(capsys, src, *name_args)
        assert r.code == 2, (case, r.err)
        assert len(r.err_lines) == 1, r.err
        assert BAD[case] in r.err_lines[0]
        assert r.json() == {"command": "prepare-occ", "error": r.err_lines[0][len("error: "):], "exit_code": 2}
    assert artifact_dirs(tmp_path / "ws") == ["keep"]
    assert (tmp_path / "ws" / "datasets" / "keep" / "manifest.json").read_bytes() == before


@pytest.mark.parametrize("args,needle", [
    (("--source", "carla"), "--source 'carla': unknown source; choose one of synthetic, nuscenes, occ-folder"),
    (("--source", "occ-folder"), "--dataroot: required for --source occ-folder"),
    (("--source", "occ-folder", "--dataroot", "/nonexistent/x"), "--dataroot /nonexistent/x: no such folder"),
    (("--scenes", "0"), "--scenes 0: must be a positive number"),
    (("--frames", "-3"), "--frames -3: must be a positive number"),
    (("--name", "../evil"), "--name '../evil': not a valid artifact name: a name is 1-120 characters of letters"),
])
def test_bad_flags_exit_2(capsys, tmp_path, args, needle):
    r = run_cli(capsys, "prepare-occ", *args)
    assert r.code == 2 and r.err_lines == [f"error: {needle}" + r.err_lines[0].split(needle, 1)[1]]
    assert artifact_dirs(tmp_path / "ws") == []


def test_empty_folder_exits_2(capsys, tmp_path):
    (tmp_path / "empty").mkdir()
    r = run_cli(capsys, "prepare-occ", "--source", "occ-folder", "--dataroot", tmp_path / "empty")
    assert r.code == 2 and len(r.err_lines) == 1 and "classes.yaml" in r.err


def test_unwritable_workspace_exits_2(capsys, tmp_path):
    f = tmp_path / "iam_a_file"
    f.write_text("x")
    src = write_occ_folder(tmp_path / "export", scenes=1, frames=2)
    for ws in (f, f / "below"):
        r = _prepare(capsys, src, "--workspace", ws)
        assert r.code == 2 and len(r.err_lines) == 1 and f"--workspace {ws}" in r.err
    assert f.read_text() == "x"
