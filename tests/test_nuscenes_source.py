"""The `nuscenes` source against a tiny nuScenes-format folder whose ground truth is known."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import numpy as np
import pytest

from geniedrive.pipelines.data.occ3d import CLASS_INDEX, GRID_SHAPE, RANGE_MIN, VOXEL_SIZE
from geniedrive.pipelines.data.rig import CAMERA_NAMES, HDL32E_ELEVATIONS
from geniedrive.pipelines.data.scene import SceneMeta
from geniedrive.pipelines.data.sources import nuscenes as ns
from geniedrive.pipelines.data.sources import nuscenes_instances, nuscenes_tables
from geniedrive.pipelines.data.sources.nuscenes_classes import category_to_class
from geniedrive.pipelines.errors import BadInput
from tests.nuscenes_fixture import build_nuscenes_folder

VERSION = "v1.0-mini"
SCENES = ("scene-0061", "scene-0103")

# Written out by hand from the brief (not imported from the code under test).
EXPECTED_CLASS = {
    "vehicle.car": "car", "vehicle.truck": "truck", "vehicle.bus.bendy": "bus", "vehicle.bus.rigid": "bus",
    "vehicle.trailer": "trailer", "vehicle.construction": "construction_vehicle",
    "vehicle.motorcycle": "motorcycle", "vehicle.bicycle": "bicycle",
    "human.pedestrian.adult": "pedestrian", "human.pedestrian.child": "pedestrian",
    "human.pedestrian.construction_worker": "pedestrian", "human.pedestrian.police_officer": "pedestrian",
    "movable_object.trafficcone": "traffic_cone", "movable_object.barrier": "barrier",
    "animal": "others", "movable_object.debris": "others", "movable_object.pushable_pullable": "others",
    "static_object.bicycle_rack": "others", "vehicle.emergency.ambulance": "others",
    "vehicle.emergency.police": "others", "human.pedestrian.personal_mobility": "others",
    "human.pedestrian.stroller": "others", "human.pedestrian.wheelchair": "others",
}


@pytest.fixture(scope="module")
def pristine(tmp_path_factory):
    root = tmp_path_factory.mktemp("nuscenes")
    truth = build_nuscenes_folder(root, VERSION, SCENES, frames=4, seed=0)
    return root, truth


@pytest.fixture(scope="module")
def loaded(pristine):
    root, truth = pristine
    src = ns.NuScenesSource(root, VERSION)
    return src, {name: src.load(name) for name in SCENES}, truth


@pytest.fixture
def copy(pristine, tmp_path):
    """A private copy of the folder to break."""
    root, truth = pristine
    dst = tmp_path / "nusc"
    shutil.copytree(root, dst)
    return dst


def _bad(fn, *args, **kw) -> str:
    with pytest.raises(BadInput) as exc:
        fn(*args, **kw)
    msg = str(exc.value)
    assert "\n" not in msg and msg.strip() == msg and msg
    assert exc.value.exit_code == 2
    return msg


def _wrap(a):
    return (np.asarray(a) + np.pi) % (2 * np.pi) - np.pi


# ------------------------------------------------------------------------------------------
# What comes through
# ------------------------------------------------------------------------------------------


def test_scene_names_and_official_splits(loaded, pristine):
    src, data, _ = loaded
    assert src.scene_names == list(SCENES)
    assert ns.list_nuscenes_scenes(pristine[0], VERSION) == list(SCENES)
    assert data["scene-0061"].meta.split == "train"  # mini_train
    assert data["scene-0103"].meta.split == "val"  # mini_val


def test_splits_of_trainval_and_unassigned(tmp_path):
    build_nuscenes_folder(tmp_path / "tv", "v1.0-trainval", ("scene-0001", "scene-0003", "scene-9999"), frames=1, instances=2)
    src = ns.NuScenesSource(tmp_path / "tv", "v1.0-trainval")
    assert [src.split_of(n) for n in src.scene_names] == ["train", "val", "unassigned"]
    build_nuscenes_folder(tmp_path / "mini", "v1.0-mini", ("scene-0001", "scene-0916"), frames=1, instances=2)
    src = ns.NuScenesSource(tmp_path / "mini", "v1.0-mini")
    # scene-0001 is official train but not in mini_train
    assert [src.split_of(n) for n in src.scene_names] == ["unassigned", "val"]
    assert src.load("scene-0001").meta.split == "unassigned"


def test_frames_timestamps_and_lidar_ego_poses(loaded):
    _, data, truth = loaded
    for name in SCENES:
        meta, gt = data[name].meta, truth["scenes"][name]
        assert meta.tokens == gt["sample_tokens"]
        assert meta.timestamps.dtype == np.int64
        np.testing.assert_array_equal(meta.timestamps, np.asarray(gt["timestamps"], dtype=np.int64))
        assert meta.ego_to_global.shape == (4, 4, 4) and meta.ego_to_global.dtype == np.float64
        np.testing.assert_allclose(meta.ego_to_global, gt["ego_to_global"], rtol=0, atol=1e-9)
        # The keyframe LiDAR pose, not the camera's or a sweep's (they differ by > 1 cm).
        assert np.abs(meta.ego_to_global - gt["camera_ego_to_global"]).max() > 1e-2
        assert np.abs(meta.ego_to_global - gt["sweep_ego_to_global"]).max() > 1e-2
        # Non-trivial rotation: the ego turns and pitches.
        assert abs(meta.ego_to_global[0, 2, 0]) > 1e-4
        assert meta.source == "nuscenes"
        assert meta.extra == {"version": VERSION, "log": gt["location"], "logfile": gt["logfile"], "scene_token": gt["token"]}


def test_rig_is_each_logs_own_calibration(loaded):
    _, data, truth = loaded
    rigs = {}
    for name in SCENES:
        gt = truth["scenes"][name]
        calib = truth["logs"][gt["log_token"]]["calibration"]
        rig = data[name].meta.rig
        rigs[name] = rig
        assert [c.name for c in rig.cameras] == list(CAMERA_NAMES)
        for cam in rig.cameras:
            exp = calib[cam.name]
            assert (cam.width, cam.height) == (exp["width"], exp["height"])
            np.testing.assert_array_equal(cam.intrinsic, exp["intrinsic"])
            np.testing.assert_allclose(cam.sensor_to_ego, exp["sensor_to_ego"], rtol=0, atol=1e-9)
        assert rig.lidar.name == "LIDAR_TOP"
        np.testing.assert_allclose(rig.lidar.sensor_to_ego, calib["LIDAR_TOP"]["sensor_to_ego"], rtol=0, atol=1e-9)
        assert rig.lidar.elevations_deg == HDL32E_ELEVATIONS and rig.lidar.azimuth_steps == 1080
        assert gt["logfile"] in rig.name
    a, b = rigs["scene-0061"], rigs["scene-0103"]
    assert (a.cameras[0].width, a.cameras[0].height) == (1600, 900)
    assert (b.cameras[0].width, b.cameras[0].height) == (1280, 720)
    assert np.abs(a.cameras[0].sensor_to_ego - b.cameras[0].sensor_to_ego).max() > 1e-3
    assert np.abs(a.lidar.sensor_to_ego - b.lidar.sensor_to_ego).max() > 1e-3


def test_instances_names_ids_classes_boxes(loaded):
    _, data, truth = loaded
    for name in SCENES:
        gt = truth["scenes"][name]
        first_seen = []
        for frame_tokens in gt["ann_order"]:
            for tok in frame_tokens:
                if tok not in first_seen:
                    first_seen.append(tok)
        counts: dict[str, int] = {}
        expected_names = []
        for tok in first_seen:
            cls = EXPECTED_CLASS[gt["categories"][tok]]
            counts[cls] = counts.get(cls, 0) + 1
            expected_names.append(f"{cls}_{counts[cls]}")
        insts = data[name].meta.instances
        assert list(insts) == expected_names
        for i, (iname, tok) in enumerate(zip(expected_names, first_seen), start=1):
            inst = insts[iname]
            assert inst.name == iname and inst.id == i
            assert inst.cls == CLASS_INDEX[EXPECTED_CLASS[gt["categories"][tok]]]
            assert inst.attributes == {"instance_token": tok, "category": gt["categories"][tok]}
            frames = sorted(gt["boxes"][tok])
            assert inst.frames == frames
            exp = np.array([gt["boxes"][tok][f] for f in frames])
            assert inst.boxes.shape == (len(frames), 7)
            np.testing.assert_allclose(inst.boxes[:, :6], exp[:, :6], rtol=0, atol=1e-9)
            np.testing.assert_allclose(_wrap(inst.boxes[:, 6] - exp[:, 6]), 0.0, atol=1e-9)
    # The fixture makes instances appear late and leave early, and shuffles the table:
    insts = data["scene-0061"].meta.instances
    assert any(inst.frames[0] > 0 for inst in insts.values())
    assert any(inst.frames[-1] < 3 for inst in insts.values())
    assert {i.class_name for i in insts.values()} >= {"car", "pedestrian", "truck", "bus", "traffic_cone", "others"}


def _reference_instances(sem: np.ndarray, pose: np.ndarray, boxes: list, ids: list, margin: float):
    """Brute force in the global frame: for every object voxel, every box; nearest centre wins."""
    out = np.zeros(GRID_SHAPE, np.uint16)
    ijk = np.argwhere(sem <= 10)
    pts = RANGE_MIN + (ijk + 0.5) * VOXEL_SIZE
    g = pts @ pose[:3, :3].T + pose[:3, 3]
    b = np.asarray(boxes)
    d = g[:, None, :] - b[None, :, :3]
    c, s = np.cos(b[:, 6]), np.sin(b[:, 6])
    lx = c * d[..., 0] + s * d[..., 1]
    ly = -s * d[..., 0] + c * d[..., 1]
    inside = (np.abs(lx) <= b[:, 3] / 2 + margin) & (np.abs(ly) <= b[:, 4] / 2 + margin) & (np.abs(d[..., 2]) <= b[:, 5] / 2 + margin)
    dist = np.where(inside, (d ** 2).sum(-1), np.inf)
    hit = inside.any(1)
    win = np.asarray(ids)[dist.argmin(1)]
    out[tuple(ijk[hit].T)] = win[hit]
    return out, int((inside.sum(1) >= 2).sum())


def test_instance_grids(loaded):
    _, data, truth = loaded
    assert nuscenes_instances.BOX_MARGIN == 0.2
    contested = 0
    for name in SCENES:
        d, gt = data[name], truth["scenes"][name]
        assert d.instances.dtype == np.uint16 and d.instances.shape == (4, *GRID_SHAPE)
        by_token = {inst.attributes["instance_token"]: inst for inst in d.meta.instances.values()}
        for f in range(4):
            toks = [t for t in gt["instance_tokens"] if f in gt["boxes"][t]]
            ref, n2 = _reference_instances(
                d.semantics[f], gt["ego_to_global"][f], [gt["boxes"][t][f] for t in toks],
                [by_token[t].id for t in toks], 0.2,
            )
            contested += n2
            np.testing.assert_array_equal(d.instances[f], ref)
            inst = d.instances[f]
            # Only object voxels carry instances; every instance of this frame owns voxels.
            assert not np.any(inst[d.semantics[f] > 10])
            assert set(np.unique(inst)) - {0} == {by_token[t].id for t in toks}
            # The object voxels written outside every box stay 0.
            out = gt["outside_voxels"][f]
            assert np.all(d.semantics[f][tuple(out.T)] <= 10)
            assert not np.any(inst[tuple(out.T)])
            # Inside the boxes the bottom layer is road (label 11): present, and 0 in the grid.
            assert (inst == 0).sum() > 0
    assert contested > 0  # the two touching cars' grown boxes share voxels: the rule was exercised


def test_assign_instances_margin_rotation_and_nearest_centre():
    sem = np.full(GRID_SHAPE, 17, np.uint8)
    sem[95:106, 95:106, 3:6] = 4  # a 4.4 m cube of car voxels around x, y in [-2, 2.4]
    sem[100, 100, 3] = 11  # a road voxel inside: never an instance
    yaw = 0.3
    rot = np.array([[np.cos(yaw), -np.sin(yaw), 0], [np.sin(yaw), np.cos(yaw), 0], [0, 0, 1]])
    centres = np.array([[0.0, 0.0, 0.6], [1.6, 0.0, 0.6]])
    sizes = np.array([[2.0, 1.0, 1.0], [2.0, 1.0, 1.0]])
    got = ns.assign_instances(sem, centres, np.stack([rot, rot]), sizes, np.array([3, 7]))
    assert got.dtype == np.uint16
    # Brute force over all voxels.
    idx = np.argwhere(sem <= 10)
    pts = RANGE_MIN + (idx + 0.5) * VOXEL_SIZE
    exp = np.zeros(GRID_SHAPE, np.uint16)
    best = np.full(len(idx), np.inf)
    for cid, c in zip((3, 7), centres):
        loc = (pts - c) @ rot
        inside = np.all(np.abs(loc) <= sizes[0] / 2 + 0.2, axis=1)
        dist = ((pts - c) ** 2).sum(1)
        take = inside & (dist < best)
        best[take] = dist[take]
        exp[tuple(idx[take].T)] = cid
    np.testing.assert_array_equal(got, exp)
    assert got[100, 100, 3] == 0
    # Voxel centre (0.2, 0.2, 0.8) lies in box 3 only; (1.0, 0.2, 0.8) lies in both grown boxes, nearer 7.
    assert got[100, 100, 4] == 3 and got[102, 100, 4] == 7
    # Margin: a voxel just outside the box but within 0.2 m of its face belongs to it.
    loc = (np.array([RANGE_MIN[0] + 100.5 * 0.4, RANGE_MIN[1] + 101.5 * 0.4, 0.6]) - centres[0]) @ rot
    assert 0.5 < abs(loc[1]) <= 0.7 and got[100, 101, 4] == 3
    assert ns.assign_instances(sem, np.zeros((0, 3)), np.zeros((0, 3, 3)), np.zeros((0, 3)), np.zeros(0)).max() == 0


def test_labels_and_masks_equal_the_npz(loaded):
    _, data, truth = loaded
    for name in SCENES:
        d = data[name]
        for f, path in enumerate(truth["scenes"][name]["label_paths"]):
            with np.load(path) as npz:
                np.testing.assert_array_equal(d.semantics[f], npz["semantics"])
                np.testing.assert_array_equal(d.mask_lidar[f], npz["mask_lidar"])
                np.testing.assert_array_equal(d.mask_camera[f], npz["mask_camera"])
        assert d.semantics.dtype == np.uint8 and d.mask_camera.dtype == np.uint8
        assert not np.array_equal(d.mask_camera[0], d.mask_camera[1])


def test_scene_meta_round_trips_through_json(loaded):
    _, data, _ = loaded
    meta = data["scene-0103"].meta
    back = SceneMeta.from_dict(json.loads(json.dumps(meta.to_dict())))
    assert back.tokens == meta.tokens and back.split == "val" and back.source == "nuscenes"
    np.testing.assert_allclose(back.ego_to_global, meta.ego_to_global, atol=1e-12)
    assert list(back.instances) == list(meta.instances)
    assert back.rig.cameras[3].width == 1280


def test_category_mapping_covers_all_nuscenes_categories():
    for cat, cls in EXPECTED_CLASS.items():
        assert category_to_class(cat) == CLASS_INDEX[cls], cat
    assert category_to_class("vehicle.hovercraft") == CLASS_INDEX["others"]


def test_load_of_40_frames_with_50_boxes_is_fast(tmp_path, monkeypatch):
    build_nuscenes_folder(tmp_path, VERSION, ("scene-0061",), frames=40, instances=50)
    src = ns.NuScenesSource(tmp_path, VERSION)
    spent = []
    real = ns.assign_instances

    def timed(*a, **k):
        t = time.perf_counter()
        out = real(*a, **k)
        spent.append(time.perf_counter() - t)
        return out

    monkeypatch.setattr(ns, "assign_instances", timed)
    t0 = time.perf_counter()
    d = src.load("scene-0061")
    total = time.perf_counter() - t0
    assert d.instances.shape == (40, *GRID_SHAPE) and len(d.meta.instances) == 50
    assert len(spent) == 40
    assert sum(spent) < 2.0, f"instance grids took {sum(spent):.2f} s"
    assert total < 6.0, f"load took {total:.2f} s"
    owned = np.bincount(d.instances.ravel(), minlength=52)
    assert np.all(owned[1:51] > 0) and owned[51] == 0  # every one of the 50 instances owns voxels


# ------------------------------------------------------------------------------------------
# Bad input: one line naming the file or flag
# ------------------------------------------------------------------------------------------


def test_missing_and_empty_dataroot(tmp_path):
    msg = _bad(nuscenes_tables.check_nuscenes_input, tmp_path / "nope", VERSION, None)
    assert "--dataroot" in msg and "nope" in msg and "does not exist" in msg
    (tmp_path / "empty").mkdir()
    msg = _bad(ns.NuScenesSource, tmp_path / "empty", VERSION)
    assert "--dataroot" in msg and str(tmp_path / "empty") in msg and "empty folder" in msg


def test_wrong_version_lists_existing_versions(copy):
    (copy / "v1.0-trainval").mkdir()
    msg = _bad(ns.NuScenesSource, copy, "v1.0-test")
    assert "--version" in msg and "'v1.0-test'" in msg
    assert "v1.0-mini, v1.0-trainval" in msg


def test_missing_table_is_named(copy):
    (copy / VERSION / "sample_annotation.json").unlink()
    msg = _bad(ns.NuScenesSource, copy, VERSION)
    assert str(copy / VERSION / "sample_annotation.json") in msg and "missing" in msg
    (copy / VERSION / "ego_pose.json").unlink()
    msg = _bad(nuscenes_tables.check_nuscenes_input, copy, VERSION, None)
    assert "ego_pose.json" in msg and "also missing: sample_annotation.json" in msg


def test_corrupt_table_is_named(copy):
    path = copy / VERSION / "ego_pose.json"
    path.write_text(path.read_text()[:500])
    msg = _bad(ns.NuScenesSource, copy, VERSION)
    assert str(path) in msg and "not valid JSON" in msg


def test_dangling_token_and_missing_map_mask(copy):
    maps = list((copy / "maps").glob("*.png"))
    maps[0].unlink()
    msg = _bad(ns.NuScenesSource, copy, VERSION)
    assert str(maps[0]) in msg and "map" in msg
    shutil.rmtree(copy / "maps")
    (copy / "maps").mkdir()
    for m in maps:
        m.write_bytes(b"")
    path = copy / VERSION / "instance.json"
    rows = json.loads(path.read_text())
    path.write_text(json.dumps(rows[1:]))  # an annotation now names an instance that is gone
    msg = _bad(ns.NuScenesSource, copy, VERSION)
    assert str(copy / VERSION) in msg and "inconsistent" in msg


def test_devkit_failures_are_wrapped(copy):
    """What nuscenes-devkit raises by itself (past our up-front checks) becomes one-line BadInput."""
    table = copy / VERSION / "sample_annotation.json"
    table.rename(copy / "moved.json")
    msg = _bad(nuscenes_tables.open_nuscenes, copy, VERSION)  # the devkit: FileNotFoundError from open()
    assert str(table) in msg and "missing" in msg
    (copy / "moved.json").rename(table)
    (copy / VERSION / "map.json").write_text("[]")  # the devkit: IndexError on map[0]
    msg = _bad(ns.NuScenesSource, copy, VERSION)
    assert str(copy / VERSION) in msg and "IndexError" in msg
    msg = _bad(nuscenes_tables.open_nuscenes, copy, "v1.0-none")  # the devkit: AssertionError
    assert "Database version not found" in msg


def test_missing_gts_folder(copy, tmp_path):
    shutil.rmtree(copy / "gts")
    msg = _bad(ns.NuScenesSource, copy, VERSION)
    assert "--occ-root" in msg and "gts" in msg
    msg = _bad(nuscenes_tables.check_nuscenes_input, copy, VERSION, tmp_path / "nowhere")
    assert "--occ-root" in msg and "nowhere" in msg


def test_occ_root_elsewhere(pristine, copy, tmp_path):
    root, truth = pristine
    shutil.move(str(copy / "gts"), str(tmp_path / "occ" / "gts"))
    src = ns.NuScenesSource(copy, VERSION, occ_root=tmp_path / "occ")
    d = src.load("scene-0103")
    with np.load(truth["scenes"]["scene-0103"]["label_paths"][2]) as npz:
        np.testing.assert_array_equal(d.semantics[2], npz["semantics"])
    # The gts folder itself is accepted too.
    assert ns.NuScenesSource(copy, VERSION, occ_root=tmp_path / "occ" / "gts").gts_root == tmp_path / "occ" / "gts"


def test_missing_occ_frame_and_scene(copy, pristine):
    _, truth = pristine
    tokens = truth["scenes"]["scene-0061"]["sample_tokens"]
    frame = copy / "gts" / "scene-0061" / tokens[2] / "labels.npz"
    frame.unlink()
    src = ns.NuScenesSource(copy, VERSION)
    msg = _bad(src.load, "scene-0061")
    assert str(frame) in msg and "missing" in msg
    msg = _bad(src.check_occupancy)
    assert str(frame) in msg
    src.load("scene-0103")  # the other scene is fine
    shutil.rmtree(copy / "gts" / "scene-0103")
    msg = _bad(src.load, "scene-0103")
    assert str(copy / "gts" / "scene-0103") in msg and "scene-0103" in msg


def test_unknown_scene(loaded):
    src = loaded[0]
    msg = _bad(src.load, "scene-0999")
    assert "scene-0999" in msg and "scene-0061" in msg


def _label_file(copy: Path, truth: dict) -> Path:
    return copy / "gts" / "scene-0103" / truth["scenes"]["scene-0103"]["sample_tokens"][1] / "labels.npz"


def test_truncated_labels(copy, pristine):
    path = _label_file(copy, pristine[1])
    raw = path.read_bytes()
    path.write_bytes(raw[: len(raw) // 2])
    msg = _bad(ns.NuScenesSource(copy, VERSION).load, "scene-0103")
    assert str(path) in msg and ("corrupt" in msg or "truncated" in msg)
    path.write_bytes(b"not a zip at all")
    msg = _bad(ns.NuScenesSource(copy, VERSION).load, "scene-0103")
    assert str(path) in msg


@pytest.mark.parametrize(
    "semantics, words",
    [
        (np.full(GRID_SHAPE, 20, np.uint8), ("semantics", "20", "17")),
        (np.full(GRID_SHAPE, 4, np.int64), ("semantics", "int64", "uint8")),
        (np.full((200, 200, 17), 4, np.uint8), ("semantics", "(200, 200, 17)", "(200, 200, 16)")),
    ],
    ids=["label-above-17", "wrong-dtype", "wrong-shape"],
)
def test_invalid_labels(copy, pristine, semantics, words):
    path = _label_file(copy, pristine[1])
    ones = np.ones(GRID_SHAPE, np.uint8)
    np.savez_compressed(path, semantics=semantics, mask_lidar=ones, mask_camera=ones)
    msg = _bad(ns.NuScenesSource(copy, VERSION).load, "scene-0103")
    assert str(path) in msg
    for w in words:
        assert w in msg
