"""MP4 previews: every frame size gives a file ffmpeg reads back."""

from __future__ import annotations

import imageio_ffmpeg
import numpy as np
import pytest

from pipelines.data.preview import write_mp4


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
