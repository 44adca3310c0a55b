"""The `edit` stage: a new dataset artifact holding one edited scene, and instance listings.

`gdrive edit --dataset D --scene X ...` writes `datasets/<name>/` (default `<D>-edit-<hash6>`) in
exactly the layout `prepare-occ` writes, holding only scene X, so `forecast`, `render` and the
loaders read it unchanged (`--dataset <name> --scene X`). The source dataset is never modified.
Its manifest records the source dataset (name and id), the keyframe range, the requested edits and
what each did (frames, voxel counts, the inserted names and shapes); `scene.json` keeps the whole
edit history under `extra.edits`, so editing an edited dataset accumulates it. The id hashes the
source id, the scene, the range, the shape mode and the edits: the same request is reused.

Everything is decided in memory first (look-ups, poses, physics), and the artifact is published
atomically only when all edits succeeded: bad input writes nothing.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from ..console import ui
from ..data.dataset import OccDataset, Scene, frame_range
from ..data.prepare import expect_scene_files, summarise_scenes, write_scene
from .apply import EditableScene
from .instances import derive_table, rows
from .spec import EditRequest, parse_edits
from ..errors import BadInput
from ..store import Workspace, artifact_id, publish
from ..store.artifacts import reusable_artifact, say_reused
from ..store.names import check_name, default_name

SCHEMA = 1


def open_scene(ws: Workspace, dataset: str, scene: str | None) -> tuple[OccDataset, Scene]:
    """The dataset and scene to edit; --scene may be left out when the dataset has one scene."""
    ds = OccDataset.open(dataset, ws.root)
    if scene is None:
        names = ds.scene_names()
        if len(names) != 1:
            shown = ", ".join(names[:8]) + (" …" if len(names) > 8 else "")
            raise BadInput(f"--scene: required; dataset '{ds.name}' has {len(names)} scenes ({shown})")
        scene = names[0]
    return ds, ds.scene(scene)


def list_command(ds: OccDataset, scene: Scene) -> str:
    return f"gdrive edit --dataset {ds.name} --scene {scene.name} --list"


def list_instances(ws: Workspace, dataset: str, scene_name: str | None) -> dict:
    """The scene's instances (see `instances.rows`), deriving a table from the grids if it has none."""
    ds, scene = open_scene(ws, dataset, scene_name)
    table = scene.instances
    if not table:
        grids = [f.instance_grid() for f in scene.frames]
        if all(g is not None for g in grids):
            table = derive_table(scene.all_semantics(), np.stack(grids), scene.poses)
    return {"dataset": ds.name, "dataset_id": ds.id, "scene": scene.name, "instances": rows(table, scene.poses)}


def run_edit(ws: Workspace, req: EditRequest) -> dict:
    """Apply the edits of `req` and publish the edited dataset; returns paths, ids and per-edit stats."""
    edits = parse_edits(req)
    if req.name is not None:
        check_name(req.name)
    ds, scene = open_scene(ws, req.dataset, req.scene)
    frames = frame_range(req.frames, scene.num_frames)
    id_fields = {"scene": scene.name, "frames": [frames.start, frames.stop], "shape": req.shape,
                 "edits": [e.record() for e in edits]}
    inputs = {"dataset": ds.id}
    ident = artifact_id("edit", SCHEMA, id_fields, inputs)
    name = req.name or default_name(f"{ds.name}-edit", ident)
    if name == ds.name:
        raise BadInput(f"--name {name}: is the source dataset; the source stays untouched, pick another --name")
    reuse = reusable_artifact(ws, "dataset", name, ident, req.force)
    if reuse is not None:
        say_reused("edited dataset", name, ident)
        return _result(reuse, scene.name, True)

    state = EditableScene.load(scene, list_command(ds, scene))
    done = []
    for e in edits:
        done.append(state.apply(e, frames, req.shape, ds, req.force))
        ui.info(_describe(done[-1]))
    step = {"dataset": ds.name, "dataset_id": ds.id, "frames": [frames.start, frames.stop], "edits": done}
    data = state.result({"edited_from": {"dataset": ds.name, "id": ds.id, "scene": scene.name},
                         "edits": list(scene.meta.extra.get("edits", [])) + [step]})

    def build(w) -> dict:
        summary = write_scene(w.tmp, data, req.previews)
        expect_scene_files(w, [summary], req.previews)
        return {"summary": summarise_scenes([summary]), "scenes": [summary],
                "edit": {"source_dataset": {"name": ds.name, "id": ds.id}, "scene": scene.name,
                         "frames": [frames.start, frames.stop], "edits": done}}

    config = {**dataclasses.asdict(req), "name": name, "source_dataset": ds.name}
    res = publish(ws, "dataset", "edit", SCHEMA, name, config, id_fields, inputs, build, req.force, noun="edited dataset")
    ui.info(f"use it with `gdrive render --dataset {name} --scene {scene.name}` or `gdrive forecast --dataset {name} --scene {scene.name}`")
    return _result(res.artifact, scene.name, res.reused)


def _result(art, scene: str, reused: bool) -> dict:
    edit = art.manifest.get("edit", {})
    return {"name": art.name, "id": art.id, "path": str(art.path), "reused": reused, "scene": scene,
            "source_dataset": edit.get("source_dataset"), "edits": edit.get("edits", [])}


def _describe(r: dict) -> str:
    frames = f"{len(r['frames'])} frame{'s' if len(r['frames']) != 1 else ''}"
    if r["op"] == "remove":
        return f"removed {r['instance']}: {r['voxels_removed']} voxels in {frames} ({r['voxels_restored']} restored as ground)"
    if r["op"] == "move":
        return f"moved {r['instance']} by {r['by'][0]:g}, {r['by'][1]:g} m, {r['by'][2]:g}°: {r['voxels_moved']} voxels in {frames}"
    shape = r["shape"]
    src = f"cut from {shape['instance']} ({shape['scene']}, frame {shape['frame']})" if shape["kind"] == "cut" else "a class-typical box"
    return (f"inserted {r['name']} ({src}) at {r['at'][0]:g}, {r['at'][1]:g} m, {r['at'][2]:g}° "
            f"moving {r['speed']:g} m/s: {r['voxels_inserted']} voxels in {frames}")
