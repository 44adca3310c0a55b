"""The embedded demo world is built on first use: forecast / render / generate on an empty workspace."""

from __future__ import annotations

import json

from tests.helpers import artifact_dirs, run_cli


def test_forecast_on_an_empty_workspace_builds_the_demo_world_and_says_so(capsys, tmp_path):
    ws = tmp_path / "ws"
    r = run_cli(capsys, "--json", "forecast", "--scene", "scene-0001", "--horizon", "1", "--no-previews", "--no-adherence")
    assert r.code == 0, r.err
    assert any("building the embedded demo world 'demo' first" in line for line in r.err_lines)
    assert artifact_dirs(ws) == ["demo"]
    manifest = json.loads((ws / "datasets" / "demo" / "manifest.json").read_text())
    assert [s["name"] for s in manifest["scenes"]] == [f"scene-{i:04d}" for i in range(4)]
    assert r.json()["frames"] == 1
    again = run_cli(capsys, "forecast", "--scene", "scene-0001", "--horizon", "1", "--no-previews", "--no-adherence")
    assert again.code == 0 and not any("building the embedded demo world" in line for line in again.err_lines)


def test_a_workspace_with_a_broken_dataset_is_not_empty(capsys, tmp_path):
    broken = tmp_path / "ws" / "datasets" / "d"
    broken.mkdir(parents=True)
    (broken / "manifest.json").write_text("[1, 2]")
    r = run_cli(capsys, "forecast", "--scene", "scene-0000")
    assert r.code == 2 and "no such dataset" in r.err
    assert artifact_dirs(tmp_path / "ws") == ["d"]
