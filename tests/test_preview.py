"""MP4 previews: every frame size gives a file ffmpeg reads back."""

from __future__ import annotations

import imageio_ffmpeg
import numpy as np
import pytest

from geniedrive.pipelines.data.preview import write_mp4


@pytest.mark.parametrize("size", [(32, 16), (33, 17), (20, 15)])
def test_mp4_reads_back_with_every_frame_at_any_size(tmp_path, size):
    h, w = size
    frames = [np.full((h, w, 3), 40 * i, np.uint8) for i in range(5)]
    frames[2][: h // 2] = [250, 10, 10]  # a red top half, to see the picture survives
    write_mp4(tmp_path / "v.mp4", frames, 2.0)
    reader = imageio_ffmpeg.read_frames(str(tmp_path / "v.mp4"))
    meta = next(reader)
    got = [np.frombuffer(b, np.uint8).reshape(meta["size"][1], meta["size"][0], 3) for b in reader]
    assert tuple(meta["size"]) == (w + w % 2, h + h % 2)
    assert len(got) == 5
    top = got[2][: h // 2 - 2, :w].reshape(-1, 3).mean(0)
    assert top[0] > 200 and top[1] < 60, top  # lossy, but clearly red
    assert abs(float(got[4][:h, :w].mean()) - 160) < 8


def test_topdown_previews_carry_a_legend_of_the_classes_in_view_and_a_scale_bar():
    from geniedrive.pipelines.data.occ3d import CLASS_INDEX, FREE, GRID_SHAPE, PALETTE
    from geniedrive.pipelines.data.preview import LEGEND_WIDTH, preview_frame

    occ = np.full(GRID_SHAPE, FREE, np.uint8)
    occ[:, :, 2] = CLASS_INDEX["driveable_surface"]
    occ[120:130, 95:105, 3:6] = CLASS_INDEX["car"]
    img = preview_frame(occ, np.zeros((1, 2)), 0, title="t = 0 s")
    assert img.shape == (400, 400 + LEGEND_WIDTH, 3)
    panel = img[:, 400:].reshape(-1, 3)
    colours = {tuple(c) for c in panel}
    for cls in ("car", "driveable_surface"):
        assert tuple(PALETTE[CLASS_INDEX[cls]]) in colours, cls  # a swatch per class in view
    assert tuple(PALETTE[CLASS_INDEX["truck"]]) not in colours  # and none for classes not there
    bar = img[385:392, 10:60]  # the 10 m bar (50 px at 2 px per voxel) is white
    assert (bar == 255).all(axis=-1).any(axis=0).sum() >= 45
    assert preview_frame(occ, np.zeros((1, 2)), 0, legend=False).shape == (400, 400, 3)


def test_camera_grids_name_their_views_and_the_time():
    from geniedrive.pipelines.sensors.camera import RING_ORDER, labelled_grid, ring_grid

    names = [n for row in RING_ORDER for n in row]
    views = np.full((6, 128, 256, 3), 90, np.uint8)
    plain, labelled = ring_grid(views, names), labelled_grid(views, names, 1.5)
    assert labelled.shape == plain.shape == (256, 768, 3)
    for r in range(2):  # each tile's top-left corner holds its (white) name, the rest is untouched
        for c in range(3):
            corner = labelled[r * 128: r * 128 + 20, c * 256: c * 256 + 60]
            assert (corner > 200).all(-1).any(), (r, c)
            assert (labelled[r * 128 + 40: r * 128 + 128, c * 256: c * 256 + 200] == 90).all()
    assert (labelled[:20, -80:] > 200).all(-1).any()  # the time, top right
    small = np.full((6, 16, 32, 3), 90, np.uint8)
    assert np.array_equal(labelled_grid(small, names, 1.5), ring_grid(small, names))  # too small to label
