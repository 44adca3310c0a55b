"""The README's examples and stated facts, checked against the code: its Python blocks run, and
the lists it gives (recipe commands, window keys) are the code's."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys

import click
import typer

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


def _readme_commands() -> list[list[str]]:
    """Every `gdrive ...` command line of the README's bash blocks, as arguments (comments dropped,
    continuation lines joined)."""
    out = []
    for block in re.findall(r"```bash\n(.*?)```", README, re.S):
        for line in block.replace("\\\n", " ").splitlines():
            line = line.split(" # ")[0].split("#")[0] if line.lstrip().startswith("#") else line.split("  #")[0]
            for part in line.split("&&"):
                words = shlex.split(part)
                if words and words[0].endswith("gdrive"):
                    out.append(words[1:])
    return out


def test_every_readme_command_names_a_command_and_flags_that_exist():
    """Each `gdrive` line of the README parses against the real command line: the command, every
    flag and every flag value's type (nothing runs)."""
    from geniedrive.cli import options
    from geniedrive.cli.app import build_command

    group = build_command()
    commands = _readme_commands()
    assert len(commands) >= 20
    for args in commands:
        _, rest = options.split_global_options(list(args))
        name, *tail = rest
        sub = group.get_command(None, name)
        assert sub is not None, f"README: gdrive {' '.join(args)}: no command '{name}'"
        if isinstance(sub, click.Group):  # evaluate occ / video
            sub, tail = sub.get_command(None, tail[0]), tail[1:]
        try:
            sub.make_context(name, list(tail))
        except click.UsageError as exc:
            raise AssertionError(f"README: gdrive {' '.join(args)}: {exc.format_message()}") from None


def test_the_readme_parameter_counts_are_model_info_s(capsys):
    counts = {}
    for config in ("paper", "small"):
        r = run_cli(capsys, "model-info", "--model-config", config, "--json")
        assert r.code == 0, r.err
        counts[config] = r.json()["parameters"]
    paper = counts["paper"]
    said = re.search(r"VAE \*\*([\d,]+)\*\* and predictor\s+\*\*([\d,]+)\*\* parameters \(\*\*([\d,]+)\*\* in all", README)
    assert [int(v.replace(",", "")) for v in said.groups()] == [
        paper["vae"]["total"], paper["forecaster"]["total"], paper["total"]["parameters"]]
    small = re.search(r"`small` \(([\d,]+)\)", README).group(1)
    assert int(small.replace(",", "")) == counts["small"]["total"]["parameters"]


def test_every_readme_python_block_imports_what_it_uses():
    """The import lines of each README Python block run (the blocks that need real weights or data
    are not run whole; the notebook and dataset blocks are, above)."""
    for block in re.findall(r"```python\n(.*?)```", README, re.S):
        imports = re.findall(r"^(?:from [\w.]+ import \([^)]*\)|from [\w.]+ import [^\n]+|import [^\n]+)", block, re.M)
        assert imports, block[:80]
        code = "\n".join(imports)
        proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, f"{code}\n{proc.stderr[-1500:]}"
