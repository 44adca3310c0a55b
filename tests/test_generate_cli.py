"""`gdrive generate`: forecast -> render -> video on CPU with a tiny random `debug` video model.

The 241-frame rollout runs the whole pipeline with the forecaster replaced by copy-last (the
forecaster itself is tested in test_forecast_cli.py), since 40 forecast steps and their ray-cast
masks would cost minutes here; the condition-video test runs the real demo forecaster. Bad input
exits 2 with one line and leaves the workspace as it was.
"""

import json
import shutil
from pathlib import Path

import imageio
import numpy as np
import pytest
import torch
from safetensors.torch import save_file

import geniedrive.pipelines.occworld.forecast as forecast_module
from geniedrive.pipelines.data.occ3d import FREE
from geniedrive.pipelines.sensors.camera import CameraRender, colorize
from tests.helpers import run_cli, write_occ_folder

VIEWS = ["CAM_FRONT_LEFT", "CAM_FRONT", "CAM_FRONT_RIGHT", "CAM_BACK_RIGHT", "CAM_BACK", "CAM_BACK_LEFT"]
RES = ("--resolution", "16x32")  # the debug video model's pixel multiple is 16 (VAE stride 8 x patch 2)


@pytest.fixture
def ws(capsys, tmp_path):
    """A dataset 'w' with one 4-frame scene 'town00' of sparse occupancy (a road patch, a car, a
    wall), so the renders stay cheap; frame 3 (the current frame) has 3 past frames."""
    src = write_occ_folder(tmp_path / "export", scenes=1, frames=4)
    for t, f in enumerate(sorted((src / "town00").glob("*.npz"))):
        occ = np.zeros((200, 200, 16), np.uint8)
        occ[80:130, 85:115, 2] = 1  # road
        occ[110 + t:121 + t, 90:95, 3:7] = 2  # a car moving ahead
        occ[140:142, 80:120, 3:8] = 3  # a wall
        np.savez_compressed(f, semantics=occ, mask_lidar=np.ones_like(occ), mask_camera=(occ != 0).astype(np.uint8))
    r = run_cli(capsys, "prepare-occ", "--source", "occ-folder", "--dataroot", src, "--name", "w", "--no-previews")
    assert r.code == 0, r.err
    return tmp_path / "ws"


@pytest.fixture(scope="module")
def video_model(tmp_path_factory) -> Path:
    """A random `debug` video model saved the way finetune-video saves one."""
    from geniedrive.pipelines.video.configs import get_config
    from geniedrive.pipelines.video.loading import build_video_model, save_video_model

    folder = tmp_path_factory.mktemp("video") / "debug"
    save_video_model(build_video_model(get_config("debug"), seed=0), folder)
    return folder


def _frames(path: Path) -> list[np.ndarray]:
    with imageio.get_reader(str(path)) as reader:
        return [np.asarray(f) for f in reader]


def _tree(root: Path) -> list[tuple[str, int]]:
    return sorted((str(p.relative_to(root)), p.stat().st_size) for p in root.rglob("*"))


def _copy_last_forecaster(monkeypatch) -> list[int]:
    """Replace the forecaster by copy-last and its ray-cast masks by trivial ones; returns the
    horizons it was asked for."""
    calls = []

    def copy_last(model, observed, observed_poses, poses, commands, device):
        calls.append(len(poses))
        return np.repeat(observed[-1:], len(poses), axis=0)

    monkeypatch.setattr(forecast_module, "forecast_occupancy", copy_last)
    monkeypatch.setattr(forecast_module, "visibility_masks",
                        lambda sem, rig: (np.ones_like(sem), (sem != FREE).astype(np.uint8)))
    return calls


@pytest.mark.slow
def test_241_frames_by_rollout_with_a_video_model(capsys, ws, video_model, monkeypatch):
    calls = _copy_last_forecaster(monkeypatch)
    args = ("generate", "--dataset", "w", "--traj", "fixed_turn_left", "--frames", "241", "--video-model", video_model, *RES,
            "--steps", "1", "--chunk-frames", "81", "--name", "g", "--json")
    r = run_cli(capsys, *args)
    assert r.code == 0, r.err
    out = r.json()
    assert calls == [40]  # 241 frames = 20 s = 40 keyframes at 2 Hz after the current one
    assert out["video"] == "generated" and out["frames"] == 241 and out["views"] == VIEWS
    assert "generating 241 frames x 6 views: 3/3" in r.err  # three 81-frame rounds
    art = ws / "generations" / "g"
    for view in VIEWS:
        frames = _frames(art / f"{view}.mp4")
        assert len(frames) == 241 and frames[0].shape == (16, 32, 3), view
    grid = _frames(art / "grid.mp4")
    assert len(grid) == 241 and grid[0].shape == (32, 96, 3)
    manifest = json.loads((art / "manifest.json").read_text())
    assert manifest["video"] == "generated" and manifest["id"] == out["id"]
    assert manifest["config"]["resolved"]["settings"]["chunk_frames"] == 81
    assert manifest["config"]["resolved"]["settings"]["steps"] == 1
    assert manifest["video_model"]["path"] == str(video_model) and manifest["video_model"]["config"]["name"] == "debug"
    assert set(manifest["inputs"]) == {"dataset", "world_model", "video_model"}
    run = json.loads((art / "run.json").read_text())
    render = Path(run["render"]["path"])
    assert len(run["frame_links"]) == 241 and run["frame_links"][-1]["t_s"] == pytest.approx(20.0)
    assert all((render / f["lidar"]).is_file() for f in run["frame_links"])
    keyframes = run["occupancy"]  # the current keyframe (the dataset's file), then the forecast's 40
    assert len(keyframes) == 41 and keyframes[0]["token"] == "f003" and keyframes[0]["source"] == "observed"
    assert {k["source"] for k in keyframes[1:]} == {"forecast"}
    first, last = Path(run["frame_links"][0]["occupancy"]), Path(run["frame_links"][-1]["occupancy"])
    assert first == ws / "datasets" / "w" / "gts" / "town00" / "f003" / "labels.npz" and first.is_file()
    assert last.is_relative_to(Path(run["forecast"]["path"])) and last.is_file()
    assert sorted(p.name for p in (ws / "generations").iterdir()) == [".locks", "g"]  # no hidden occupancy folder
    # The same request again is reused before any stage runs.
    again = run_cli(capsys, *args)
    assert again.code == 0 and again.json()["reused"] is True and calls == [40]


def test_without_a_video_model_writes_the_condition_video_and_says_so(capsys, ws):
    r = run_cli(capsys, "generate", "--dataset", "w", "--scene", "town00", "--frames", "5", *RES, "--json")
    assert r.code == 0, r.err
    out = r.json()
    note = "no --video-model: wrote the condition video"
    assert out["video"] == "conditions" and out["note"].startswith(note) and note in r.err
    art = Path(out["path"])
    assert art == ws / "generations" / out["name"]
    manifest = json.loads((art / "manifest.json").read_text())
    assert manifest["video"] == "conditions" and manifest["video_model"] is None
    assert "settings" not in manifest["id_fields"] and manifest["config"]["resolved"]["horizon"] == 1
    assert sorted(p.name for p in art.iterdir()) == sorted([f"{v}.mp4" for v in VIEWS] + [
        "grid.mp4", "side_by_side.mp4", "manifest.json", "run.json"])
    front = _frames(art / "CAM_FRONT.mp4")
    assert len(front) == 5 and len(_frames(art / "grid.mp4")) == 5
    side = _frames(art / "side_by_side.mp4")  # top-down (+ legend) | 2 x 3 views | LiDAR, 32 rows
    assert len(side) == 5 and side[0].shape[0] == 32 and side[0].shape[1] > 96 + 32 + 32
    # Frame 0 is the render's frame 0 (the current keyframe), colourised as the video model sees it.
    run = json.loads((art / "run.json").read_text())
    render = Path(run["render"]["path"])
    with np.load(render / run["frame_links"][0]["cameras"]) as z:
        i = json.loads((render / "frames.json").read_text())["cameras"].index("CAM_FRONT")
        labels, depth = z["labels"][i:i + 1], z["depth"][i:i + 1].astype(np.float32)
    want = colorize(CameraRender(torch.from_numpy(labels), torch.from_numpy(depth), torch.ones(1)))[0]
    assert np.abs(front[0].astype(int) - want.astype(int)).mean() < 12  # H.264 at 16x32 is lossy
    assert run["frame_links"][0]["keyframe"] == "f003" and run["forecast"]["id"] == manifest["forecast"]["id"]
    again = run_cli(capsys, "generate", "--dataset", "w", "--frames", "5", *RES, "--json")  # first scene by default
    assert again.code == 0 and again.json()["reused"] is True and again.json()["id"] == out["id"]


def test_prompt_embeddings_apply_guidance_and_the_seed_is_recorded(capsys, ws, video_model, monkeypatch, tmp_path):
    _copy_last_forecaster(monkeypatch)
    prompts = tmp_path / "prompt.safetensors"
    save_file({"prompt": torch.randn(8, 16), "negative": torch.zeros(8, 16)}, str(prompts))  # debug: text_dim 16
    r = run_cli(capsys, "generate", "--dataset", "w", "--frames", "5", "--video-model", video_model, *RES,
                "--steps", "1", "--guidance", "3", "--prompt-embeds", prompts, "--seed", "3", "--json")
    assert r.code == 0, r.err
    out = r.json()
    assert out["video"] == "generated" and "note" not in out
    manifest = json.loads((Path(out["path"]) / "manifest.json").read_text())
    resolved = manifest["config"]["resolved"]
    assert resolved["guidance_applied"] is True and resolved["settings"]["guidance"] == 3.0
    assert resolved["settings"]["seed"] == 3 and resolved["settings"]["chunk_frames"] == 9  # the debug model's
    assert manifest["inputs"]["prompt_embeds"]
    assert len(_frames(Path(out["path"]) / "CAM_BACK.mp4")) == 5


BAD = {
    "frames": (["--frames", "240"], "error: --frames 240: frame counts must be 4k + 1; nearest valid: 237 or 241"),
    "resolution": (["--video-model", "{vm}", "--resolution", "20x40"], "error: --resolution 20x40: height and width must be positive multiples of 16"),
    "odd": (["--resolution", "15x32"], "error: --resolution 15x32: H.264 video needs an even height and width"),
    "missing-model": (["--video-model", "{tmp}/nothing"], "error: --video-model '{tmp}/nothing': no such video-model"),
    "corrupt-model": (["--video-model", "{corrupt}"], "error: --video-model {corrupt}/transformer: cannot load"),
    "chunk": (["--video-model", "{vm}", "--chunk-frames", "80"], "error: --chunk-frames 80: frame counts must be 4k + 1"),
    "scene": (["--scene", "town99"], "error: --scene 'town99': not in dataset 'w'"),
    "traj": (["--traj", "fly"], "error: --traj 'fly': unknown trajectory"),
    "name": (["--name", "taken"], "error: --name taken: "),
    "prompt-shape": (["--video-model", "{vm}", "--prompt-embeds", "{prompt}"],
                     "error: --prompt-embeds {prompt}: 'prompt' has shape (8, 4096), the video model needs [L, 16]"),
    "prompt-alone": (["--prompt-embeds", "{prompt}"], "error: --prompt-embeds: only used with --video-model"),
    "steps": (["--video-model", "{vm}", "--steps", "0"], "error: --steps 0: must be at least 1"),
    "gt": (["--traj", "gt"], "error: --traj gt: scene 'town00' has no logged keyframe after the start frame 3"),
    "waypoints": (["--traj", "{waypoints}"],
                  "error: --frames 241: --traj {waypoints} covers 2 keyframes (1 s) after frame 3, 40 needed; "
                  "pass --frames 13 or fewer"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_input_exits_2_with_one_line_and_writes_nothing(capsys, ws, video_model, tmp_path, case):
    corrupt = tmp_path / "corrupt"
    shutil.copytree(video_model, corrupt)
    (corrupt / "transformer" / "diffusion_pytorch_model.safetensors").write_bytes(b"not weights")
    prompt = tmp_path / "wide.safetensors"
    save_file({"prompt": torch.zeros(8, 4096)}, str(prompt))  # UMT5 width, not the debug model's 16
    if case == "name":  # a folder of that name that gdrive did not make
        (ws / "generations" / "taken").mkdir(parents=True)
    before = _tree(ws)
    args, message = BAD[case]
    waypoints = tmp_path / "short.csv"
    waypoints.write_text("t,x,y\n0.5,4,0\n1.0,8,0\n")
    fill = {"vm": str(video_model), "tmp": str(tmp_path), "corrupt": str(corrupt), "prompt": str(prompt),
            "waypoints": str(waypoints)}
    r = run_cli(capsys, "generate", "--dataset", "w", *[a.format(**fill) for a in args])
    assert r.code == 2, r.err
    assert len(r.err_lines) == 1 and r.err_lines[0].startswith(message.format(**fill)), r.err
    assert _tree(ws) == before


def test_the_trajectory_is_planned_once_per_generation(capsys, ws, monkeypatch):
    """generate plans the trajectory to check --frames and hands it to the forecast stage, which does
    not plan it again."""
    import geniedrive.pipelines.video.generate as generate_module

    _copy_last_forecaster(monkeypatch)
    planned = []
    real = forecast_module.plan_trajectory

    def counting(*args, **kwargs):
        planned.append(args[2] if len(args) > 2 else kwargs.get("traj"))
        return real(*args, **kwargs)

    monkeypatch.setattr(forecast_module, "plan_trajectory", counting)
    monkeypatch.setattr(generate_module, "plan_trajectory", counting)
    r = run_cli(capsys, "generate", "--dataset", "w", "--traj", "fixed_turn_left", "--frames", "9", *RES, "--json")
    assert r.code == 0, r.err
    assert planned == ["fixed_turn_left"]
