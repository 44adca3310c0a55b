"""I3D (Carreira & Zisserman 2017): Inception-v1 inflated to 3D, the Kinetics-400 network behind FVD.

FVD (Unterthiner et al. 2018; StyleGAN-V's port) feeds clips of 16 frames, 224×224, values in
[-1, 1] to DeepMind's `i3d-kinetics-400` and takes its 400 logits (before the softmax), averaged
over time. This module is that network in plain PyTorch:

* TF "SAME" padding everywhere, computed from the input size (asymmetric: the extra pixel goes
  at the end), which a fixed `padding=` cannot express;
* batch norm with eps = 1e-3 after every convolution but the logits;
* final 2×7×7 average pool (stride 1, valid), 1×1×1 logits convolution with bias, mean over time.

State dict keys follow the common PyTorch port (pytorch-i3d's `InceptionI3d`, whose
`rgb_imagenet.pt` is a plain Kinetics-400 state dict), named after DeepMind's TF scopes:

    Conv3d_1a_7x7.conv3d.weight [64, 3, 7, 7, 7]      Conv3d_1a_7x7.bn.{weight,bias,running_mean,running_var}
    Conv3d_2b_1x1.*  Conv3d_2c_3x3.*                   (the same conv3d / bn layout)
    Mixed_3b.b0.*    1×1 branch                        Mixed_3b.b1a.* → Mixed_3b.b1b.*  1×1 → 3×3×3
    Mixed_3b.b2a.* → Mixed_3b.b2b.*  1×1 → 3×3×3       Mixed_3b.b3b.*  1×1 after a 3×3×3 max pool
    ... Mixed_3c, 4b–4f, 5b, 5c alike
    logits.conv3d.weight [400, 1024, 1, 1, 1]          logits.conv3d.bias [400]

DeepMind's batch norm has no scale (gamma); a converted state dict carries `bn.weight` = 1.
StyleGAN-V's `i3d_torchscript.pt` is TorchScript, not a state dict: convert its tensors to the
layout above (one key per parameter or buffer) before use.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

FVD_INPUT_SIZE = 224
FVD_FEATURE_DIM = 400
KINETICS_CLASSES = 400

Triple = tuple[int, int, int]

# Mixed blocks: (input channels, [b0, b1a, b1b, b2a, b2b, b3b] output channels); out = b0 + b1b + b2b + b3b.
_MIXED: dict[str, tuple[int, list[int]]] = {
    "Mixed_3b": (192, [64, 96, 128, 16, 32, 32]),
    "Mixed_3c": (256, [128, 128, 192, 32, 96, 64]),
    "Mixed_4b": (480, [192, 96, 208, 16, 48, 64]),
    "Mixed_4c": (512, [160, 112, 224, 24, 64, 64]),
    "Mixed_4d": (512, [128, 128, 256, 24, 64, 64]),
    "Mixed_4e": (512, [112, 144, 288, 32, 64, 64]),
    "Mixed_4f": (528, [256, 160, 320, 32, 128, 128]),
    "Mixed_5b": (832, [256, 160, 320, 32, 128, 128]),
    "Mixed_5c": (832, [384, 192, 384, 48, 128, 128]),
}


def _triple(v: int | Triple) -> Triple:
    return (v, v, v) if isinstance(v, int) else v


def same_pad(x: torch.Tensor, kernel: Triple, stride: Triple) -> torch.Tensor:
    """Zero-pad [N, C, T, H, W] as TF's "SAME": output = ceil(input / stride), extra pixel at the end.

    Zero padding also stands in for TF's -inf padding of max pools: every pooled tensor here
    comes out of a ReLU, so it is >= 0 and a zero border never wins the max.
    """
    pads: list[int] = []
    for size, k, s in zip(reversed(x.shape[2:]), reversed(kernel), reversed(stride)):
        total = max((math.ceil(size / s) - 1) * s + k - size, 0)
        pads += [total // 2, total - total // 2]
    return F.pad(x, pads)


class Unit3D(nn.Module):
    """SAME-padded Conv3d → BatchNorm(eps 1e-3) → ReLU; keys `conv3d.*`, `bn.*`.

    The logits layer is the one unit with a bias and neither batch norm nor ReLU.
    """

    def __init__(self, cin: int, cout: int, kernel: int | Triple = 1, stride: int | Triple = 1,
                 logits: bool = False) -> None:
        super().__init__()
        self.kernel, self.stride = _triple(kernel), _triple(stride)
        self.conv3d = nn.Conv3d(cin, cout, self.kernel, stride=self.stride, bias=logits)
        self.bn = None if logits else nn.BatchNorm3d(cout, eps=1e-3, momentum=0.01)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv3d(same_pad(x, self.kernel, self.stride))
        return x if self.bn is None else F.relu(self.bn(x))


class MaxPool3dSame(nn.Module):
    def __init__(self, kernel: Triple, stride: Triple) -> None:
        super().__init__()
        self.kernel, self.stride = kernel, stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.max_pool3d(same_pad(x, self.kernel, self.stride), self.kernel, self.stride)


class Mixed(nn.Module):
    """Inflated Inception block: 1×1 | 1×1→3×3×3 | 1×1→3×3×3 | max 3×3×3→1×1, concatenated."""

    def __init__(self, cin: int, c: list[int]) -> None:
        super().__init__()
        self.b0 = Unit3D(cin, c[0])
        self.b1a, self.b1b = Unit3D(cin, c[1]), Unit3D(c[1], c[2], 3)
        self.b2a, self.b2b = Unit3D(cin, c[3]), Unit3D(c[3], c[4], 3)
        self.b3a, self.b3b = MaxPool3dSame((3, 3, 3), (1, 1, 1)), Unit3D(cin, c[5])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.b0(x), self.b1b(self.b1a(x)), self.b2b(self.b2a(x)), self.b3b(self.b3a(x))], 1)


class I3D(nn.Module):
    """[N, 3, T, H, W] in [-1, 1] (T = 16, H = W = 224 for FVD) → [N, 400] Kinetics logits, time-averaged.

    12.7 M parameters with the 400-way logits (12.3 M without them).
    """

    def __init__(self, num_classes: int = KINETICS_CLASSES) -> None:
        super().__init__()
        self.Conv3d_1a_7x7 = Unit3D(3, 64, 7, 2)
        self.MaxPool3d_2a_3x3 = MaxPool3dSame((1, 3, 3), (1, 2, 2))
        self.Conv3d_2b_1x1 = Unit3D(64, 64)
        self.Conv3d_2c_3x3 = Unit3D(64, 192, 3)
        self.MaxPool3d_3a_3x3 = MaxPool3dSame((1, 3, 3), (1, 2, 2))
        self.Mixed_3b, self.Mixed_3c = Mixed(*_MIXED["Mixed_3b"]), Mixed(*_MIXED["Mixed_3c"])
        self.MaxPool3d_4a_3x3 = MaxPool3dSame((3, 3, 3), (2, 2, 2))
        self.Mixed_4b, self.Mixed_4c = Mixed(*_MIXED["Mixed_4b"]), Mixed(*_MIXED["Mixed_4c"])
        self.Mixed_4d, self.Mixed_4e = Mixed(*_MIXED["Mixed_4d"]), Mixed(*_MIXED["Mixed_4e"])
        self.Mixed_4f = Mixed(*_MIXED["Mixed_4f"])
        self.MaxPool3d_5a_2x2 = MaxPool3dSame((2, 2, 2), (2, 2, 2))
        self.Mixed_5b, self.Mixed_5c = Mixed(*_MIXED["Mixed_5b"]), Mixed(*_MIXED["Mixed_5c"])
        self.logits = Unit3D(1024, num_classes, logits=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in (self.Conv3d_1a_7x7, self.MaxPool3d_2a_3x3, self.Conv3d_2b_1x1, self.Conv3d_2c_3x3,
                      self.MaxPool3d_3a_3x3, self.Mixed_3b, self.Mixed_3c, self.MaxPool3d_4a_3x3, self.Mixed_4b,
                      self.Mixed_4c, self.Mixed_4d, self.Mixed_4e, self.Mixed_4f, self.MaxPool3d_5a_2x2,
                      self.Mixed_5b, self.Mixed_5c):
            x = layer(x)
        # The graph's 2×7×7 valid average pool: one position for 16×224×224 clips. Shorter or
        # smaller inputs (tests, 8-frame protocols) shrink the window to fit instead of failing.
        window = tuple(min(k, s) for k, s in zip((2, 7, 7), x.shape[2:]))
        x = F.avg_pool3d(x, window, stride=1)
        # Dropout is the identity at inference; the logits are averaged over the remaining
        # positions (time, as the TF hub model does; space too when the input was larger).
        return self.logits(x).mean(dim=(2, 3, 4))


def fvd_input(clips: torch.Tensor, size: int = FVD_INPUT_SIZE) -> torch.Tensor:
    """uint8 [N, T, H, W, 3] clips → float [N, 3, T, size, size] in [-1, 1], as the FVD code feeds I3D.

    Bilinear resize of each frame without antialiasing, aspect ratio not kept (the TF FVD code
    uses `tf.image.resize_bilinear` to 224×224).
    """
    n, t, h, w, _ = clips.shape
    x = clips.reshape(n * t, h, w, 3).permute(0, 3, 1, 2).float().div_(255.0)
    if (h, w) != (size, size):
        x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)
    x = x.mul_(2.0).sub_(1.0)
    return x.reshape(n, t, 3, size, size).permute(0, 2, 1, 3, 4).contiguous()
