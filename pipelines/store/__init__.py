"""The workspace: artifact folders with manifests, content ids, atomic publishing and locks."""

from .artifacts import (
    Artifact,
    ArtifactWriter,
    artifact_id,
    find_artifact,
    list_artifacts,
    publish,
)
from .workspace import Workspace, resolve_workspace

__all__ = [
    "Artifact",
    "ArtifactWriter",
    "Workspace",
    "artifact_id",
    "find_artifact",
    "list_artifacts",
    "publish",
    "resolve_workspace",
]
