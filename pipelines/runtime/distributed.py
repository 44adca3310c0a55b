"""One process needs no launcher; many GPUs or nodes run through `torchrun` (DDP).

torchrun sets RANK / WORLD_SIZE / LOCAL_RANK; we initialise the process group from them (NCCL on
CUDA, gloo on CPU). Only rank 0 writes checkpoints and artifacts.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass
class DistInfo:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0


def init_distributed(device: torch.device) -> DistInfo:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo()
    info = DistInfo(int(os.environ["RANK"]), world, int(os.environ.get("LOCAL_RANK", "0")))
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return info


def shutdown_distributed(info: DistInfo) -> None:
    if info.world > 1 and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def resolve_device(flag: str, local_rank: int = 0) -> torch.device:
    """--device auto|cpu|cuda|cuda:N -> a torch device (raises BadInput when CUDA is missing)."""
    from ..errors import BadInput

    if flag == "auto":
        return torch.device(f"cuda:{local_rank}") if torch.cuda.is_available() else torch.device("cpu")
    if flag.startswith("cuda"):
        if not torch.cuda.is_available():
            raise BadInput(f"--device {flag}: CUDA is not available on this machine; use --device cpu or auto")
        if flag == "cuda":
            return torch.device(f"cuda:{local_rank}")
    return torch.device(flag)


def all_reduce_mean(t: torch.Tensor, info: DistInfo) -> torch.Tensor:
    if info.world > 1:
        t = t.clone()
        dist.all_reduce(t)
        t /= info.world
    return t
