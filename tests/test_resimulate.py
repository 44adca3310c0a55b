"""Counterfactual ground truth: a synthetic scene re-voxelised along another ego trajectory."""

from __future__ import annotations

import numpy as np
import pytest

from geniedrive.pipelines.data.occ3d import CLASS_INDEX, FREE
from geniedrive.pipelines.data.synthetic.config import SyntheticConfig
from geniedrive.pipelines.data.synthetic.generate import Simulated, generate_scene
from geniedrive.pipelines.data.synthetic.resimulate import resimulate
from geniedrive.pipelines.errors import BadInput

CFG = SyntheticConfig(frames=6)


def test_the_logged_trajectory_reproduces_the_scene_exactly():
    data = generate_scene(3, 2, CFG)
    sim = Simulated(3, 2, CFG)
    cf = resimulate(3, 2, CFG, sim.ego_map_poses(), np.arange(CFG.frames), sim=sim)
    assert np.array_equal(cf.semantics, data.semantics) and np.array_equal(cf.instances, data.instances)
    assert np.array_equal(cf.mask_lidar, data.mask_lidar) and np.array_equal(cf.mask_camera, data.mask_camera)
    assert {n: (i.id, i.frames) for n, i in cf.table.items()} == {n: (i.id, i.frames) for n, i in data.meta.instances.items()}
    assert np.allclose(cf.ego_to_global, data.meta.ego_to_global)


def test_another_trajectory_sees_the_world_from_there_even_beyond_the_logged_area():
    sim = Simulated(3, 2, CFG)
    log = sim.ego_map_poses()
    far = log.copy()
    far[:, 0] += 250.0 * np.cos(far[:, 2])  # 250 m further along the road: outside the world the log built
    far[:, 1] += 250.0 * np.sin(far[:, 2])
    cf = resimulate(3, 2, CFG, far, np.arange(CFG.frames), sim=sim)
    data = resimulate(3, 2, CFG, log, np.arange(CFG.frames), sim=sim)
    assert (cf.semantics != data.semantics).mean() > 0.05
    built = np.isin(cf.semantics, [CLASS_INDEX["manmade"], CLASS_INDEX["vegetation"]]).mean(axis=(1, 2, 3))
    assert (built > 0.005).all()  # a city there, not an empty plane
    assert (cf.semantics[:, :, :, 2] != FREE).all()  # ground everywhere
    parked = [i for i in cf.table.values() if i.attributes.get("type") == "parked"]
    assert parked and all(np.ptp(i.boxes[:, :2], 0).max() < 1e-6 for i in parked)
    for n, inst in cf.table.items():  # instance voxels carry their instance's class
        for f, frame in enumerate(inst.frames[:2]):
            assert set(np.unique(cf.semantics[frame][cf.instances[frame] == inst.id])) == {inst.cls}, n


def test_the_world_runs_on_past_the_scene_and_its_frames_stay_the_same():
    sim = Simulated(3, 2, CFG, extra_frames=41)
    assert np.array_equal(sim.global_boxes()[:CFG.frames], Simulated(3, 2, CFG).global_boxes())
    ego = sim.ego_map_poses()[-1:]
    cf = resimulate(3, 2, CFG, ego, [CFG.frames + 40], sim=sim)  # 20 s past the end of the scene
    assert cf.semantics.shape == (1, 200, 200, 16) and (cf.semantics[0, :, :, 2] != FREE).all()
    with pytest.raises(BadInput, match="at most 600 keyframes"):
        resimulate(3, 2, CFG, np.zeros((1, 3)), [CFG.frames + 700])


def test_forecast_and_generate_take_the_simulator_world(capsys, tmp_path):
    import json

    from tests.helpers import run_cli, write_occ_folder

    assert run_cli(capsys, "prepare-occ", "--scenes", "1", "--frames", "8", "--seed", "5", "--name", "s", "--no-previews").code == 0
    r = run_cli(capsys, "--json", "forecast", "--dataset", "s", "--scene", "scene-0000", "--world", "simulator",
                "--horizon", "8", "--no-previews", "--no-adherence")  # 8 keyframes: past the scene's end (frame 7)
    assert r.code == 0, r.err
    out = r.json()
    assert out["world"] == "simulator" and out["frames"] == 8 and "re-simulating 8 keyframes" in r.err
    art = tmp_path / "ws" / "forecasts" / out["name"]
    meta = json.loads((art / "frames.json").read_text())
    assert meta["world"] == "simulator" and meta["model"] is None
    token = meta["frames"][0]["token"]
    assert (art / "gts" / "scene-0000" / token / "instances.npz").is_file()
    g = run_cli(capsys, "--json", "generate", "--dataset", "s", "--frames", "5", "--resolution", "32x64")
    assert g.code == 0, g.err
    assert g.json()["world"] == "simulator" and "keyframes from the simulator" in g.err
    src = write_occ_folder(tmp_path / "export", scenes=1, frames=6)
    assert run_cli(capsys, "prepare-occ", "--source", "occ-folder", "--dataroot", src, "--name", "o", "--no-previews").code == 0
    bad = run_cli(capsys, "forecast", "--dataset", "o", "--scene", "town00", "--world", "simulator")
    assert bad.code == 2 and len(bad.err_lines) == 1 and "has no simulator behind it" in bad.err
    bad = run_cli(capsys, "forecast", "--dataset", "o", "--scene", "town00", "--world", "dream")
    assert bad.code == 2 and "--world 'dream': unknown" in bad.err
