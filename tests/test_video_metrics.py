"""`gdrive evaluate video`: the Fréchet distance against scipy, the FID / FVD networks (shapes,
parameter counts, weight files) and the command end to end on tiny MP4 folders.

No real weights exist here: the networks get random weights (Kaiming-initialised so that their
features vary with the input) saved to temporary files. The protocol input sizes (299 / 224) are
shrunk for the command-line runs so that each test takes a few seconds on a CPU.
"""

import json
import shutil
import warnings

import numpy as np
import pytest
import scipy.linalg
import torch
from safetensors.torch import save_file
from torch import nn

from geniedrive.pipelines.data.preview import write_mp4
from geniedrive.pipelines.video import i3d, inception
from geniedrive.pipelines.video.metrics_frechet import FeatureStats, frechet_distance, frechet_distance_of
from geniedrive.pipelines.video.metrics_networks import FID_NET, FVD_NET, load_network
from tests.helpers import run_cli

CPU = torch.device("cpu")


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _scipy_reference(a: np.ndarray, b: np.ndarray) -> float:
    mu1, mu2 = a.mean(0), b.mean(0)
    s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    covmean = scipy.linalg.sqrtm(s1 @ s2).real
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean))


def _stats(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return x.mean(0), np.cov(x, rowvar=False)


def test_frechet_distance_matches_scipy_and_is_zero_for_identical_sets():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(200, 64)) @ rng.normal(size=(64, 64)) * 0.3 + 1.0
    b = rng.normal(size=(200, 64)) @ rng.normal(size=(64, 64)) * 0.2 - 0.5
    ref = _scipy_reference(a, b)
    assert ref > 1.0
    for method in ("eig", "sqrtm"):
        assert frechet_distance(*_stats(a), *_stats(b), method=method) == pytest.approx(ref, rel=1e-6)
    assert abs(frechet_distance(*_stats(a), *_stats(a))) < 1e-9 * ref
    # Running statistics over batches equal the statistics of the whole set (large mean on purpose).
    st = FeatureStats(64)
    for chunk in np.array_split(a + 1e4, 7):
        st.update(chunk)
    np.testing.assert_allclose(st.mean(), a.mean(0) + 1e4, rtol=1e-12)
    np.testing.assert_allclose(st.cov(), np.cov(a, rowvar=False), rtol=1e-7, atol=1e-9)
    # Fewer samples than dims: singular covariances still give a finite, real, non-negative distance.
    assert np.isfinite(frechet_distance(*_stats(a[:10]), *_stats(b[:10])))
    # From running statistics: rows kept (n ≤ D), moments only (n > D) and a mix agree with the matrices.
    for na, nb in ((40, 30), (200, 150), (40, 200), (200, 40)):
        sa, sb = FeatureStats(64), FeatureStats(64)
        for chunk in np.array_split(a[:na], 3):
            sa.update(chunk)
        for chunk in np.array_split(b[:nb], 2):
            sb.update(torch.from_numpy(chunk))
        assert (sa.sample_factor() is None, sb.sample_factor() is None) == (na > 64, nb > 64)
        assert frechet_distance_of(sa, sb) == pytest.approx(frechet_distance(*_stats(a[:na]), *_stats(b[:nb])), rel=1e-7)
    assert frechet_distance_of(sa, sa) < 1e-9 * ref


def _lively(model: nn.Module, seed: int) -> nn.Module:
    """Random weights whose activations keep their scale through the depth (PyTorch's default init
    shrinks them ~1e-7 by the last Inception block, which would make every feature the same)."""
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, (nn.Conv2d, nn.Conv3d, nn.Linear)):
            fan_in = m.weight[0].numel()
            with torch.no_grad():
                m.weight.copy_(torch.randn(m.weight.shape, generator=g) * (2.0 / fan_in) ** 0.5)
                if m.bias is not None:
                    m.bias.zero_()
    return model.eval()


def _save(model: nn.Module, path) -> None:
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))


def test_networks_have_the_standard_sizes_and_load_from_files(tmp_path):
    fid = _lively(inception.FIDInceptionV3(), 0)
    fvd = _lively(i3d.I3D(), 1)
    # InceptionV3 without aux logits: 21,785,568 in the trunk + 2048×1008 + 1008 = 2,065,392 in the
    # 1008-way classifier = 23,850,960, the size of pytorch-fid's pt_inception state dict (torchvision's
    # 1000-class Inception3 without AuxLogits has 23,834,568 = the same minus 8 × 2049).
    n_fid = sum(p.numel() for p in fid.parameters())
    assert (n_fid, n_fid - sum(p.numel() for p in fid.fc.parameters())) == (23_850_960, 21_785_568)
    # I3D: 12,287,264 in the trunk + 1024×400 + 400 logits = 12,697,264 (the "12.7 M" Kinetics-400 I3D).
    n_fvd = sum(p.numel() for p in fvd.parameters())
    assert (n_fvd, n_fvd - sum(p.numel() for p in fvd.logits.parameters())) == (12_697_264, 12_287_264)
    assert "Mixed_7c.branch3x3dbl_3b.bn.running_var" in fid.state_dict() and "fc.weight" in fid.state_dict()
    assert fvd.state_dict()["logits.conv3d.weight"].shape == (400, 1024, 1, 1, 1) and "Mixed_5c.b2b.bn.bias" in fvd.state_dict()

    frames = torch.randint(0, 256, (3, 40, 56, 3), dtype=torch.uint8)
    clips = torch.randint(0, 256, (2, 8, 40, 56, 3), dtype=torch.uint8)
    x_img, x_vid = inception.fid_input(frames, 75), i3d.fvd_input(clips, 32)
    assert x_img.shape == (3, 3, 75, 75) and x_vid.shape == (2, 3, 8, 32, 32)
    assert -1.0 <= float(x_img.min()) and float(x_img.max()) <= 1.0
    with torch.inference_mode():
        f_img, f_vid = fid(x_img), fvd(x_vid)
        assert f_img.shape == (3, 2048) and f_vid.shape == (2, 400)
        assert f_img.std(0).mean() > 1e-3 * f_img.abs().mean()  # features depend on the input
        _save(fid, tmp_path / "fid.safetensors")
        torch.save(fvd.state_dict(), tmp_path / "fvd.pt")  # a torch file, read with weights_only=True
        fid2 = load_network(FID_NET, tmp_path / "fid.safetensors", CPU)
        fvd2 = load_network(FVD_NET, tmp_path / "fvd.pt", CPU)
        assert torch.equal(fid2(x_img), f_img) and torch.equal(fvd2(x_vid), f_vid)
        # pytorch-fid's file may come without the unused classifier and without BN counters.
        trimmed = {k: v for k, v in fid.state_dict().items() if not k.startswith("fc.") and "num_batches" not in k}
        save_file(trimmed, str(tmp_path / "nofc.safetensors"))
        assert torch.equal(load_network(FID_NET, tmp_path / "nofc.safetensors", CPU)(x_img), f_img)


def _video(rng: np.random.Generator, frames: int, smooth: bool) -> list[np.ndarray]:
    """[T] × [32, 48, 3] uint8: a moving gradient (smooth) or noise."""
    if not smooth:
        return [rng.integers(0, 256, (32, 48, 3), dtype=np.uint8) for _ in range(frames)]
    xx = np.mgrid[0:32, 0:48][1]
    base = rng.uniform(0, 255, 3)
    return [np.stack([(xx * 5 + 7 * t + c * 40 + base[c]) % 256 for c in range(3)], -1).astype(np.uint8)
            for t in range(frames)]


def _folder(root, seed: int, smooth: bool = True, runs: int = 2, cams=("CAM_FRONT", "CAM_BACK"), frames: int = 8):
    rng = np.random.default_rng(seed)
    for r in range(runs):
        for cam in cams:
            (root / f"run{r}").mkdir(parents=True, exist_ok=True)
            write_mp4(root / f"run{r}" / f"{cam}.mp4", _video(rng, frames, smooth), 12.0)
    return root


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    d = tmp_path_factory.mktemp("weights")
    _save(_lively(inception.FIDInceptionV3(), 0), d / "fid.safetensors")
    _save(_lively(i3d.I3D(), 1), d / "fvd.safetensors")
    return d / "fid.safetensors", d / "fvd.safetensors"


@pytest.fixture
def small_protocol(monkeypatch):
    """Protocol sizes shrunk for CPU tests (the command uses 299 / 224)."""
    monkeypatch.setattr(inception, "FID_INPUT_SIZE", 75)
    monkeypatch.setattr(i3d, "FVD_INPUT_SIZE", 32)


def _flags(weights) -> list:
    return ["--fid-weights", weights[0], "--fvd-weights", weights[1], "--clip-frames", "8", "--device", "cpu", "--json"]


def test_evaluate_video_identical_folders_score_zero(capsys, tmp_path, weights, small_protocol):
    real = _folder(tmp_path / "real", 0)
    same = tmp_path / "same"
    shutil.copytree(real, same)
    r = run_cli(capsys, "evaluate", "video", "--real", real, "--generated", same, *_flags(weights), "--out", tmp_path / "rep.json")
    assert r.code == 0, r.err
    out = r.json()
    assert out["command"] == "evaluate" and out["target"] == "video"
    assert out["real"]["videos"] == 4 and out["real"]["views"] == ["CAM_BACK", "CAM_FRONT"]
    assert out["real"]["fid_frames"] == 32 and out["real"]["fvd_clips"] == 4  # all frames of all views; one clip per view
    assert out["protocol"]["fvd"]["input"] == [8, 32, 32] and out["protocol"]["fid"]["input"] == [75, 75]
    assert json.loads((tmp_path / "rep.json").read_text())["fid"] == out["fid"]
    assert "FID" in r.err and "FVD" in r.err  # the table
    assert out["fid"] == pytest.approx(0.0, abs=1e-6) and out["fvd"] == pytest.approx(0.0, abs=1e-6)


def test_evaluate_video_different_folders_score_above_zero(capsys, tmp_path, weights, small_protocol):
    real = _folder(tmp_path / "real", 0)
    noise = _folder(tmp_path / "noise", 1, smooth=False)
    d = run_cli(capsys, "evaluate", "video", "--real", real, "--generated", noise, *_flags(weights))
    assert d.code == 0, d.err
    assert d.json()["fid"] > 1e-2 and d.json()["fvd"] > 1e-2


def test_evaluate_video_matches_relative_paths_unless_unpaired(capsys, tmp_path, weights, small_protocol):
    real = _folder(tmp_path / "real", 0)
    # A generated folder covering part of the real one compares that part only.
    part = tmp_path / "part"
    shutil.copytree(real / "run0", part / "run0")
    p = run_cli(capsys, "evaluate", "video", "--real", real, "--generated", part, *_flags(weights), "--metrics", "fvd")
    assert p.code == 0, p.err
    assert p.json()["left_out"] == {"real": 2, "generated": 0} and p.json()["fid"] is None
    assert p.json()["fvd"] == pytest.approx(0.0, abs=1e-6) and p.json()["generated"]["fvd_clips"] == 2
    # --unpaired compares everything: the two real runs differ in colour, so the part no longer matches.
    u = run_cli(capsys, "evaluate", "video", "--real", real, "--generated", part, *_flags(weights), "--metrics", "fvd", "--unpaired")
    assert u.code == 0, u.err
    assert u.json()["real"]["fvd_clips"] == 4 and u.json()["fvd"] > 1e-3


def test_evaluate_video_bad_input_is_exit_2_one_line(capsys, tmp_path, weights, small_protocol):
    real = _folder(tmp_path / "real", 0, runs=1, cams=("CAM_FRONT",), frames=4)
    (tmp_path / "empty").mkdir()
    fid_w, fvd_w = weights
    both = ["--fid-weights", fid_w, "--fvd-weights", fvd_w]
    cases = [
        (["--real", real, "--generated", real, "--fvd-weights", fvd_w], "--fid-weights"),
        (["--real", real, "--generated", real, "--fid-weights", fid_w], "--fvd-weights"),
        (["--real", tmp_path / "empty", "--generated", real, *both], f"--real {tmp_path / 'empty'}"),
        (["--real", real, "--generated", tmp_path / "empty", *both], f"--generated {tmp_path / 'empty'}"),
        (["--real", real, "--generated", real, "--fid-weights", fvd_w, "--fvd-weights", fvd_w], str(fvd_w)),
        (["--real", real, "--generated", real, "--fid-weights", fid_w, "--fvd-weights", tmp_path / "nope.pt"], "nope.pt"),
        (["--real", real, "--generated", real, *both], "CAM_FRONT.mp4"),  # 4 frames < a 16-frame clip
        (["--real", real, "--generated", real, *both, "--dataset", "demo"], "--dataset"),
    ]
    small = i3d.I3D(num_classes=10)  # right keys, wrong logits shape
    _save(small, tmp_path / "i3d10.safetensors")
    cases.append((["--real", real, "--generated", real, "--fid-weights", fid_w, "--fvd-weights", tmp_path / "i3d10.safetensors"],
                  "logits.conv3d"))
    with warnings.catch_warnings():  # TorchScript is deprecated, and still how StyleGAN-V ships its I3D
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.jit.save(torch.jit.script(nn.Linear(2, 2)), str(tmp_path / "ts.pt"))
    cases.append((["--real", real, "--generated", real, "--fid-weights", fid_w, "--fvd-weights", tmp_path / "ts.pt"], "TorchScript"))
    for args, word in cases:
        r = run_cli(capsys, "evaluate", "video", *args)
        assert r.code == 2, (args, r.err)
        assert len(r.err_lines) == 1 and word in r.err_lines[0], (args, r.err)
    r = run_cli(capsys, "evaluate", "occ", "--real", real)
    assert r.code == 2 and "--real" in r.err_lines[0]
