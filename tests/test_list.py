"""`gdrive list`: what the workspace holds, from the manifests, as a table or JSON."""

from __future__ import annotations

from tests.helpers import artifact_dirs, run_cli, write_occ_folder


def test_list_datasets_scenes_and_forecasts(capsys, tmp_path):
    assert run_cli(capsys, "prepare-occ", "--scenes", "2", "--frames", "6", "--name", "two", "--no-previews").code == 0
    src = write_occ_folder(tmp_path / "export", scenes=1, frames=3)
    assert run_cli(capsys, "prepare-occ", "--source", "occ-folder", "--dataroot", src, "--name", "exp",
                   "--no-previews").code == 0
    r = run_cli(capsys, "--json", "list")
    assert r.code == 0, r.err
    out = r.json()
    assert out["what"] == "datasets"
    assert [(i["name"], i["source"], i["scenes"]) for i in out["items"]] == [("two", "synthetic", 2), ("exp", "occ-folder", 1)]
    r = run_cli(capsys, "--json", "list", "scenes", "--dataset", "two")
    assert r.code == 0 and r.json()["dataset"] == "two"
    assert [(s["name"], s["frames"]) for s in r.json()["items"]] == [("scene-0000", 6), ("scene-0001", 6)]
    r = run_cli(capsys, "forecast", "--dataset", "two", "--scene", "scene-0001", "--horizon", "1", "--no-previews",
                "--no-adherence", "--name", "f1")
    assert r.code == 0, r.err
    r = run_cli(capsys, "--json", "list", "forecasts")
    (item,) = r.json()["items"]
    assert (item["name"], item["dataset"], item["scene"], item["traj"]) == ("f1", "two", "scene-0001", "straight")
    r = run_cli(capsys, "render", "--dataset", "two", "--scene", "scene-0001", "--resolution", "32x64", "--no-lidar",
                "--frames", "0:1", "--no-previews", "--cameras", "CAM_FRONT")
    assert r.code == 0, r.err
    (item,) = run_cli(capsys, "--json", "list", "renders").json()["items"]
    assert (item["dataset"], item["scene"]) == ("two", "scene-0001")
    r = run_cli(capsys, "list", "scenes", "--dataset", "two")
    assert r.code == 0 and "scene-0001" in r.out and "scenes of dataset 'two'" in r.out


def test_list_refuses_unknown_things_in_one_line(capsys, tmp_path):
    r = run_cli(capsys, "list", "foo")
    assert r.code == 2 and len(r.err_lines) == 1 and "choose one of datasets, scenes, models" in r.err
    r = run_cli(capsys, "list", "models", "--dataset", "x")
    assert r.code == 2 and len(r.err_lines) == 1 and "--dataset" in r.err
    r = run_cli(capsys, "list", "scenes", "--dataset", "nope")
    assert r.code == 2 and len(r.err_lines) == 1 and "no such dataset" in r.err
    r = run_cli(capsys, "--json", "list", "renders")
    assert r.code == 0 and r.json()["items"] == []
    assert not (tmp_path / "ws").exists() or artifact_dirs(tmp_path / "ws", "datasets") == []


def test_a_missing_scene_points_to_gdrive_list_not_to_a_command_that_overwrites(capsys):
    assert run_cli(capsys, "prepare-occ", "--scenes", "1", "--frames", "6", "--name", "one", "--no-previews").code == 0
    r = run_cli(capsys, "forecast", "--dataset", "one", "--scene", "scene-0009", "--no-previews")
    assert r.code == 2 and len(r.err_lines) == 1
    assert "gdrive list scenes --dataset one" in r.err and "prepare-occ" not in r.err


def test_after_an_edit_a_scene_outside_it_names_the_dataset_that_has_it(capsys):
    """`edit` makes a one-scene dataset, which becomes --dataset latest; asking it for another
    scene exits 2 naming the dataset that holds that scene."""
    assert run_cli(capsys, "prepare-occ", "--scenes", "2", "--frames", "6", "--name", "two", "--no-previews").code == 0
    inst = run_cli(capsys, "--json", "edit", "--dataset", "two", "--scene", "scene-0000", "--list").json()["instances"][0]
    r = run_cli(capsys, "edit", "--dataset", "two", "--scene", "scene-0000", "--remove", inst["id"], "--name", "cut",
                "--no-previews")
    assert r.code == 0, r.err
    r = run_cli(capsys, "forecast", "--scene", "scene-0001", "--horizon", "1", "--no-previews")
    assert r.code == 2 and len(r.err_lines) == 1, r.err
    assert "not in dataset 'cut'" in r.err and "it is in dataset 'two' (pass --dataset two)" in r.err


def test_default_names_carry_the_dataset(capsys):
    """Renders and forecasts of one scene from two datasets are told apart by name, not only by hash."""
    for ds in ("north", "south"):
        assert run_cli(capsys, "prepare-occ", "--scenes", "1", "--frames", "6", "--name", ds, "--seed",
                       "1" if ds == "north" else "2", "--no-previews").code == 0
    names = []
    for ds in ("north", "south"):
        r = run_cli(capsys, "--json", "render", "--dataset", ds, "--scene", "scene-0000", "--resolution", "32x64",
                    "--no-lidar", "--frames", "0:1", "--no-previews", "--cameras", "CAM_FRONT")
        assert r.code == 0, r.err
        names.append(r.json()["name"])
        r = run_cli(capsys, "--json", "forecast", "--dataset", ds, "--scene", "scene-0000", "--traj", "gt",
                    "--horizon", "1", "--no-previews", "--no-adherence")
        assert r.code == 0, r.err
        forecast = r.json()["name"]
        assert forecast.startswith(f"{ds}-scene-0000-gt")
        r = run_cli(capsys, "--json", "render", "--occ", forecast, "--resolution", "32x64", "--no-lidar",
                    "--no-previews", "--cameras", "CAM_FRONT")
        assert r.code == 0 and r.json()["name"].startswith(f"{forecast}-32x64-"), r.err
    assert names[0].startswith("north-scene-0000-32x64-") and names[1].startswith("south-scene-0000-32x64-")


def test_a_missing_dataset_hint_never_suggests_an_invalid_name(capsys):
    """`--dataset ../evil` is no name: the hint to make one keeps the NAME placeholder."""
    assert run_cli(capsys, "prepare-occ", "--scenes", "1", "--frames", "6", "--name", "one", "--no-previews").code == 0
    r = run_cli(capsys, "list", "scenes", "--dataset", "../evil")
    assert r.code == 2 and len(r.err_lines) == 1
    assert "make it with `gdrive prepare-occ --name NAME`" in r.err
    r = run_cli(capsys, "list", "scenes", "--dataset", "other")
    assert r.code == 2 and "make it with `gdrive prepare-occ --name other`" in r.err
