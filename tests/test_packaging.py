"""The distribution `geniedrive`: the checkout's folders as `geniedrive.pipelines`, `geniedrive.cli`
and `geniedrive.assets`; a wheel that works outside the checkout, beside a foreign `pipelines/`."""

from __future__ import annotations

import json
import os
import shutil
import site
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from tests.helpers import REPO

FOLDERS = {"pipelines": "geniedrive.pipelines", "geniedrive_cli": "geniedrive.cli", "assets": "geniedrive.assets",
           "geniedrive": "geniedrive"}


def test_every_package_folder_is_listed_in_pyproject():
    listed = set(tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = set()
    for folder, name in FOLDERS.items():
        for init in (REPO / folder).rglob("__init__.py"):
            rel = init.parent.relative_to(REPO / folder).parts
            found.add(".".join([name, *rel]))
    assert listed == found


def _foreign_pipelines(where: Path) -> Path:
    """A folder holding its own `pipelines/` package (as many ML repositories do)."""
    (where / "pipelines").mkdir(parents=True)
    (where / "pipelines" / "__init__.py").write_text("raise ImportError('the foreign pipelines package')\n")
    return where


def test_the_package_imports_beside_a_foreign_pipelines_package(tmp_path):
    cwd = _foreign_pipelines(tmp_path / "project")
    code = ("import geniedrive, geniedrive.pipelines.occworld.forecast as f, geniedrive.cli.app as app\n"
            "print(geniedrive.__version__, f.DEMO_MODEL.is_dir(), sorted(app.COMMANDS)[0])\n")
    proc = subprocess.run([sys.executable, "-c", code], cwd=cwd, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.split() == [geniedrive_version(), "True", "edit"]


def geniedrive_version() -> str:
    import geniedrive

    return geniedrive.__version__


@pytest.mark.slow
def test_a_wheel_installed_elsewhere_forecasts_the_embedded_default(tmp_path):
    """Build the wheel, install it into a fresh virtual environment outside the checkout (its
    dependencies are this environment's, by path, so nothing is downloaded), and run `gdrive
    forecast` on the embedded default from a folder holding a foreign `pipelines/` package: the
    demo world is built and the shipped demo weights are read from the installed package data."""
    wheels, source = tmp_path / "wheels", tmp_path / "source"
    source.mkdir()
    # built from a copy: setuptools leaves build/ beside the sources, and a stale build/lib in the
    # checkout would put deleted modules into later wheels
    for part in ("pyproject.toml", "README.md", "geniedrive", "pipelines", "geniedrive_cli", "assets"):
        copy = shutil.copytree if (REPO / part).is_dir() else shutil.copy2
        copy(REPO / part, source / part, **({"ignore": shutil.ignore_patterns("__pycache__")} if copy is shutil.copytree else {}))
    build = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                            "-w", str(wheels), str(source)], capture_output=True, text=True, timeout=600)
    assert build.returncode == 0, build.stderr[-2000:]
    (wheel,) = wheels.glob("geniedrive-*.whl")
    env = tmp_path / "env"
    subprocess.run([sys.executable, "-m", "venv", str(env)], check=True, timeout=300)
    py = env / "bin" / "python"
    purelib = subprocess.run([py, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             capture_output=True, text=True, check=True).stdout.strip()
    # the dependencies: this environment's site-packages as a plain path (its .pth files, among
    # them the checkout's editable finder, are not run from there)
    Path(purelib, "deps-from-test.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    install = subprocess.run([py, "-m", "pip", "install", "--no-deps", "--no-index", "-q", str(wheel)],
                             capture_output=True, text=True, timeout=300)
    assert install.returncode == 0, install.stderr[-2000:]
    cwd = _foreign_pipelines(tmp_path / "elsewhere")
    clean = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    proc = subprocess.run([env / "bin" / "gdrive", "--workspace", "ws", "--json", "forecast", "--scene", "scene-0000",
                           "--horizon", "2", "--no-previews"], cwd=cwd, capture_output=True, text=True, timeout=900,
                          env=clean)
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = json.loads(proc.stdout)
    assert out["kind"] == "forecast"
    meta = json.loads((Path(out["path"]) / "frames.json").read_text())
    assert len(meta["frames"]) == 2
    assert Path(meta["model"]).resolve().is_relative_to(Path(purelib).resolve())  # the wheel's package data
    assert (cwd / "ws" / "datasets").is_dir() and Path(out["path"]).resolve().is_relative_to((cwd / "ws").resolve())
    imported = subprocess.run([py, "-c", "import geniedrive.pipelines, sys; print(geniedrive.pipelines.__file__)"],
                              cwd=cwd, capture_output=True, text=True, env=clean)
    assert Path(imported.stdout.strip()).resolve().is_relative_to(Path(purelib).resolve())
