"""`gdrive edit`: remove, move and insert object instances; the result is a new dataset."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from .config_file import resolve_request
from .options import emit, state
from ..pipelines.edit.spec import EditRequest
from ..pipelines.store import Workspace

REQUESTS = (EditRequest,)  # the options' defaults (shown by --help)


def command(
    scene: Annotated[Optional[str], typer.Option(help="Scene to edit (default: the dataset's scene when it has only one).")] = None,
    dataset: Annotated[Optional[str], typer.Option(help="Source dataset name, id or 'latest'; it stays untouched.")] = None,
    list_: Annotated[Optional[bool], typer.Option("--list", help="List the scene's instances (id, class, frames, size, where first seen) and exit.")] = None,
    remove: Annotated[Optional[list[str]], typer.Option(metavar="ID", help="Instance id to remove (e.g. car_12); repeatable. The ground under it is restored from the neighbouring columns.")] = None,
    move: Annotated[Optional[list[str]], typer.Option(metavar="ID", help="Instance id to move; repeatable, one --by each.")] = None,
    by: Annotated[Optional[list[str]], typer.Option(metavar="DX,DY[,DYAW]", help="dx,dy[,dyaw] for --move: metres in the ego frame of the first frame the instance is edited in (x forward, y left), degrees counter-clockwise; the same world offset applies to every frame.")] = None,
    insert: Annotated[Optional[list[str]], typer.Option(metavar="CLASS|ID", help="Object class to insert (car, truck, bus, pedestrian, ...) or an instance id whose shape to copy; repeatable, one --at each.")] = None,
    at: Annotated[Optional[list[str]], typer.Option(metavar="X,Y[,YAW]", help="x,y[,yaw] for --insert: the box centre in metres in the ego frame of --from-frame (x forward, y left), yaw in degrees counter-clockwise from forward; the height follows the ground.")] = None,
    speed: Annotated[Optional[list[float]], typer.Option(metavar="M/S", help="m/s along the inserted object's heading, using the frame timestamps (default 0: parked); once for all inserts or once each.")] = None,
    from_frame: Annotated[Optional[list[int]], typer.Option(metavar="N", help="Keyframe where an inserted object appears (default: the first of --frames); once for all inserts or once each.")] = None,
    frames: Annotated[Optional[str], typer.Option(metavar="A:B", help="Keyframe range a:b (b excluded) that every edit applies to (default: all).")] = None,
    shape: Annotated[Optional[str], typer.Option(metavar="auto|box", help="auto: insert a shape cut from the dataset's best-seen instance of the class (else a class-typical box) | box: always the class-typical box.")] = None,
    name: Annotated[Optional[str], typer.Option(help="Name of the new dataset (default <dataset>-edit-<hash>).")] = None,
    previews: Annotated[Optional[bool], typer.Option("--previews/--no-previews", help="Write the top-down PNG/MP4 preview of the edited scene.")] = None,
    force: Annotated[Optional[bool], typer.Option("--force", help="Write an insertion or move that collides or stands off the ground, and recompute an existing result.")] = None,
) -> None:
    """Edit a scene at the level of object instances and write it as a new dataset.

    Instances are named <class>_<n> (see --list). Removal deletes the instance's voxels in every
    frame of --frames and restores the ground under it; a move shifts its whole track; an insertion
    places a new instance at --at in the ego frame of --from-frame and drives it along its heading
    at --speed, placed in each later frame through that frame's ego pose. Collisions with other
    objects or the ego car, and objects off the ground, exit 2 unless --force. The result is a
    dataset holding the edited scene: forecast and render it with --dataset NEW --scene X.

    Example: gdrive edit --dataset demo --scene scene-0000 --remove car_12 --insert truck --at 15,3.5,0
    """
    flags = dict(locals())  # every option by name; None = not given
    # the pipeline is imported when the command runs: `gdrive --help` and `--version` stay fast
    from ..pipelines.edit import list_instances, run_edit
    from ..pipelines.edit.instances import format_rows

    req = resolve_request(EditRequest, flags)
    ws = Workspace.at(state.workspace)
    if list_:
        out = list_instances(ws, req.dataset, req.scene)
        if state.json:
            emit({"command": "edit", "kind": "instances", **out})
        else:
            print("\n".join(format_rows(out["instances"])) if out["instances"] else f"scene '{out['scene']}' has no instances")
        return
    emit({"command": "edit", "kind": "dataset", **run_edit(ws, req)})
