"""The README's examples and stated facts, checked against the code: its Python blocks run, and
the lists it gives (recipe commands, window keys) are the code's."""

from __future__ import annotations

import re
import subprocess
import sys

from geniedrive.cli.app import COMMANDS
from tests.helpers import REPO, run_cli

README = (REPO / "README.md").read_text()


def _python_block(marker: str) -> str:
    """The README's ```python block holding `marker`."""
    blocks = re.findall(r"```python\n(.*?)```", README, re.S)
    (block,) = [b for b in blocks if marker in b]
    return block


def test_recipe_commands_are_the_ones_the_readme_names(capsys):
    """Only the commands whose --config is a YAML recipe are named; the others refuse a recipe."""
    line = re.search(r"`--config recipe\.yaml` \(([^)]*)\)", README).group(1)
    named = set(re.findall(r"`([a-z-]+)`", line))
    takes = set()
    for name in COMMANDS:
        r = run_cli(capsys, name, "--help")
        if re.search(r"--config\s+\S+\s+YAML recipe", r.out):
            takes.add(name)
    assert named == takes == {"prepare-occ", "train-vae", "train-forecaster", "finetune-video"}


def test_the_dataset_python_example_runs_and_names_the_window_keys(tmp_path, capsys):
    """The README's data-API block runs as written on a small demo dataset, and its comment lists
    exactly the keys a training window has."""
    # the block opens "demo" in the default workspace (GDRIVE_WORKSPACE, this test's own)
    assert run_cli(capsys, "prepare-occ", "--scenes", "1", "--frames", "12", "--name", "demo", "--no-previews",
                   "--quiet").code == 0
    block = _python_block("ForecastWindows(open_cache(ds)")
    keys = re.search(r"keys: ([a-z_, ]+)", block).group(1).split(", ")
    code = block + "\nprint('KEYS', ','.join(windows[0].keys()))\n"
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip().splitlines()[-1] == "KEYS " + ",".join(keys)


def test_the_python_api_example_runs_and_prints_what_its_comments_say(tmp_path, capsys):
    """The README's notebook example runs as written on the demo world (one scene of it), and each
    `print(...)  # shown` line prints exactly what its comment shows."""
    assert run_cli(capsys, "prepare-occ", "--scenes", "1", "--name", "demo", "--no-previews", "--quiet").code == 0
    block = _python_block("gd.forecast(wm, scene")
    shown = [m.group(1).strip() for m in re.finditer(r"^[ \t]*print\(.*\)[ \t]+#[ \t]*(.*)$", block, re.M)]
    assert len(shown) == 6
    proc = subprocess.run([sys.executable, "-c", block], cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip().splitlines() == shown
