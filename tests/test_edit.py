"""`gdrive edit`: removal with ground restoration, insertion at a pose and speed, moves, renders of
an edited scene, --list, reuse and chained edits, and bad input (exit 2, one line, nothing written).

The scene is built by hand so every expected voxel is known: flat road with a sidewalk strip
(y 6..10 m in the ego frame, a straight kerb along x), a pit without ground, the ego driving +x at
4 m/s (exactly 5 voxels per 0.5 s keyframe, heading 0, so the world raster stays on the grid), and
three objects painted with the synthetic source's rasteriser: car_1 parked 12 m ahead, car_2
driving +x at 6 m/s to the right, truck_1 parked behind-left across the kerb with its lowest layer
replacing the ground (as some Occ3D labels do).
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from geniedrive.pipelines.data.dataset import OccDataset
from geniedrive.pipelines.data.occ3d import CLASS_INDEX, FREE, GRID_SHAPE, VOXEL_SIZE, voxel_centres
from geniedrive.pipelines.data.prepare import write_scene
from geniedrive.pipelines.data.rig import default_rig
from geniedrive.pipelines.data.scene import Instance, SceneData, SceneMeta
from geniedrive.pipelines.data.synthetic.voxelise import boxes_in_ego, paint_boxes
from geniedrive.pipelines.edit.ground import restore
from geniedrive.pipelines.edit.placement import to_local
from geniedrive.pipelines.geometry import planar_pose
from geniedrive.pipelines.data.raycast import visibility_masks
from geniedrive.pipelines.store import Workspace, publish
from tests.helpers import artifact_dirs, run_cli

T = 4
DT_US = 500_000
ROAD, SIDEWALK, CAR, TRUCK = CLASS_INDEX["driveable_surface"], CLASS_INDEX["sidewalk"], CLASS_INDEX["car"], CLASS_INDEX["truck"]
EGO0 = np.array([100.0, 50.0])  # world position of the ego at frame 0; it drives +x at 2 m per frame


def ego_pose(t: int) -> np.ndarray:
    return planar_pose(EGO0[0] + 2.0 * t, EGO0[1], 0.0)


def world_boxes(t: int) -> dict[str, tuple[int, int, list[float]]]:
    """name -> (grid id, class, global box [x, y, z, l, w, h, yaw]) in frame t."""
    return {
        "car_1": (1, CAR, [112.0, 50.0, 0.1 + 0.8, 4.4, 1.9, 1.6, 0.0]),
        "car_2": (2, CAR, [120.0 + 3.0 * t, 44.0, 0.1 + 0.75, 4.5, 1.9, 1.5, 0.0]),
        "truck_1": (3, TRUCK, [95.0, 57.0, -0.3 + 1.5, 6.9, 2.5, 3.0, 0.0]),
    }


def ground(t: int) -> np.ndarray:
    """[200, 200, 16] static labels of frame t: road, a sidewalk strip, a pit with no ground."""
    sem = np.full(GRID_SHAPE, FREE, np.uint8)
    c = voxel_centres()[:, :, 0, :2] + (ego_pose(t)[:2, 3])
    layer = np.full(GRID_SHAPE[:2], ROAD, np.uint8)
    layer[(c[..., 1] >= 56.0) & (c[..., 1] < 60.0)] = SIDEWALK
    layer[(c[..., 0] >= 120.0) & (c[..., 0] < 130.0) & (c[..., 1] >= 20.0) & (c[..., 1] < 30.0)] = FREE
    sem[:, :, 2] = layer
    return sem


def paint(t: int, skip: tuple[str, ...] = ()) -> tuple[np.ndarray, np.ndarray]:
    """(semantics, instance grid) of frame t with every object except `skip`."""
    sem = ground(t)
    inst = np.zeros(GRID_SHAPE, np.uint16)
    items = [v for k, v in world_boxes(t).items() if k not in skip]
    boxes = boxes_in_ego(np.array([b for _, _, b in items]), ego_pose(t))
    paint_boxes(sem, inst, np.ascontiguousarray(boxes), np.array([c for _, c, _ in items], np.uint8),
                np.array([i for i, _, _ in items], np.uint16), np.zeros(len(items), np.int64), True)
    return sem, inst


def toy_scene() -> SceneData:
    rig = default_rig()
    sem = np.empty((T, *GRID_SHAPE), np.uint8)
    grids = np.empty((T, *GRID_SHAPE), np.uint16)
    ml, mc = np.empty_like(sem), np.empty_like(sem)
    for t in range(T):
        sem[t], grids[t] = paint(t)
        ml[t], mc[t] = visibility_masks(sem[t], rig)
    table = {n: Instance(n, i, c, list(range(T)), np.array([world_boxes(t)[n][2] for t in range(T)]))
             for n, (i, c, _) in world_boxes(0).items()}
    meta = SceneMeta("s0", [f"tok{t}" for t in range(T)], 1_700_000_000_000_000 + DT_US * np.arange(T),
                     np.stack([ego_pose(t) for t in range(T)]), rig, table, "train", "synthetic")
    return SceneData(meta, sem, ml, mc, grids)


@pytest.fixture(scope="module")
def scene_data() -> SceneData:
    return toy_scene()


@pytest.fixture
def ws(tmp_path, scene_data):
    """A workspace with the dataset 'toy' (one scene 's0')."""
    root = tmp_path / "ws"
    publish(Workspace(root), "dataset", "prepare-occ", 1, "toy", {}, {"toy": 1}, {},
            lambda w: {"scenes": [write_scene(w.tmp, scene_data, False)]})
    return root


def edit(capsys, *args):
    return run_cli(capsys, "edit", "--dataset", "toy", "--scene", "s0", "--no-previews", *args)


def edited(ws, name: str):
    return OccDataset.open(name, ws).scene("s0")


def test_list_prints_the_instances_and_emits_them_as_json(capsys, ws):
    r = run_cli(capsys, "edit", "--dataset", "toy", "--list")  # one scene: --scene may be left out
    assert r.code == 0, r.err
    lines = r.out.splitlines()
    assert lines[0].split()[:3] == ["id", "class", "frames"]
    assert [line.split()[0] for line in lines[1:]] == ["car_1", "car_2", "truck_1"]
    assert "4.4×1.9×1.6" in lines[1] and "0: 12.0, 0.0" in lines[1]
    r = run_cli(capsys, "--json", "edit", "--dataset", "toy", "--scene", "s0", "--list")
    out = r.json()
    assert out["kind"] == "instances" and out["scene"] == "s0"
    by = {i["id"]: i for i in out["instances"]}
    assert by["car_2"] == {**by["car_2"], "class": "car", "grid_id": 2, "frames": [0, 1, 2, 3], "moving": True,
                           "first_xy_m": [20.0, -6.0], "size_m": [4.5, 1.9, 1.5]}


def test_remove_clears_the_instance_and_restores_the_ground_under_it(capsys, ws, scene_data):
    r = edit(capsys, "--remove", "truck_1", "--json")
    assert r.code == 0, r.err
    out = r.json()
    assert out["name"].startswith("toy-edit-") and out["source_dataset"]["name"] == "toy"
    rec = out["edits"][0]
    assert rec["op"] == "remove" and rec["frames"] == [0, 1, 2, 3] and rec["voxels_restored"] > 0
    scene = edited(ws, out["name"])
    assert "truck_1" not in scene.instances and set(scene.instances) == {"car_1", "car_2"}
    removed = 0
    for t in range(T):
        labels, grid = scene.frames[t].labels(), scene.frames[t].instance_grid()
        assert not np.any(grid == 3)
        # Exactly the scene without the truck: its layers above ground emptied, and the ground layer
        # it replaced refilled as road or sidewalk on the right side of the kerb.
        expect_sem, expect_grid = paint(t, skip=("truck_1",))
        assert np.array_equal(labels["semantics"], expect_sem)
        assert np.array_equal(grid, expect_grid)
        changed = labels["semantics"] != scene_data.semantics[t]
        assert np.all(scene_data.instances[t][changed] == 3)  # nothing else changed
        removed += int(np.count_nonzero(scene_data.instances[t] == 3))
        if t == 0:  # masks: cast again where visibility changed (equal to casting the edited frame here)
            ml, mc = visibility_masks(labels["semantics"], default_rig())
            assert np.array_equal(labels["mask_lidar"], ml) and np.array_equal(labels["mask_camera"], mc)
            assert not np.array_equal(ml, scene_data.mask_lidar[0])  # the truck's shadow is visible now
    assert rec["voxels_removed"] == removed
    # The source dataset is untouched and the manifest records the source and the edits.
    assert np.array_equal(OccDataset.open("toy", ws).scene("s0").semantics(0), scene_data.semantics[0])
    manifest = json.loads((ws / "datasets" / out["name"] / "manifest.json").read_text())
    assert manifest["kind"] == "dataset" and manifest["stage"] == "edit"
    assert manifest["inputs"] == {"dataset": OccDataset.open("toy", ws).id}
    assert manifest["edit"]["edits"][0]["instance"] == "truck_1"
    assert scene.meta.extra["edits"][0]["edits"][0]["op"] == "remove"


def test_remove_in_a_frame_range_leaves_other_frames_alone(capsys, ws, scene_data):
    r = edit(capsys, "--remove", "car_2", "--frames", "1:3", "--json")
    assert r.code == 0, r.err
    scene = edited(ws, r.json()["name"])
    for t in range(T):
        grid = scene.frames[t].instance_grid()
        assert np.any(grid == 2) == (t in (0, 3))
        if t in (0, 3):
            assert np.array_equal(scene.semantics(t), scene_data.semantics[t])
    assert scene.instances["car_2"].frames == [0, 3]


def test_insert_places_the_object_at_the_pose_moving_at_the_speed_overlapping_nothing(capsys, ws, scene_data):
    r = edit(capsys, "--insert", "truck", "--at=-15,-8,30", "--speed", "3", "--from-frame", "1", "--shape", "box", "--json")
    assert r.code == 0, r.err
    rec = r.json()["edits"][0]
    assert rec["name"] == "truck_2" and rec["frames"] == [1, 2, 3] and rec["shape"]["kind"] == "box"
    scene = edited(ws, r.json()["name"])
    inst = scene.instances["truck_2"]
    assert inst.frames == [1, 2, 3] and inst.attributes["inserted"]
    l, w, h = 6.9, 2.5, 2.9  # the class-typical truck
    heading = np.radians(30.0)
    start = ego_pose(1) @ np.array([-15.0, -8.0, 0.0, 1.0])
    total = 0
    for t in range(T):
        sem, grid = scene.semantics(t), scene.frames[t].instance_grid()
        mine = grid == rec["grid_id"]
        if t == 0:
            assert not mine.any() and np.array_equal(sem, scene_data.semantics[0])
            continue
        # Expected world centre: the start point driven (t - 1) * 0.5 s at 3 m/s along 30 degrees.
        centre = start[:2] + 3.0 * 0.5 * (t - 1) * np.array([np.cos(heading), np.sin(heading)])
        pose = np.linalg.inv(ego_pose(t)) @ planar_pose(*centre, heading)
        idx = np.argwhere(mine)
        local = to_local(pose, voxel_centres()[mine])
        assert np.all(np.abs(local[:, 0]) <= l / 2) and np.all(np.abs(local[:, 1]) <= w / 2)
        np.testing.assert_allclose(voxel_centres()[mine][:, :2].mean(0), pose[:2, 3], atol=0.2)
        # Standing on the road layer (k = 2): lowest voxel k = 3, as tall as the box.
        assert idx[:, 2].min() == 3 and (idx[:, 2].max() - 2) * VOXEL_SIZE == pytest.approx(h, abs=0.41)
        # Fills the box's footprint (voxel centres inside the rotated rectangle) on every layer.
        footprint = np.abs(to_local(pose, voxel_centres()[:, :, 3]))
        inside = (footprint[..., 0] <= l / 2) & (footprint[..., 1] <= w / 2)
        assert np.array_equal(mine[:, :, 3], inside)
        # Overlaps nothing: those voxels were free, and every other voxel is unchanged.
        assert np.all(scene_data.semantics[t][mine] == FREE) and np.all(sem[mine] == TRUCK)
        assert np.array_equal(sem[~mine], scene_data.semantics[t][~mine])
        np.testing.assert_allclose(inst.boxes[t - 1, :2], centre, atol=1e-9)
        total += int(mine.sum())
    assert rec["voxels_inserted"] == total


def test_inserts_by_class_or_instance_cut_their_shapes_from_the_dataset(capsys, ws, scene_data):
    # Two inserts in one call; the second copies truck_1, removed in the same call.
    r = edit(capsys, "--remove", "truck_1", "--insert", "car", "--at=-20,-2,0", "--insert", "truck_1", "--at=-21,-9,0",
             "--frames", "0:1", "--json")
    assert r.code == 0, r.err
    car, truck = r.json()["edits"][1:]
    assert car["name"] == "car_3" and car["shape"]["kind"] == "cut" and car["shape"]["instance"] == "car_1"
    assert truck["name"] == "truck_2" and truck["shape"]["instance"] == "truck_1" and truck["shape"]["frame"] == 0
    sem, grid = edited(ws, r.json()["name"]).semantics(0), edited(ws, r.json()["name"]).frames[0].instance_grid()
    # Whole-voxel translations copy the shapes exactly; the truck keeps replacing the ground layer
    # (clearance 0), as in its source frame.
    assert int(np.count_nonzero(grid == car["grid_id"])) == int(np.count_nonzero(scene_data.instances[0] == 1))
    src_truck = np.argwhere(scene_data.instances[0] == 3)
    new_truck = np.argwhere(grid == truck["grid_id"])
    assert np.array_equal(new_truck, src_truck + np.array([-40, -40, 0]))
    assert np.all(sem[grid == truck["grid_id"]] == TRUCK)


def test_move_shifts_and_turns_the_track_and_restores_the_old_place(capsys, ws, scene_data):
    r = edit(capsys, "--move", "car_2", "--by=-4,-3,90", "--json")
    assert r.code == 0, r.err
    scene = edited(ws, r.json()["name"])
    for t in range(T):
        sem, grid = scene.semantics(t), scene.frames[t].instance_grid()
        old, new = scene_data.instances[t] == 2, grid == 2
        # Nearest-neighbour resampling about a centre off the voxel lattice may gain or lose a row.
        assert abs(int(new.sum()) - int(old.sum())) <= 0.1 * old.sum()
        np.testing.assert_allclose(voxel_centres()[new].mean(0)[:2] - voxel_centres()[old].mean(0)[:2], [-4, -3], atol=0.21)
        ext = np.ptp(voxel_centres()[new], axis=0)  # turned 90 degrees: long along y now
        assert ext[1] > ext[0] + 2
        vacated = old & ~new
        assert np.all(sem[vacated] == FREE)  # above the ground: emptied
        untouched = ~old & ~new
        assert np.array_equal(sem[untouched], scene_data.semantics[t][untouched])
    box = scene.instances["car_2"].boxes[0]
    np.testing.assert_allclose(box[[0, 1, 6]], [116.0, 41.0, np.pi / 2], atol=1e-5)  # scene.json keeps 5 decimals


def test_renders_of_an_edited_scene_show_the_removal(capsys, ws):
    r = edit(capsys, "--remove", "car_1", "--frames", "0:1", "--name", "nocar")
    assert r.code == 0, r.err
    args = ("--scene", "s0", "--cameras", "CAM_FRONT", "--resolution", "90x160", "--repeat", "1", "--frames", "0:1",
            "--no-previews")
    for ds in ("toy", "nocar"):
        r = run_cli(capsys, "render", "--dataset", ds, "--name", f"r-{ds}", *args)
        assert r.code == 0, r.err
    counts = {}
    for ds in ("toy", "nocar"):
        art = ws / "renders" / f"r-{ds}"
        with np.load(art / "cameras" / "000000.npz") as z:
            labels, depth = z["labels"][0], z["depth"][0].astype(np.float32)
        with np.load(art / "lidar" / "000000.labels.npz") as z:
            point_label, point_instance, point_range = z["label"], z["instance"], z["range"]
        # car_1 is the only car nearer than 15 m (car_2 is 20 m ahead).
        counts[ds] = (int(np.count_nonzero((labels == CAR) & (depth < 15))),
                      int(np.count_nonzero((point_label == CAR) & (point_range < 15))),
                      int(np.count_nonzero(point_instance == 1)))
    assert min(counts["toy"]) > 50
    assert counts["nocar"] == (0, 0, 0)


def test_same_edit_is_reused_and_edits_chain(capsys, ws):
    first = edit(capsys, "--remove", "car_1", "--frames", "0:1", "--json").json()
    again = edit(capsys, "--remove", "car_1", "--frames", "0:1", "--json")
    assert again.code == 0 and again.json()["reused"] is True and again.json()["name"] == first["name"]
    r = run_cli(capsys, "edit", "--dataset", first["name"], "--scene", "s0", "--remove", "car_2", "--frames", "0:1",
                "--no-previews", "--json")
    assert r.code == 0, r.err
    scene = edited(ws, r.json()["name"])
    assert scene.instances["car_1"].frames == scene.instances["car_2"].frames == [1, 2, 3]
    assert not np.isin(scene.frames[0].instance_grid(), [1, 2]).any()
    history = scene.meta.extra["edits"]
    assert [h["dataset"] for h in history] == ["toy", first["name"]]
    assert scene.meta.extra["edited_from"]["dataset"] == first["name"]


@pytest.mark.parametrize("args, start", [
    (("--remove", "car_9"), "error: --remove 'car_9': no such instance in scene 's0' (closest: car_1, car_2"),
    (("--insert", "car", "--at", "45,0,0"), "error: --at 45,0,0: (45, 0) m is outside the grid"),
    (("--insert", "car", "--at", "12,0,0"), "error: --insert car --at 12,0,0: collides with car_1"),
    (("--insert", "car", "--at", "1,0,0"), "error: --insert car --at 1,0,0: collides with ego car"),
    (("--insert", "car", "--at=25,-25", "--frames", "0:1"), "error: --insert car --at 25,-25,0: off the ground in frame 0"),
    (("--move", "car_2", "--by=-8,6"), "error: --move car_2 --by -8,6,0: collides with car_1"),
    (("--move", "car_2", "--by", "30,0"), "error: --move car_2 --by 30,0,0: moves it to (50.0, -6.0) m in frame 0"),
    (("--insert", "lorry", "--at", "5,5"), "error: --insert 'lorry': not an object class"),
    (("--insert", "car"), "error: --at: give one --at x,y[,yaw] per --insert"),
    (("--remove", "car_1", "--frames", "7:9"), "error: --frames 7:9: selects no keyframe"),
])
def test_bad_input_exits_2_with_one_line_and_writes_nothing(capsys, ws, args, start):
    r = edit(capsys, *args)
    assert r.code == 2, r.err
    assert len(r.err_lines) == 1 and r.err_lines[0].startswith(start), r.err_lines
    assert artifact_dirs(ws) == ["toy"]


def test_force_writes_a_colliding_insertion(capsys, ws):
    r = edit(capsys, "--insert", "car", "--at", "12,0,0", "--force", "--json")
    assert r.code == 0, r.err
    assert r.json()["edits"][0]["frames"] == [0, 1, 2, 3]


def test_restore_continues_a_kerb_through_the_hole():
    sem = np.full(GRID_SHAPE, FREE, np.uint8)
    sem[:, :100, 2], sem[:, 100:, 2] = ROAD, SIDEWALK
    truth = sem.copy()
    hole = np.zeros(GRID_SHAPE, bool)
    hole[90:110, 97:103, 2:6] = True  # an object across the kerb, replacing the ground layer
    sem[hole] = CAR
    sem[90:110, 104:106, 3:5] = CAR  # another object beside it is never copied
    restored = restore(sem, hole)
    assert restored == 20 * 6
    assert np.array_equal(sem[hole], truth[hole])


def test_nuscenes_datasets_use_the_same_names_and_edit_alike(capsys, tmp_path):
    from tests.nuscenes_fixture import build_nuscenes_folder

    root = build_nuscenes_folder(tmp_path / "nusc", scenes=("scene-0061",), frames=1, instances=4) and tmp_path / "nusc"
    r = run_cli(capsys, "prepare-occ", "--source", "nuscenes", "--dataroot", root, "--version", "v1.0-mini",
                "--name", "nu", "--no-previews", "--workers", "1")
    assert r.code == 0, r.err
    listed = run_cli(capsys, "--json", "edit", "--dataset", "nu", "--list").json()["instances"]
    names = [i["id"] for i in listed]
    assert "car_1" in names and all(n == f"{i['class']}_{n.rsplit('_', 1)[1]}" and n.rsplit("_", 1)[1].isdigit()
                                    for n, i in zip(names, listed))
    src = OccDataset.open("nu").scene("scene-0061")
    r = run_cli(capsys, "edit", "--dataset", "nu", "--remove", "car_1", "--name", "nu-nocar", "--no-previews", "--json")
    assert r.code == 0, r.err
    out = OccDataset.open("nu-nocar").scene("scene-0061")
    iid = src.instances["car_1"].id
    for t in range(src.num_frames):
        before, after = src.frames[t].instance_grid(), out.frames[t].instance_grid()
        changed = src.semantics(t) != out.semantics(t)
        assert not np.any(after == iid) and np.all(before[changed] == iid)


def test_grids_without_a_table_get_names_from_the_grids(scene_data):
    from geniedrive.pipelines.edit.instances import derive_table

    table = derive_table(scene_data.semantics, scene_data.instances, scene_data.meta.ego_to_global)
    assert [(n, i.id, i.frames) for n, i in table.items()] == [
        ("car_1", 1, [0, 1, 2, 3]), ("car_2", 2, [0, 1, 2, 3]), ("truck_1", 3, [0, 1, 2, 3])]
    for n, inst in table.items():  # boxes around the voxels: centres within a voxel of the true boxes
        truth = np.array([world_boxes(t)[n][2] for t in range(T)])
        np.testing.assert_allclose(inst.boxes[:, :2], truth[:, :2], atol=VOXEL_SIZE)
