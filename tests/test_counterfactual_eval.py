"""`gdrive evaluate occ --counterfactual`: named routes forecast by the world model and scored against
the scene re-simulated along the same route, at 1, 2, 3, 5 and 10 s, beside copy-last and ego-warp."""

from __future__ import annotations

import json

import numpy as np

from geniedrive.pipelines.data.dataset import OccDataset
from geniedrive.pipelines.data.occ3d import load_labels
from geniedrive.pipelines.metrics.occupancy import confusion_matrix, summarise
from geniedrive.pipelines.occworld.evaluate_counterfactual import CF_HORIZONS, CF_STEPS, METHODS
from tests.helpers import run_cli, write_occ_folder


def test_counterfactual_scores_a_route_against_the_simulator_truth_that_forecast_writes(capsys, tmp_path):
    assert run_cli(capsys, "prepare-occ", "--scenes", "1", "--frames", "10", "--seed", "4", "--name", "d",
                   "--no-previews").code == 0
    out = tmp_path / "cf.json"
    r = run_cli(capsys, "--json", "evaluate", "occ", "--dataset", "d", "--counterfactual", "--max-routes", "1", "--out", out)
    assert r.code == 0, r.err
    res = r.json()
    assert json.loads(out.read_text())["routes"] == res["routes"] == 1 and res["protocol"]["name"] == "counterfactual"
    for m in METHODS:
        assert set(res[m]) == {h for h, _ in CF_HORIZONS} == {"1s", "2s", "3s", "5s", "10s"}
        for h in res[m].values():
            assert set(h) == {"miou_drop_zero", "miou_unseen_one", "iou"} and all(0.0 <= v <= 100.0 for v in h.values())
    assert res["per_trajectory"]["straight"]["routes"] == 1  # the first route from frame 3
    # the truth it scored against is what `forecast --world simulator` writes for the same route
    r = run_cli(capsys, "--json", "forecast", "--dataset", "d", "--scene", "scene-0000", "--traj", "straight",
                "--horizon", str(CF_STEPS), "--world", "simulator", "--no-previews", "--no-adherence")
    assert r.code == 0, r.err
    folder = tmp_path / "ws" / "forecasts" / r.json()["name"]
    frames = json.loads((folder / "frames.json").read_text())["frames"]
    scene = OccDataset.open("d", tmp_path / "ws").scene("scene-0000")
    current = scene.semantics(3)
    for h, f in CF_HORIZONS:
        truth = load_labels(folder / "gts" / "scene-0000" / frames[f]["token"] / "labels.npz")["semantics"]
        want = summarise(confusion_matrix(current, truth))
        got = res["per_trajectory"]["straight"]["copy_last"][h]
        assert got == want, (h, got, want)
    # the model was scored on other voxels than the copy: the numbers differ
    assert res["forecast"]["1s"] != res["copy_last"]["1s"]


def test_counterfactual_bad_input_exits_2_with_one_line(capsys, tmp_path):
    src = write_occ_folder(tmp_path / "export", scenes=1, frames=12)
    assert run_cli(capsys, "prepare-occ", "--source", "occ-folder", "--dataroot", src, "--name", "o", "--no-previews").code == 0
    cases = [
        (("--dataset", "o", "--counterfactual"), "holds no synthetic scene"),
        (("--dataset", "o", "--counterfactual", "--max-windows", "3"), "--max-windows"),
        (("--dataset", "o", "--max-routes", "3"), "--max-routes: only with --counterfactual"),
        (("--dataset", "o", "--counterfactual", "--max-routes", "0"), "--max-routes 0"),
    ]
    for args, message in cases:
        r = run_cli(capsys, "evaluate", "occ", *args)
        assert r.code == 2 and len(r.err_lines) == 1 and message in r.err, (args, r.err)
    r = run_cli(capsys, "evaluate", "video", "--counterfactual")
    assert r.code == 2 and "--counterfactual: not an option of 'evaluate video'" in r.err
