"""Instance-level scene editing: remove, move and insert objects in a dataset scene.

    from . import EditRequest, run_edit
    run_edit(ws, EditRequest(dataset="demo", scene="scene-0000", remove=["car_12"]))

Modules, one job each: `spec` (the flags parsed into edit records), `instances` (naming and
look-up), `placement` (boxes, poses, voxel windows), `shapes` (boxes and cut-out shapes placed at
any pose), `library` (which shape an insertion uses), `ground` (restoring ground, standing objects
on it), `physics` (overlap and support checks), `apply` (edits on a scene in memory), `stage`
(the new dataset artifact and `--list`).
"""

from __future__ import annotations

__all__ = ["EditRequest", "list_instances", "run_edit"]


def __getattr__(name: str):
    # loaded on first use, so `gdrive edit --help` reads `spec.EditRequest` without numpy
    if name == "EditRequest":
        from .spec import EditRequest

        return EditRequest
    if name in ("list_instances", "run_edit"):
        from . import stage

        return getattr(stage, name)
    raise AttributeError(f"module 'geniedrive.pipelines.edit' has no attribute {name!r}")
