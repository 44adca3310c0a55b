"""What the user asked for: edit records parsed from the command-line flags.

Each edit is a small frozen record that also serialises to the JSON stored in the edited
dataset's manifest (and hashed into its id), so the same request always maps to the same
artifact. Parsing happens before anything is read or written: a malformed flag exits 2 with one
line naming it.

Conventions (stated in `gdrive edit --help`):
- `--at x,y[,yaw]`: the object's box centre in the ego frame of `--from-frame` (x forward, y left,
  metres; yaw in degrees, counter-clockwise from forward).
- `--by dx,dy[,dyaw]`: a rigid displacement in the ego frame of the first frame the instance is
  edited in, applied to its world trajectory (so every edited frame moves by the same world offset).
- `--frames a:b`: keyframes a..b-1 (Python slice rules, either end may be empty).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

from ..errors import BadInput
from ..limits import MAX_SPEED

MAX_MOVE_M = 80.0

SHAPES = ("auto", "box")


@dataclass(frozen=True)
class Remove:
    instance: str

    def record(self) -> dict:
        return {"op": "remove", "instance": self.instance}


@dataclass(frozen=True)
class Move:
    instance: str
    dx: float
    dy: float
    dyaw_deg: float = 0.0

    def record(self) -> dict:
        return {"op": "move", "instance": self.instance, "by": [self.dx, self.dy, self.dyaw_deg]}


@dataclass(frozen=True)
class Insert:
    what: str  # a thing class name (car, truck, ...) or an instance id of the scene whose shape is copied
    x: float
    y: float
    yaw_deg: float = 0.0
    speed: float = 0.0  # m/s along the heading
    from_frame: int | None = None  # None: the first frame of --frames

    def record(self) -> dict:
        return {"op": "insert", "what": self.what, "at": [self.x, self.y, self.yaw_deg], "speed": self.speed,
                "from_frame": self.from_frame}


Edit = Remove | Move | Insert


@dataclass
class EditRequest:
    """The `gdrive edit` flags, unparsed (lists hold one entry per repetition of a flag)."""

    dataset: str = "latest"
    scene: str | None = None
    remove: list[str] = dataclasses.field(default_factory=list)
    insert: list[str] = dataclasses.field(default_factory=list)
    at: list[str] = dataclasses.field(default_factory=list)
    speed: list[float] = dataclasses.field(default_factory=list)
    from_frame: list[int] = dataclasses.field(default_factory=list)
    move: list[str] = dataclasses.field(default_factory=list)
    by: list[str] = dataclasses.field(default_factory=list)
    frames: str | None = None
    shape: str = "auto"
    name: str | None = None
    previews: bool = True
    force: bool = False


def parse_numbers(text: str, flag: str, names: tuple[str, ...], required: int) -> list[float]:
    """'1.5,-2,30' -> [1.5, -2.0, 30.0]; between `required` and len(names) finite numbers."""
    parts = [p.strip() for p in str(text).split(",")]
    want = ",".join(names[:required]) + "".join(f"[,{n}]" for n in names[required:])
    try:
        vals = [float(p) for p in parts]
    except ValueError:
        raise BadInput(f"{flag} '{text}': give numbers {want} (e.g. {flag} 12,-3.5,90)") from None
    if not required <= len(vals) <= len(names):
        raise BadInput(f"{flag} '{text}': give {want} ({len(vals)} numbers given)")
    if not all(math.isfinite(v) for v in vals):
        raise BadInput(f"{flag} '{text}': numbers must be finite")
    return vals + [0.0] * (len(names) - len(vals))


def _per_insert(values: list, n: int, flag: str, default):
    """One value for all inserts, one per insert, or none (the default)."""
    if not values:
        return [default] * n
    if n == 0:
        raise BadInput(f"{flag}: only applies to --insert; add --insert CLASS --at x,y,yaw")
    if len(values) == 1:
        return list(values) * n
    if len(values) != n:
        raise BadInput(f"{flag}: give it once (for every --insert) or once per --insert ({n}), not {len(values)} times")
    return list(values)


def parse_edits(req: EditRequest) -> list[Edit]:
    """The edits in the order they are applied: removals, then moves, then insertions (so an
    object may be inserted where a removed one stood)."""
    if req.shape not in SHAPES:
        raise BadInput(f"--shape '{req.shape}': use auto (a shape cut from the dataset, else a box) or box")
    edits: list[Edit] = [Remove(r.strip()) for r in req.remove]
    named = [r.strip() for r in req.remove] + [m.strip() for m in req.move]
    twice = next((n for n in named if named.count(n) > 1), None)
    if twice is not None:
        flags = " and ".join(sorted({f for f, ids in (("--remove", req.remove), ("--move", req.move))
                                     if twice in [i.strip() for i in ids]}))
        raise BadInput(f"{flags} {twice}: names the instance {named.count(twice)} times; give each instance once "
                       "(one --move carries the whole displacement, and a removed instance cannot move)")
    if len(req.by) != len(req.move):
        raise BadInput(f"--by: give one --by dx,dy[,dyaw] per --move ({len(req.move)} --move, {len(req.by)} --by)")
    for name, by in zip(req.move, req.by):
        dx, dy, dyaw = parse_numbers(by, "--by", ("dx", "dy", "dyaw"), 2)
        if max(abs(dx), abs(dy)) > MAX_MOVE_M or abs(dyaw) > 360:
            raise BadInput(f"--by {by}: moves of at most {MAX_MOVE_M:g} m in x and y (the grid is 80 m across) "
                           "and turns of at most 360 degrees")
        edits.append(Move(name.strip(), dx, dy, dyaw))
    if len(req.at) != len(req.insert):
        raise BadInput(f"--at: give one --at x,y[,yaw] per --insert ({len(req.insert)} --insert, {len(req.at)} --at)")
    speeds = _per_insert(req.speed, len(req.insert), "--speed", 0.0)
    starts = _per_insert(req.from_frame, len(req.insert), "--from-frame", None)
    for what, at, v, start in zip(req.insert, req.at, speeds, starts):
        x, y, yaw = parse_numbers(at, "--at", ("x", "y", "yaw"), 2)
        if not (math.isfinite(v) and 0 <= v <= MAX_SPEED):
            raise BadInput(f"--speed {v}: must be a speed of 0 to {MAX_SPEED:g} m/s (the object drives along its heading)")
        if abs(yaw) > 360:
            raise BadInput(f"--at {at}: yaw {yaw:g} degrees; give a heading of at most 360 degrees either way")
        if abs(x) >= 40.0 or abs(y) >= 40.0:
            raise BadInput(f"--at {at}: ({x:g}, {y:g}) m is outside the grid; x and y must lie within -40..40 m "
                           "of the ego (x forward, y left)")
        edits.append(Insert(what.strip(), x, y, yaw, float(v), None if start is None else int(start)))
    if not edits:
        raise BadInput("gdrive edit: give at least one of --remove ID, --move ID --by dx,dy, --insert CLASS --at x,y,yaw "
                       "(or --list to see the instances)")
    return edits
