"""Imports read top-down: every module of pipelines/ and geniedrive_cli/ imports only from its own
layer and lower ones (README, "Architecture: layers"), imports inside functions included.

The checker reads the sources with `ast` (nothing is imported), resolves relative imports against
the module's package (`geniedrive.pipelines.<sub>...`, `geniedrive.cli...`) and names each module
and line that imports a higher layer.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# Bottom to top. "base" is every module directly in pipelines/ but api.py (console, errors, geometry,
# limits, weights, workers, import_weights, ...), and pipelines/__init__.py; "api" is pipelines/api.py,
# the top of pipelines; "cli" is geniedrive_cli/.
LAYERS = ("base", "store", "runtime", "data", "sensors", "metrics", "edit", "occworld", "video", "api", "cli")
RANK = {name: i for i, name in enumerate(LAYERS)}
FOLDERS = {"pipelines": ("geniedrive", "pipelines"), "geniedrive_cli": ("geniedrive", "cli")}


def layer_of(module: tuple[str, ...]) -> str | None:
    """The layer of a dotted module name split into parts; None outside gdrive (torch, numpy, ...)."""
    if module[:2] == ("geniedrive", "cli"):
        return "cli"
    if module[:2] != ("geniedrive", "pipelines"):
        return None
    if len(module) == 2:
        return "base"
    return module[2] if module[2] in RANK and module[2] not in ("base", "cli") else "base"


def imported_modules(node: ast.Import | ast.ImportFrom, module: tuple[str, ...], is_package: bool) -> list[tuple[str, ...]]:
    """The modules an import statement reaches, relative imports resolved against `module`.

    `from .. import occworld` inside geniedrive.pipelines.data.x reaches geniedrive.pipelines.occworld:
    when the resolved base is the pipelines package itself, each imported name is taken as a submodule
    (a name that is not one, e.g. __version__, is then a base module name and lands in "base")."""
    if isinstance(node, ast.Import):
        return [tuple(alias.name.split(".")) for alias in node.names]
    if node.level:
        package = module if is_package else module[:-1]
        base = package[:len(package) - (node.level - 1)]
        target = base + (tuple(node.module.split(".")) if node.module else ())
    else:
        target = tuple((node.module or "").split("."))
    if target in (("geniedrive",), ("geniedrive", "pipelines")):
        return [target + (alias.name,) for alias in node.names]
    return [target]


def violations(source: str, module: str, is_package: bool = False, where: str = "<source>") -> list[str]:
    """One line per import of `source` (module `module`, dotted) that reaches a higher layer."""
    parts = tuple(module.split("."))
    own = layer_of(parts)
    out = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, (ast.Import, ast.ImportFrom)):
            continue
        for target in imported_modules(node, parts, is_package):
            theirs = layer_of(target)
            if theirs is not None and RANK[theirs] > RANK[own]:
                out.append(f"{where}:{node.lineno}: {module} ({own}) imports {'.'.join(target)} ({theirs}), a higher layer")
    return out


def module_name(path: Path) -> tuple[str, bool]:
    """(dotted module name, is a package __init__) of a file under pipelines/ or geniedrive_cli/."""
    rel = path.relative_to(ROOT).with_suffix("").parts
    parts = FOLDERS[rel[0]] + tuple(rel[1:])
    if parts[-1] == "__init__":
        return ".".join(parts[:-1]), True
    return ".".join(parts), False


def source_files() -> list[Path]:
    return sorted(p for folder in FOLDERS for p in (ROOT / folder).rglob("*.py"))


def test_no_module_imports_a_higher_layer():
    found = []
    for path in source_files():
        name, is_package = module_name(path)
        found += violations(path.read_text(encoding="utf-8"), name, is_package, str(path.relative_to(ROOT)))
    assert not found, "imports that run up the layers (README, Architecture: layers):\n" + "\n".join(found)


def test_every_subpackage_has_a_layer():
    """A new subpackage of pipelines/ must be placed in the order (here and in the README)."""
    subpackages = sorted(p.parent.name for p in (ROOT / "pipelines").glob("*/__init__.py"))
    unplaced = [s for s in subpackages if s not in RANK]
    assert not unplaced, f"pipelines subpackages with no layer: {unplaced}; add them to LAYERS and the README"
    assert len(subpackages) >= 8


def test_readme_states_the_same_order():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("## Architecture: layers", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| ") and "---" not in line][1:]
    named = [row.split("|")[2].strip().strip("`") for row in rows]
    assert [n.split()[0].rstrip(",") for n in named] == ["base", *LAYERS[1:-1], "geniedrive_cli"]


@pytest.mark.parametrize("module, source, line", [
    # a function-level import counts
    ("geniedrive.pipelines.sensors.render", "import numpy\n\n\ndef f():\n    from ..occworld.forecast import run\n", 5),
    ("geniedrive.pipelines.data.scene", "from .. import occworld\n", 1),
    ("geniedrive.pipelines.data.sources.occ_folder", "x = 1\nfrom ...sensors.camera import colorize\n", 2),
    ("geniedrive.pipelines.store.artifacts", "from ..runtime import trainer\n", 1),
    ("geniedrive.pipelines.errors", "import geniedrive.pipelines.data.occ3d\n", 1),
    ("geniedrive.pipelines.video.generate", "from ..api import generate\n", 1),
    ("geniedrive.pipelines.api", "from ..cli import app\n", 1),
])
def test_a_planted_violation_is_named_with_its_line(module, source, line):
    found = violations(source, module, where="planted.py")
    assert len(found) == 1 and found[0].startswith(f"planted.py:{line}: {module} ("), found


@pytest.mark.parametrize("module, source", [
    ("geniedrive.pipelines.sensors.render", "from ..data.scene import KEYFRAME_HZ\nfrom ..runtime.distributed import resolve_device\n"),
    ("geniedrive.pipelines.video", "from . import configs\nfrom ..occworld import WorldModel\n"),
    ("geniedrive.pipelines.store.artifacts", "from .. import __version__\nfrom ..errors import BadInput\n"),
    ("geniedrive.pipelines.api", "from .video.generate import run_generate\nfrom .store import Workspace\n"),
    ("geniedrive.cli.app", "from ..pipelines.api import generate\nimport torch\n"),
])
def test_imports_down_or_across_are_allowed(module, source):
    is_package = module == "geniedrive.pipelines.video"
    assert violations(source, module, is_package) == []
