"""What a workspace holds, for `gdrive list`: artifacts of a kind, or the scenes of a dataset.

Read from the manifests only (no data, no models are opened), so listing a large workspace is
instant and never fails on an artifact another run is writing (folders without a complete
manifest are not artifacts yet).
"""

from __future__ import annotations

from ..errors import BadInput
from .artifacts import Artifact, find_artifact, list_artifacts
from .workspace import Workspace

# `gdrive list WHAT` -> the artifact kind (scenes are the one listing that is not a kind)
WHAT: dict[str, str | None] = {
    "datasets": "dataset", "scenes": None, "models": "model", "forecasts": "forecast", "renders": "render",
    "generations": "generation", "video-models": "video-model",
}


def _details(a: Artifact, dataset_names: dict[str, str]) -> dict:
    """The few facts that tell artifacts of one kind apart (from the manifest)."""
    m = a.manifest
    cfg, ids, inputs = (m.get(k) if isinstance(m.get(k), dict) else {} for k in ("config", "id_fields", "inputs"))
    source = ids.get("source") if isinstance(ids.get("source"), dict) else {}  # a dataset's is a word
    # the dataset id is an input (forecasts, generations, models) or in a render's source
    dataset_id = inputs.get("dataset") or source.get("dataset", "")
    dataset = dataset_names.get(dataset_id, cfg.get("dataset"))
    if a.kind == "dataset":
        summary = m.get("summary") or {}
        return {"source": cfg.get("source"), "scenes": summary.get("scenes"), "frames": summary.get("frames")}
    if a.kind in ("model", "video-model"):
        return {"stage": m.get("stage"), "dataset": dataset}
    if a.kind == "forecast":
        return {"dataset": dataset, "scene": m.get("scene") or cfg.get("scene"), "traj": cfg.get("traj"),
                "frames": len(m["frames"]) if isinstance(m.get("frames"), list) else m.get("frames")}
    if a.kind == "render":
        return {"dataset": dataset, "scene": m.get("scene") or cfg.get("scene"), "frames": m.get("frames")}
    return {"dataset": dataset, "scene": ids.get("scene"), "traj": cfg.get("traj"), "frames": m.get("frames"),
            "video": m.get("video")}


def list_workspace(ws: Workspace, what: str, dataset: str = "latest") -> dict:
    """{"what", "items": [...]}: artifacts of a kind (oldest first) with their name, id, creation
    time, path and details, or the scenes of `dataset` (name, split, frames, instances)."""
    if what not in WHAT:
        raise BadInput(f"list '{what}': unknown; choose one of {', '.join(WHAT)}")
    if what == "scenes":
        ds = find_artifact(ws, "dataset", dataset, "--dataset")
        items = [{"name": s.get("name"), "split": s.get("split"), "frames": s.get("frames"),
                  "instances": s.get("instances")} for s in ds.manifest.get("scenes", [])]
        return {"what": what, "dataset": ds.name, "dataset_id": ds.id, "items": items}
    names = {a.id: a.name for a in list_artifacts(ws, "dataset")}
    items = [{"name": a.name, "id": a.id, "created": a.manifest.get("created"), "path": str(a.path),
              **_details(a, names)} for a in list_artifacts(ws, WHAT[what])]
    return {"what": what, "items": items}
