"""The `prepare-occ` stage: turn a source into a dataset artifact in the Occ3D contract.

Dataset layout (`datasets/<name>/`):
    manifest.json                         written last; id, resolved config, summary
    gts/<scene>/<token>/labels.npz        semantics, mask_lidar, mask_camera (uint8 200x200x16)
    gts/<scene>/<token>/instances.npz     instances (uint16, 0 = none), where instances are known
    scenes/<scene>/scene.json             tokens, timestamps, poses, rig, instance table, split
    previews/<scene>.png, .mp4            top-down occupancy with the ego path
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import numpy as np

from ..console import ui
from .controls import COMMANDS, commands
from .occ3d import CLASS_NAMES, NUM_CLASSES, instances_npz_bytes, labels_npz_bytes
from .preview import write_scene_previews
from .prepare_request import PrepareRequest
from .scene import SceneData
from ..errors import BadInput
from ..limits import MAX_SEED, MAX_SYNTHETIC_FRAMES, MEMORY_SHARE, available_memory, check_int, check_memory
from ..store import Workspace, publish
from ..store.names import check_name
from ..workers import die_with_parent, worker_pool

DATASET_SCHEMA = 1
MAX_SCENES = 100_000
SOURCES = ("synthetic", "nuscenes", "occ-folder")


def _open_source(req: PrepareRequest):
    """Validate the request and open its source (raises BadInput before anything is written)."""
    if req.source not in SOURCES:
        raise BadInput(f"--source '{req.source}': unknown source; choose one of {', '.join(SOURCES)}")
    if req.scenes is not None:
        check_int(req.scenes, "--scenes", 1, MAX_SCENES)
    if req.source == "synthetic":
        from .sources.synthetic import SyntheticSource

        check_int(req.frames, "--frames", 1, MAX_SYNTHETIC_FRAMES)
        check_int(req.seed, "--seed", 0, MAX_SEED)
        return SyntheticSource(req.seed, req.scenes or 4, req.frames, req.synthetic)
    if not req.dataroot:
        raise BadInput(f"--dataroot: required for --source {req.source}; point it at the {req.source} folder")
    root = Path(req.dataroot).expanduser()
    if req.source == "nuscenes":
        from .sources.nuscenes import NuScenesSource

        occ = Path(req.occ_root).expanduser() if req.occ_root else None
        return NuScenesSource(root, req.version, occ)
    from .sources.occ_folder import OccFolderSource

    return OccFolderSource(root)


def write_scene(tmp: Path, data: SceneData, previews: bool) -> dict:
    """Write one scene's files under the artifact's temporary folder; return its summary."""
    meta = data.meta
    meta.validate(f"scene '{meta.name}'")  # its name and tokens become paths: never '..' or '/'
    scene_gts = tmp / "gts" / meta.name
    for t, token in enumerate(meta.tokens):
        d = scene_gts / token
        d.mkdir(parents=True, exist_ok=True)
        (d / "labels.npz").write_bytes(labels_npz_bytes(data.semantics[t], data.mask_lidar[t], data.mask_camera[t]))
        if data.instances is not None:
            (d / "instances.npz").write_bytes(instances_npz_bytes(data.instances[t]))
    sdir = tmp / "scenes" / meta.name
    sdir.mkdir(parents=True, exist_ok=True)
    (sdir / "scene.json").write_text(json.dumps(meta.to_dict(), indent=1) + "\n")
    if previews:
        pdir = tmp / "previews"
        pdir.mkdir(exist_ok=True)
        write_scene_previews(data.semantics, meta.ego_to_global, pdir / f"{meta.name}.png", pdir / f"{meta.name}.mp4")
    cmd = commands(meta.ego_to_global, meta.timestamps)
    return {
        "name": meta.name,
        "split": meta.split,
        "frames": meta.num_frames,
        "instances": len(meta.instances),
        "has_instance_grids": data.instances is not None,
        "class_voxels": np.bincount(data.semantics.ravel(), minlength=NUM_CLASSES).tolist(),
        "commands": np.bincount(cmd, minlength=len(COMMANDS)).tolist(),
    }


def expect_scene_files(writer, scenes: list[dict], previews: bool) -> None:
    """Tell the writer every file the scenes' summaries promise, so the publish checks they are all
    there before the manifest is written (worker processes wrote them, not the writer)."""
    for s in scenes:
        name = s["name"]
        record = Path("scenes") / name / "scene.json"
        writer.expect([record] + ([f"previews/{name}.png", f"previews/{name}.mp4"] if previews else []))
        try:
            tokens = json.loads((writer.tmp / record).read_text())["frame_tokens"]
        except (OSError, ValueError, KeyError):
            continue  # the missing record is what the check reports
        for token in tokens:
            writer.expect([Path("gts") / name / token / "labels.npz"]
                          + ([Path("gts") / name / token / "instances.npz"] if s["has_instance_grids"] else []))


# Worker processes: the source object is sent once per worker at start-up.
_WORKER_SOURCE = None


def _init_worker(source, parent: int) -> None:
    global _WORKER_SOURCE
    _WORKER_SOURCE = source
    die_with_parent(parent)
    try:  # one thread per worker process: the processes are the parallelism
        import numba

        numba.set_num_threads(1)
    except Exception:  # pragma: no cover - numba always present, but never fail a run on it
        pass


def _work(args) -> dict:
    tmp, name, previews = args
    return write_scene(Path(tmp), _WORKER_SOURCE.load(name), previews)


def summarise_scenes(scenes: list[dict]) -> dict:
    voxels = np.sum([s["class_voxels"] for s in scenes], axis=0)
    cmds = np.sum([s["commands"] for s in scenes], axis=0)
    return {
        "scenes": len(scenes),
        "frames": int(sum(s["frames"] for s in scenes)),
        "splits": {sp: sum(1 for s in scenes if s["split"] == sp) for sp in sorted({s["split"] for s in scenes})},
        "class_voxels": {n: int(v) for n, v in zip(CLASS_NAMES, voxels)},
        "classes_present": int(np.count_nonzero(voxels[:17])),
        "commands": {c: int(v) for c, v in zip(COMMANDS, cmds)},
        "instances": int(sum(s["instances"] for s in scenes)),
    }


def prepare_occ(ws: Workspace, req: PrepareRequest):
    """Run the stage; returns (PublishResult, summary dict)."""
    if req.name is not None:
        check_name(req.name)
    source = _open_source(req)
    names = source.scene_names
    if req.scenes is not None and req.source != "synthetic":
        names = names[: req.scenes]
    if hasattr(source, "check_occupancy"):  # every frame present before anything is written
        source.check_occupancy(names)
    id_fields = {"source": req.source, "scenes": names, **source.id_fields()}
    name = req.name or f"{req.source}-{_short(id_fields)}"
    check_name(name)
    config = {**dataclasses.asdict(req), "name": name, "scene_names": names, "resolved_source": source.id_fields()}
    workers = _worker_count(req.workers, len(names), source)

    def build(writer) -> dict:
        summaries: dict[str, dict] = {}
        with ui.progress(f"prepare-occ {name}", len(names)) as bar:
            if workers <= 1:
                for n in names:
                    summaries[n] = write_scene(writer.tmp, source.load(n), req.previews)
                    bar.advance(status=n)
            else:
                with worker_pool(workers, _init_worker, (source, os.getpid())) as pool:
                    for s in pool.map(_work, [(str(writer.tmp), n, req.previews) for n in names]):
                        summaries[s["name"]] = s
                        bar.advance(status=s["name"])
        scenes = [summaries[n] for n in names]
        expect_scene_files(writer, scenes, req.previews)
        return {"summary": summarise_scenes(scenes), "scenes": scenes}

    result = publish(ws, "dataset", "prepare-occ", DATASET_SCHEMA, name, config, id_fields, {}, build, req.force,
                     noun="dataset")
    return result, result.artifact.manifest["summary"]


def _short(obj) -> str:
    from ..store.artifacts import artifact_id

    return artifact_id("name", 0, obj)[:6]


# Memory one worker holds while it builds a scene: five [T, 200, 200, 16] grids (semantics, two
# masks, instances at 2 bytes) plus the interpreter and its libraries (~530 MB measured).
WORKER_BASE_BYTES = 600 * 2**20
FRAME_BYTES = 5 * 200 * 200 * 16


def _worker_count(requested: int | None, n_scenes: int, source) -> int:
    """Worker processes: --workers (bounded by the cores and by memory), else one per core within
    the memory available and the source's own cap."""
    cores = os.cpu_count() or 1
    per_worker = WORKER_BASE_BYTES + getattr(source, "frames_per_scene", 40) * FRAME_BYTES
    if requested is not None:
        check_int(requested, "--workers", 1, 4 * cores)
        workers = min(requested, n_scenes)
        if workers > 1:
            check_memory(workers * per_worker, f"{workers} worker processes", f"--workers {requested}",
                         "pass fewer --workers")
        return workers
    if not getattr(source, "parallel", False):
        return 1
    cap = getattr(source, "max_default_workers", None) or cores
    free = available_memory()
    by_memory = cores if free is None else int(MEMORY_SHARE * free // per_worker)
    return max(1, min(cores, cap, n_scenes, by_memory))
