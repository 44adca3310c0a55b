"""A property over artifact names, for every stage that takes --name: a random name (with '/', '..',
NUL, newlines, unicode, up to 2,000 characters) either makes the artifact inside the workspace
(exit 0) or exits 2 naming the rule before any work; nothing ever appears outside the workspace.

Names come from a seeded generator (so a failure is reproducible from the printed name); every
stage also gets names at the length limit and one past it."""

from __future__ import annotations

import os
import random
import string
from pathlib import Path

import pytest

from geniedrive.pipelines.store.names import MAX_NAME, is_valid_name
from tests.helpers import run_cli
from tests.test_finetune_video_cli import KEYFRAMES, _write_camera_images
from tests.nuscenes_fixture import build_nuscenes_folder

NAMES_PER_STAGE = 24
PIECES = ["/", "..", ".", "\x00", "\n", "\r", "\t", " ", "*", "?", "~", "$HOME", "é", "雪", "🚗", "\u202e",
          "\\", ":", "'", '"', "latest", "x" * 300]
NAME_CHARS = string.ascii_letters + string.digits + "._-"


def random_names(seed: int) -> list[str]:
    """Limit cases first, then random names: many broken, a few well-formed, a few very long."""
    rng = random.Random(seed)
    tag = f"s{seed}-"  # the stages share a workspace: their names must not meet
    names = [(tag + "a" * MAX_NAME)[:MAX_NAME], tag + "b" * (MAX_NAME + 1 - len(tag)), "../" + "c" * 10, "/tmp/" + "d" * 8]
    while len(names) < NAMES_PER_STAGE:
        kind = rng.random()
        if kind < 0.06:  # well-formed (may still be too long)
            n = rng.choice(string.ascii_letters) + "".join(rng.choice(NAME_CHARS) for _ in range(rng.randint(0, 130)))
        elif kind < 0.9:  # pieces of paths and odd characters among good ones
            n = "".join(rng.choice(PIECES) if rng.random() < 0.4 else rng.choice(NAME_CHARS)
                        for _ in range(rng.randint(1, 40)))
        else:
            n = "".join(chr(rng.randint(1, 0x2FFF)) for _ in range(rng.randint(1, 2000)))
        names.append(n)
    return names


def snapshot(root: Path, skip: Path) -> dict[str, int]:
    """Every path under root (outside `skip`) with its size: what must not change."""
    out = {}
    for top, dirs, files in os.walk(root):
        if Path(top) == skip or skip in Path(top).parents:
            continue
        for n in dirs + files:
            p = Path(top) / n
            out[str(p)] = p.stat().st_size if p.is_file() else -1
    return out


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """One workspace holding a synthetic dataset 'd' (1 scene x 4 frames), a debug VAE 'v' and a
    nuScenes-format dataset 'nus' with camera images (for finetune-video)."""
    from geniedrive.cli.app import main

    base = tmp_path_factory.mktemp("names")
    ws, nusc = base / "ws", base / "nusc"
    assert main(["--workspace", str(ws), "--quiet", "prepare-occ", "--scenes", "1", "--frames", "4", "--name", "d",
                 "--no-previews", "--workers", "1"]) == 0
    assert main(["--workspace", str(ws), "--quiet", "train-vae", "--dataset", "d", "--model-config", "debug",
                 "--steps", "1", "--batch-size", "1", "--name", "v"]) == 0
    build_nuscenes_folder(nusc, version="v1.0-mini", frames=KEYFRAMES)
    _write_camera_images(nusc, "v1.0-mini")
    assert main(["--workspace", str(ws), "--quiet", "prepare-occ", "--source", "nuscenes", "--dataroot", str(nusc),
                 "--version", "v1.0-mini", "--name", "nus", "--no-previews"]) == 0
    return base, ws


# stage -> (artifact folder, arguments besides --name)
STAGES = {
    "prepare-occ": ("datasets", ["--scenes", "1", "--frames", "2", "--no-previews", "--workers", "1"]),
    "train-vae": ("models", ["--dataset", "d", "--model-config", "debug", "--steps", "1", "--batch-size", "1",
                             "--ckpt-every", "0"]),
    "train-forecaster": ("models", ["--stage", "predict", "--dataset", "d", "--init", "v", "--steps", "1",
                                    "--val-windows", "1", "--ckpt-every", "0"]),
    "forecast": ("forecasts", ["--dataset", "d", "--scene", "scene-0000", "--frame", "0", "--horizon", "1",
                               "--no-previews", "--no-adherence"]),
    "edit": ("datasets", ["--dataset", "d", "--scene", "scene-0000", "--move", "@first", "--by", "0,0,1",
                          "--no-previews", "--force"]),
    "render": ("renders", ["--dataset", "d", "--scene", "scene-0000", "--frames", "0:1", "--resolution", "16x32",
                           "--no-lidar", "--no-previews"]),
    "generate": ("generations", ["--dataset", "d", "--scene", "scene-0000", "--frames", "5", "--resolution", "16x32"]),
    "finetune-video": ("video-models", ["--dataset", "nus", "--video-config", "debug", "--clip-frames", "5",
                                        "--steps", "1", "--ckpt-every", "0"]),
}


@pytest.mark.slow
@pytest.mark.parametrize("stage", list(STAGES))
def test_any_name_is_made_inside_the_workspace_or_refused_before_work(capsys, monkeypatch, world, stage, one_torch_thread):
    base, ws = world
    folder, args = STAGES[stage]
    if "@first" in args:
        from geniedrive.pipelines.data.dataset import OccDataset

        first = sorted(OccDataset.open("d", ws).scene("scene-0000").instances)[0]
        args = [first if a == "@first" else a for a in args]
    cwd = base / f"cwd-{stage}"
    cwd.mkdir()
    monkeypatch.chdir(cwd)  # a relative path that escapes would land here or above
    made = refused = 0
    for i, name in enumerate(random_names(seed=sum(map(ord, stage)))):
        outside = snapshot(base, ws)
        inside = snapshot(ws, ws / "none")
        r = run_cli(capsys, "--workspace", ws, "--quiet", stage, *args, "--name", name)
        shown = ascii(name)[:80]
        assert snapshot(base, ws) == outside, f"{stage} --name {shown} wrote outside the workspace"
        if name.startswith("/") and "\x00" not in name and len(name) < 4000:
            assert not Path(name).exists(), f"{stage} --name {shown} made an absolute path"
        if is_valid_name(name):
            assert r.code == 0, f"{stage} --name {shown}: {r.err}"
            assert (ws / folder / name / "manifest.json").is_file()
            made += 1
        else:
            assert r.code == 2 and len(r.err_lines) == 1, f"{stage} --name {shown}: exit {r.code}, {r.err!r}"
            assert "--name" in r.err and ("not a valid artifact name" in r.err or "reserved" in r.err), r.err
            assert f"1-{MAX_NAME} characters" in r.err or "reserved" in r.err
            assert snapshot(ws, ws / "none") == inside, f"{stage} --name {shown} wrote before refusing"
            refused += 1
    assert made >= 1 and refused >= NAMES_PER_STAGE // 2
