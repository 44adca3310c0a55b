"""nuScenes annotation categories -> Occ3D-nuScenes classes.

The 23 nuScenes categories fold onto the 11 Occ3D object classes (0..10) the way the
nuScenes-lidarseg / Occ3D 16-class merge does: buses of both kinds are `bus`, the four ordinary
pedestrian kinds are `pedestrian`, and everything without a class of its own (animals, debris,
pushable/pullable objects, bicycle racks, emergency vehicles, personal mobility devices,
strollers, wheelchairs, and any category name this table does not know) is `others` (0).
"""

from __future__ import annotations

from ..occ3d import CLASS_INDEX

# Exact category names -> Occ3D class name.
_EXACT = {
    "vehicle.car": "car",
    "vehicle.truck": "truck",
    "vehicle.bus.bendy": "bus",
    "vehicle.bus.rigid": "bus",
    "vehicle.trailer": "trailer",
    "vehicle.construction": "construction_vehicle",
    "vehicle.motorcycle": "motorcycle",
    "vehicle.bicycle": "bicycle",
    "human.pedestrian.adult": "pedestrian",
    "human.pedestrian.child": "pedestrian",
    "human.pedestrian.construction_worker": "pedestrian",
    "human.pedestrian.police_officer": "pedestrian",
    "movable_object.trafficcone": "traffic_cone",
    "movable_object.barrier": "barrier",
}

OTHERS = CLASS_INDEX["others"]


def category_class_name(category: str) -> str:
    """Occ3D class name of a nuScenes category name ('others' for anything unlisted)."""
    name = _EXACT.get(category)
    if name is None and category.startswith("vehicle.bus."):
        name = "bus"  # a bus kind added in a later release
    return name or "others"


def category_to_class(category: str) -> int:
    """Occ3D class index (0..10) of a nuScenes category name."""
    return CLASS_INDEX[category_class_name(category)]
