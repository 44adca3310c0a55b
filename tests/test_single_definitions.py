"""One definition each: the keyframe rate, the camera ring, the reuse message and the folder
fingerprint are written in one module and imported everywhere else (read with `ast`, nothing runs).
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SOURCES = sorted((ROOT / "pipelines").rglob("*.py")) + sorted((ROOT / "geniedrive_cli").rglob("*.py"))
CAMERAS = {"CAM_FRONT", "CAM_FRONT_RIGHT", "CAM_FRONT_LEFT", "CAM_BACK", "CAM_BACK_LEFT", "CAM_BACK_RIGHT"}


def _trees() -> dict[str, ast.Module]:
    return {p.relative_to(ROOT).as_posix(): ast.parse(p.read_text(), str(p)) for p in SOURCES}


def _assigned_names(tree: ast.Module) -> set[str]:
    names = set()
    for node in ast.walk(tree):
        targets = node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(node, ast.AnnAssign) else []
        for t in targets:
            for n in ast.walk(t):
                if isinstance(n, ast.Name):
                    names.add(n.id)
    return names


def _strings(tree: ast.Module) -> list[str]:
    return [n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str)]


def test_the_keyframe_rate_is_defined_once():
    where = {path for path, tree in _trees().items()
             if _assigned_names(tree) & {"KEYFRAME_HZ", "KEYFRAME_DT", "KEYFRAME_US"}}
    assert where == {"pipelines/data/scene.py"}


def test_the_camera_ring_is_written_once():
    """Only the rig module spells out the six camera names; the rest import CAMERA_NAMES / VIEW_RING."""
    where = {path for path, tree in _trees().items() if CAMERAS <= set(_strings(tree))}
    assert where == {"pipelines/data/rig.py"}


def test_the_reuse_message_is_printed_by_the_store_only():
    where = {path for path, tree in _trees().items() if any(s.startswith("reusing ") for s in _strings(tree))}
    assert where == {"pipelines/store/artifacts.py"}


def test_folder_fingerprints_are_computed_by_the_store_only():
    """A fingerprint stamps files by size and modification time; one function does that."""
    where = {path for path, tree in _trees().items()
             if any(isinstance(n, ast.Attribute) and n.attr == "st_mtime_ns" for n in ast.walk(tree))}
    assert where == {"pipelines/store/fingerprint.py"}
