"""The command line: the command table, global options, exit codes and one-line errors."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

from geniedrive.cli.app import COMMANDS
from tests.helpers import REPO, run_cli, write_occ_folder


def _listed_commands(help_text: str) -> list[str]:
    block = help_text.split("Commands:", 1)[1]
    return [m.group(1) for m in re.finditer(r"^\s{2}([a-z][a-z0-9-]+)\s", block, re.M)]


def test_help_lists_exactly_the_command_table(capsys):
    r = run_cli(capsys, "--help")
    assert r.code == 0
    assert _listed_commands(r.out) == list(COMMANDS)
    for flag in ("--workspace", "--json", "--quiet", "--debug", "--seed", "--device"):
        assert flag in r.out


def test_every_command_help_has_an_example(capsys):
    for name in COMMANDS:
        r = run_cli(capsys, name, "--help")
        assert r.code == 0
        assert f"Example: gdrive {name}" in r.out


def test_import_weights_help_lists_every_format(capsys):
    from geniedrive.pipelines.import_weights import FORMATS

    r = run_cli(capsys, "import-weights", "--help")
    assert r.code == 0
    text = " ".join(r.out.split())
    assert set(FORMATS) == {"geniedrive-occ", "geniedrive-video"}
    for fmt in FORMATS:
        assert f"{fmt}: the GenieDrive" in text and f"--format {fmt}" in text


def test_unknown_option_is_exit_2_one_line(capsys):
    r = run_cli(capsys, "prepare-occ", "--bogus")
    assert r.code == 2
    assert r.err_lines == ["error: No such option: --bogus; see 'gdrive prepare-occ --help'"]


def test_unknown_command_is_exit_2(capsys):
    r = run_cli(capsys, "fly")
    assert r.code == 2 and len(r.err_lines) == 1 and "fly" in r.err


def test_bad_global_values_are_exit_2(capsys):
    for args, word in ((["--seed", "x", "prepare-occ"], "--seed"), (["--device", "tpu", "prepare-occ"], "--device"),
                       (["prepare-occ", "--seed"], "--seed")):
        r = run_cli(capsys, *args)
        assert r.code == 2, args
        assert len(r.err_lines) == 1 and r.err_lines[0].startswith(f"error: {word}")


def test_global_options_work_after_the_command(capsys, tmp_path):
    src = write_occ_folder(tmp_path / "export", scenes=1, frames=2)
    ws = tmp_path / "elsewhere"
    r = run_cli(capsys, "prepare-occ", "--source", "occ-folder", "--dataroot", src, "--no-previews",
                "--workspace", ws, "--json", "--quiet")
    assert r.code == 0, r.err
    assert r.err == ""  # --quiet
    out = r.json()
    assert out["name"] and Path(out["path"]).parent == ws / "datasets"


def test_internal_errors_are_exit_1_one_line(capsys, monkeypatch):
    import geniedrive.pipelines.data.prepare as prep

    def boom(*a, **k):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(prep, "_open_source", boom)
    r = run_cli(capsys, "prepare-occ")
    assert r.code == 1
    assert r.err_lines == ["error: RuntimeError: disk on fire (run again with --debug for the traceback)"]
    r = run_cli(capsys, "--debug", "prepare-occ")
    assert r.code == 1 and "Traceback" in r.err


def test_readme_opens_with_the_two_setup_commands_and_ci_runs_the_second():
    readme = (REPO / "README.md").read_text()
    blocks = re.findall(r"```(?:bash|sh)?\n(.*?)```", readme, re.S)
    cmds = [line for b in blocks[:1] for line in b.splitlines() if line.strip() and not line.startswith("#")]
    assert len(cmds) == 2, cmds
    assert "gdrive" in cmds[0] and "pytest" in cmds[1]
    ci = (REPO / ".ci" / "run").read_text()
    assert cmds[1] in ci


HEAVY = ("torch", "numpy", "diffusers", "transformers", "open3d", "nuscenes", "scipy", "numba", "imageio")


@pytest.mark.parametrize("args", [["--help"], ["--version"], ["forecast", "--help"], ["generate", "--help"],
                                  ["evaluate", "--help"], ["finetune-video", "--help"], ["list", "--help"]])
def test_help_and_version_import_no_heavy_library(args):
    """`gdrive --help`, `--version` and every command's help stay fast: the pipelines (torch,
    diffusers, open3d, nuscenes-devkit, ...) are imported when a command runs, not before."""
    code = ("import sys\nfrom geniedrive.cli.app import main\ncode = main(sys.argv[1:])\n"
            f"loaded = sorted({{m.split('.')[0] for m in sys.modules}} & set({HEAVY!r}))\n"
            "print('LOADED', ','.join(loaded))\nsys.exit(code)\n")
    proc = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().splitlines()[-1] == "LOADED", proc.stdout[-300:]


def test_every_help_that_takes_an_angle_gives_its_unit(capsys):
    """Waypoint yaw and edit's yaw are degrees, and each help that mentions a yaw says so."""
    seen = 0
    for name in COMMANDS:
        text = run_cli(capsys, name, "--help").out
        if re.search(r"yaw", text, re.I):
            seen += 1
            assert "degrees" in text, name
    assert seen >= 2  # forecast (waypoint files) and edit (--by, --at)
