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
import multiprocessing as mp
import re
import os
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from pipelines.console import ui
from pipelines.data.controls import COMMANDS, commands
from pipelines.data.occ3d import CLASS_NAMES, NUM_CLASSES, instances_npz_bytes, labels_npz_bytes
from pipelines.data.preview import write_scene_previews
from pipelines.data.scene import SceneData
from pipelines.errors import BadInput
from pipelines.store import Workspace, publish

DATASET_SCHEMA = 1
SOURCES = ("synthetic", "nuscenes", "occ-folder")


@dataclasses.dataclass
class PrepareRequest:
    source: str = "synthetic"
    name: str | None = None
    seed: int = 0
    scenes: int | None = None  # synthetic: how many; other sources: the first N (None = all)
    frames: int = 40  # synthetic only
    dataroot: str | None = None
    version: str = "v1.0-trainval"
    occ_root: str | None = None
    previews: bool = True
    workers: int | None = None
    force: bool = False
    synthetic: dict[str, Any] = dataclasses.field(default_factory=dict)  # extra SyntheticConfig fields


def _open_source(req: PrepareRequest):
    """Validate the request and open its source (raises BadInput before anything is written)."""
    if req.source not in SOURCES:
        raise BadInput(f"--source '{req.source}': unknown source; choose one of {', '.join(SOURCES)}")
    if req.scenes is not None and req.scenes <= 0:
        raise BadInput(f"--scenes {req.scenes}: must be a positive number of scenes")
    if req.source == "synthetic":
        from pipelines.data.sources.synthetic import SyntheticSource

        if req.frames <= 0:
            raise BadInput(f"--frames {req.frames}: must be a positive number of keyframes")
        return SyntheticSource(req.seed, req.scenes or 4, req.frames, req.synthetic)
    if not req.dataroot:
        raise BadInput(f"--dataroot: required for --source {req.source}; point it at the {req.source} folder")
    root = Path(req.dataroot).expanduser()
    if req.source == "nuscenes":
        from pipelines.data.sources.nuscenes import NuScenesSource

        occ = Path(req.occ_root).expanduser() if req.occ_root else None
        return NuScenesSource(root, req.version, occ)
    from pipelines.data.sources.occ_folder import OccFolderSource

    return OccFolderSource(root)


def write_scene(tmp: Path, data: SceneData, previews: bool) -> dict:
    """Write one scene's files under the artifact's temporary folder; return its summary."""
    meta = data.meta
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


# Worker processes: the source object is sent once per worker at start-up.
_WORKER_SOURCE = None


def _init_worker(source) -> None:
    global _WORKER_SOURCE
    _WORKER_SOURCE = source
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
        check_dataset_name(req.name)
    source = _open_source(req)
    names = source.scene_names
    if req.scenes is not None and req.source != "synthetic":
        names = names[: req.scenes]
    if hasattr(source, "check_occupancy"):  # every frame present before anything is written
        source.check_occupancy(names)
    id_fields = {"source": req.source, "scenes": names, **source.id_fields()}
    name = req.name or f"{req.source}-{_short(id_fields)}"
    check_dataset_name(name)
    config = {**dataclasses.asdict(req), "name": name, "scene_names": names, "resolved_source": source.id_fields()}

    def build(writer) -> dict:
        workers = _worker_count(req.workers, len(names), source)
        summaries: dict[str, dict] = {}
        with ui.progress(f"prepare-occ {name}", len(names)) as bar:
            if workers <= 1:
                for n in names:
                    summaries[n] = write_scene(writer.tmp, source.load(n), req.previews)
                    bar.advance(status=n)
            else:
                ctx = mp.get_context("spawn")  # never fork a process that may hold threads
                with ProcessPoolExecutor(workers, mp_context=ctx, initializer=_init_worker, initargs=(source,)) as ex:
                    for s in ex.map(_work, [(str(writer.tmp), n, req.previews) for n in names]):
                        summaries[s["name"]] = s
                        bar.advance(status=s["name"])
        scenes = [summaries[n] for n in names]
        return {"summary": summarise_scenes(scenes), "scenes": scenes}

    result = publish(ws, "dataset", "prepare-occ", DATASET_SCHEMA, name, config, id_fields, {}, build, req.force)
    return result, result.artifact.manifest["summary"]


def _short(obj) -> str:
    from pipelines.store.artifacts import artifact_id

    return artifact_id("name", 0, obj)[:6]


def check_dataset_name(name: str) -> None:
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}", name):
        raise BadInput(f"--name '{name}': use letters, digits, '.', '_' and '-' (starting with a letter or digit)")


def _worker_count(requested: int | None, n_scenes: int, source) -> int:
    if requested is not None:
        if requested <= 0:
            raise BadInput(f"--workers {requested}: must be at least 1")
        return min(requested, n_scenes)
    if not getattr(source, "parallel", False):
        return 1
    cap = getattr(source, "max_default_workers", None) or os.cpu_count() or 1
    return max(1, min(os.cpu_count() or 1, cap, n_scenes))
