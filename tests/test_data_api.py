"""Reading datasets back: controls, commands, the packed cache and forecasting windows."""

import numpy as np
import pytest
import torch

from geniedrive.pipelines.data.cache import cache_is_built, open_cache
from geniedrive.pipelines.data.controls import COMMAND_INDEX, command_one_hot, commands, step_controls
from geniedrive.pipelines.data.dataset import OccDataset
from geniedrive.pipelines.data.windows import ForecastWindows
from geniedrive.pipelines.errors import BadInput
from geniedrive.pipelines.geometry import planar_pose
from tests.helpers import run_cli, write_occ_folder

US = 500_000


def _poses(xs, ys, yaws):
    return np.stack([planar_pose(x, y, a) for x, y, a in zip(xs, ys, yaws)])


def test_step_controls_by_hand():
    # Frame 1 is at (1, 0) turned 90 degrees left; frame 2 is 2 m ahead of frame 1 in ITS frame.
    poses = _poses([0.0, 1.0, 1.0], [0.0, 0.0, 2.0], [0.0, np.pi / 2, np.pi / 2])
    c = step_controls(poses, np.array([0, US, 2 * US]))
    np.testing.assert_allclose(c[0], [1.0, 0.0, np.pi / 2, 2.0, np.pi], atol=1e-6)
    np.testing.assert_allclose(c[1], [2.0, 0.0, 0.0, 4.0, 0.0], atol=1e-6)
    np.testing.assert_allclose(c[2], c[1])


def test_command_rule_uses_lateral_offset_at_three_seconds():
    t = np.arange(10) * US
    straight = _poses(np.arange(10) * 5.0, np.zeros(10), np.zeros(10))
    assert (commands(straight, t) == COMMAND_INDEX["straight"]).all()
    # Lateral drift 0.39 m per frame: 2.34 m at +3 s (6 frames) -> left; the last frames see less.
    left = _poses(np.arange(10) * 5.0, np.arange(10) * 0.39, np.zeros(10))
    cmd = commands(left, t)
    assert (cmd[:4] == COMMAND_INDEX["left"]).all() and cmd[9] == COMMAND_INDEX["straight"]
    right = _poses(np.arange(10) * 5.0, -np.arange(10) * 0.39, np.zeros(10))
    assert commands(right, t)[0] == COMMAND_INDEX["right"]
    # 1.9 m is under the threshold.
    small = _poses(np.arange(10) * 5.0, np.arange(10) * (1.9 / 6), np.zeros(10))
    assert commands(small, t)[0] == COMMAND_INDEX["straight"]
    # Offsets are in the current ego frame: heading +y while moving along +y is straight.
    along_y = _poses(np.zeros(10), np.arange(10) * 5.0, np.full(10, np.pi / 2))
    assert (commands(along_y, t) == COMMAND_INDEX["straight"]).all()
    np.testing.assert_array_equal(command_one_hot(np.array([0, 2])), [[1, 0, 0], [0, 0, 1]])


@pytest.fixture
def dataset(capsys, tmp_path):
    src = write_occ_folder(tmp_path / "export", scenes=2, frames=5)
    r = run_cli(capsys, "prepare-occ", "--source", "occ-folder", "--dataroot", src, "--name", "tiny", "--no-previews")
    assert r.code == 0, r.err
    return OccDataset.open("tiny")


def test_dataset_api_walks_scenes_frames_and_controls(dataset):
    assert dataset.scene_names() == ["town00", "town01"]
    s = dataset.scene("town00")
    assert s.num_frames == 5 and len(s.frames) == 5
    f = s.frames[3]
    assert f.token == "f003" and f.timestamp_us == 1_000_000 + 3 * US
    assert f.labels()["semantics"].shape == (200, 200, 16)
    assert f.instance_grid() is None
    assert s.controls.shape == (5, 5) and s.commands.shape == (5,)
    np.testing.assert_allclose(s.controls[:-1, 3], np.linalg.norm(np.diff(s.poses[:, :2, 3], axis=0), axis=1) / 0.5, rtol=1e-5)
    with pytest.raises(BadInput, match="--scene 'nope': not in dataset 'tiny' \\(scenes: town00, town01\\)"):
        dataset.scene("nope")


def test_cache_matches_the_npz_files_and_is_built_once(dataset):
    assert not cache_is_built(dataset)
    cache = open_cache(dataset)
    assert cache_is_built(dataset)
    assert cache.num_frames == 10 and cache.scene_names == ["town00", "town01"]
    k = 0
    for s in dataset.scenes():
        for f in s.frames:
            np.testing.assert_array_equal(cache.semantics[k], f.labels()["semantics"])
            np.testing.assert_array_equal(cache.ego_to_global[k], f.ego_to_global)
            k += 1
    np.testing.assert_array_equal(cache.controls[5:], dataset.scene("town01").controls)
    mtime = (cache.root / "semantics.u8").stat().st_mtime_ns
    again = open_cache(dataset)
    assert (again.root / "semantics.u8").stat().st_mtime_ns == mtime
    assert not again.semantics.flags.writeable


def test_windows_clamp_at_scene_ends_and_mark_validity(dataset):
    cache = open_cache(dataset)
    win = ForecastWindows(cache, past=2, future=3)
    assert len(win) == 10
    item = win[0]  # first frame of town00: two past frames are missing
    assert item["occ"].shape == (6, 200, 200, 16) and item["occ"].dtype == torch.uint8
    assert item["valid"].tolist() == [False, False, True, True, True, True]
    np.testing.assert_array_equal(item["occ"][0].numpy(), cache.semantics[0])  # nearest in-scene frame
    np.testing.assert_array_equal(item["occ"][5].numpy(), cache.semantics[3])
    last = win[9]  # last frame of town01
    assert last["valid"].tolist() == [True, True, True, False, False, False]
    np.testing.assert_array_equal(last["occ"][5].numpy(), cache.semantics[9])  # never crosses into another scene
    assert last["scene"] == 1 and last["frame"] == 4
    # rel_poses: the current frame is the identity, others are in its ego frame.
    np.testing.assert_allclose(item["rel_poses"][2].numpy(), np.eye(4), atol=1e-6)
    rel = np.linalg.inv(cache.ego_to_global[1]) @ cache.ego_to_global[2]
    np.testing.assert_allclose(win[1]["rel_poses"][3].numpy(), rel, atol=1e-5)
    assert item["commands"].shape == (6, 3) and torch.all(item["commands"].sum(1) == 1)
    full = ForecastWindows(cache, past=2, future=3, drop_partial=True)
    assert len(full) == 0  # 5-frame scenes cannot hold a 6-frame window
    full = ForecastWindows(cache, past=1, future=2, drop_partial=True)
    assert len(full) == 4 and all(full[i]["valid"].all() for i in range(4))
    assert len(ForecastWindows(cache, split="train")) == 10
    with pytest.raises(BadInput, match="split 'val': no scenes"):
        ForecastWindows(cache, split="val")
    loader = torch.utils.data.DataLoader(win, batch_size=4)
    batch = next(iter(loader))
    assert batch["occ"].shape == (4, 6, 200, 200, 16)
