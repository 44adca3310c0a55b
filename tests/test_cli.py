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


@pytest.mark.parametrize("args", [["--help"], ["--version"]] + [[name, "--help"] for name in COMMANDS])
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


# Options that configure the command line itself, not the request (the recipe file, --list, the report file).
CLI_ONLY = {"config", "list_", "out", "target"}


def _options(command_name: str):
    from typer.core import TyperOption

    from geniedrive.cli.app import build_command

    sub = build_command().commands[command_name]
    return sub, [p for p in sub.params if isinstance(p, TyperOption)]


def _help_of(sub, param) -> str:
    """The option's line in --help, as click formats it (with Typer's own `[default: ...]`)."""
    ctx = sub.make_context(sub.name, [], resilient_parsing=True)
    record = param.get_help_record(ctx)
    return " ".join(record[1].split()) if record else ""


@pytest.mark.parametrize("name", list(COMMANDS))
def test_every_option_shows_its_default_or_says_what_leaving_it_out_does(capsys, name):
    """Each option's help shows `[default: X]`, or says in words what its absence means (a
    derived name, "the video model's", "all"), or that it is required; plain switches are off."""
    text = " ".join(run_cli(capsys, name, "--help").out.split())
    sub, params = _options(name)
    for p in params:
        if (p.is_flag and not p.secondary_opts) or p.multiple or p.required:
            continue
        help_text = _help_of(sub, p)
        assert help_text and help_text[:40] in text, (name, p.name)  # what --help prints
        assert re.search(r"default|required", help_text, re.I), f"gdrive {name} {p.opts[0]}: no default in its help"


@pytest.mark.parametrize("name", [n for n in COMMANDS if n not in ("list", "model-info")])
def test_each_option_is_declared_once_its_default_in_the_request(name):
    """The Typer signature names the option and its help, the request dataclass holds its default:
    no option carries a default of its own that could drift from the request's."""
    import dataclasses

    from geniedrive.cli.app import REQUESTS

    fields = {f.name for cls in REQUESTS[name] for f in dataclasses.fields(cls)}
    assert fields, f"{name}: no request dataclass registered"
    _, params = _options(name)
    for p in params:
        if p.name == "help":
            continue
        assert p.default is None or p.required, f"gdrive {name} {p.opts[0]}: default {p.default!r} declared in the CLI"
        assert p.name in fields or p.name in CLI_ONLY, f"gdrive {name} {p.opts[0]}: no field of {REQUESTS[name]}"


def test_shown_defaults_are_the_requests_defaults(capsys):
    """The same option shows each command's own default (from its request dataclass)."""
    from geniedrive.pipelines.occworld.requests import TrainForecasterRequest, TrainVAERequest
    from geniedrive.pipelines.video.requests import FinetuneVideoRequest

    def shown(name: str, flag: str) -> str:
        text = " ".join(run_cli(capsys, name, "--help").out.split("Options:", 1)[1].split())
        m = re.search(re.escape(flag) + r" [^\[]*?\[default: ([^\]]+)\]", text)
        assert m, (name, flag)
        return m.group(1)

    assert shown("train-vae", "--model-config") == TrainVAERequest.model_config == "paper"
    assert shown("train-vae", "--ckpt-every") == str(TrainVAERequest.ckpt_every) == "100"
    assert shown("finetune-video", "--ckpt-every") == str(FinetuneVideoRequest.ckpt_every) == "250"
    assert shown("train-forecaster", "--lr") == f"{TrainForecasterRequest.lr:g}"
    assert shown("train-vae", "--ema / --no-ema") == "--ema"
    assert shown("finetune-video", "--ema / --no-ema") == "--no-ema"
    assert shown("forecast", "--traj") == "straight"
    assert shown("generate", "--frames") == "241"
    assert shown("evaluate", "--metrics") == "fid,fvd"
