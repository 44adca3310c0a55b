"""`gdrive prepare-occ --source nuscenes` end to end on a nuScenes-format folder the test builds."""

import numpy as np

from geniedrive.pipelines.data.dataset import OccDataset
from tests.helpers import artifact_dirs, run_cli
from tests.nuscenes_fixture import build_nuscenes_folder


def test_prepare_nuscenes_end_to_end_with_two_workers(capsys, tmp_path):
    root = tmp_path / "nusc"
    truth = build_nuscenes_folder(root, version="v1.0-mini", frames=4)
    args = ("prepare-occ", "--source", "nuscenes", "--dataroot", root, "--version", "v1.0-mini", "--name", "nu")
    r = run_cli(capsys, *args, "--workers", "2", "--json")
    assert r.code == 0, r.err
    out = r.json()
    assert out["summary"]["scenes"] == 2 and out["summary"]["frames"] == 8
    ds = OccDataset.open("nu")
    assert ds.scene_names("train") == ["scene-0061"] and ds.scene_names("val") == ["scene-0103"]
    for name, want in truth["scenes"].items():
        s = ds.scene(name)
        assert s.meta.tokens == want["sample_tokens"]
        np.testing.assert_allclose(s.poses, want["ego_to_global"], atol=1e-9)
        assert set(s.instances) and all(i.attributes["instance_token"] in want["instance_tokens"] for i in s.instances.values())
        grid = s.frames[1].instance_grid()
        assert grid is not None and grid.max() > 0
        ids = {i.id for i in s.instances.values()}
        assert set(np.unique(grid)) - {0} <= ids
        sem = s.frames[1].labels()["semantics"]
        assert np.all(sem[grid > 0] <= 10)  # only object voxels carry instances
        assert (ds.root / "previews" / f"{name}.png").stat().st_size > 0
        assert (ds.root / "previews" / f"{name}.mp4").stat().st_size > 0
    again = run_cli(capsys, *args)
    assert again.code == 0 and "reusing dataset 'nu'" in again.err


def test_prepare_nuscenes_bad_input_writes_nothing(capsys, tmp_path):
    root = tmp_path / "nusc"
    truth = build_nuscenes_folder(root, version="v1.0-mini", frames=3)
    r = run_cli(capsys, "prepare-occ", "--source", "nuscenes", "--dataroot", root, "--version", "v1.0-trainval")
    assert r.code == 2 and len(r.err_lines) == 1 and "v1.0-mini" in r.err
    # The second scene's last frame is missing: caught before any scene is written.
    truth["scenes"]["scene-0103"]["label_paths"][-1].unlink()
    r = run_cli(capsys, "prepare-occ", "--source", "nuscenes", "--dataroot", root, "--version", "v1.0-mini")
    assert r.code == 2 and len(r.err_lines) == 1 and "Occ3D frame is missing" in r.err
    (root / "v1.0-mini" / "sample.json").unlink()
    r = run_cli(capsys, "prepare-occ", "--source", "nuscenes", "--dataroot", root, "--version", "v1.0-mini")
    assert r.code == 2 and len(r.err_lines) == 1 and "sample.json" in r.err
    assert artifact_dirs(tmp_path / "ws") == []
