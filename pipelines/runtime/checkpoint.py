"""Checkpoints as safetensors: weights, optimiser state, step and RNG, written atomically.

A checkpoint folder holds:
    model.safetensors       weights (EMA weights in ema.safetensors when training keeps an EMA)
    optimizer.safetensors   every tensor of the optimiser state, keys `state.<param index>.<name>`
    rng.safetensors         torch CPU (and CUDA) generator states
    state.json              step, optimiser param_groups, anything else the trainer records
    config.json             the model config, used to rebuild the model
Nothing here unpickles: a pickle given where safetensors is expected is refused with exit 2.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from ..errors import BadInput
from ..weights import check_fit
from ..store.artifacts import OwnedTemp, dump_json, recover_dir, replace_dir


def _check_safetensors(path: Path) -> None:
    """Refuse what is not a safetensors file (a pickle, a zip, garbage) with one line."""
    if not path.is_file():
        raise BadInput(f"{path}: weights file is missing; pass a folder written by gdrive training")
    with open(path, "rb") as fh:
        head = fh.read(16)
    if head[:2] == b"PK" or head[:1] == b"\x80":
        raise BadInput(f"{path}: is a pickle/zip (torch.save) file, not safetensors; convert it with "
                       "safetensors.torch.save_file(torch.load(f, weights_only=True), 'model.safetensors')")
    if len(head) < 9 or head[8:9] != b"{":
        raise BadInput(f"{path}: not a safetensors file (bad header); re-export the weights as safetensors")


def read_tensors(path: Path) -> dict[str, torch.Tensor]:
    path = Path(path)
    _check_safetensors(path)
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise BadInput(f"{path}: unreadable safetensors ({str(exc).splitlines()[0]}); the file is truncated or corrupt") from None


def load_weights(module: torch.nn.Module, path: Path) -> None:
    """Load safetensors weights into `module`, refusing any missing key, shape or dtype mismatch
    and non-finite values (pipelines.weights.check_fit)."""
    state = read_tensors(path)
    check_fit(state, module.state_dict(), str(path))
    module.load_state_dict(state)


def save_weights(module: torch.nn.Module, path: Path) -> None:
    """A module's state dict as one safetensors file (CPU, contiguous)."""
    save_file({k: v.detach().cpu().contiguous() for k, v in module.state_dict().items()}, str(path))


def write_folder(folder: Path, write: Callable[[Path], None], marker: str) -> Path:
    """Fill a temporary sibling of `folder` with `write(temp)`, then rename it into place as a
    whole; `marker` is the file that makes a folder complete (see recover_dir)."""
    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    recover_dir(folder.parent, folder.name, marker)  # a swap a killed run left half done
    temp = OwnedTemp(folder.parent, folder.name)
    try:
        write(temp.path)
        temp.seal()
        replace_dir(temp.path, folder)
    except BaseException:
        temp.discard()
        raise
    return folder


def write_model_folder(folder: Path, config: dict, parts: dict[str, torch.nn.Module]) -> Path:
    """A model folder: config.json + <part>.safetensors, written atomically."""
    def write(tmp: Path) -> None:
        for stem, module in parts.items():
            save_weights(module, tmp / f"{stem}.safetensors")
        (tmp / "config.json").write_text(dump_json(config))

    return write_folder(folder, write, "config.json")


def _optimizer_tensors(opt: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict]:
    sd = opt.state_dict()
    tensors, scalars = {}, {}
    for idx, st in sd["state"].items():
        for k, v in st.items():
            if torch.is_tensor(v):
                tensors[f"state.{idx}.{k}"] = v.detach().cpu().contiguous()
            else:
                scalars[f"{idx}.{k}"] = v
    return tensors, {"param_groups": sd["param_groups"], "scalars": scalars}


def _restore_optimizer(opt: torch.optim.Optimizer, tensors: dict[str, torch.Tensor], meta: dict) -> None:
    state: dict[int, dict] = {}
    for key, v in tensors.items():
        _, idx, name = key.split(".", 2)
        state.setdefault(int(idx), {})[name] = v
    for key, v in meta.get("scalars", {}).items():
        idx, name = key.split(".", 1)
        state.setdefault(int(idx), {})[name] = v
    opt.load_state_dict({"state": state, "param_groups": meta["param_groups"]})


def save_checkpoint(folder: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer | None,
                    state: dict, config: dict, ema: torch.nn.Module | None = None) -> Path:
    """Write a complete checkpoint to `folder` atomically (temp sibling, then rename)."""
    return write_folder(folder, lambda tmp: _write_checkpoint(tmp, model, optimizer, state, config, ema), "state.json")


def _write_checkpoint(tmp: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer | None, state: dict,
                      config: dict, ema: torch.nn.Module | None) -> None:
    save_weights(model, tmp / "model.safetensors")
    if ema is not None:
        save_weights(ema, tmp / "ema.safetensors")
    meta = dict(state)
    if optimizer is not None:
        tensors, opt_meta = _optimizer_tensors(optimizer)
        save_file(tensors, str(tmp / "optimizer.safetensors"))
        meta["optimizer"] = opt_meta
    rng = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        for i, s in enumerate(torch.cuda.get_rng_state_all()):
            rng[f"cuda{i}"] = s
    save_file(rng, str(tmp / "rng.safetensors"))
    (tmp / "state.json").write_text(dump_json(meta))
    (tmp / "config.json").write_text(dump_json(config))


def load_checkpoint(folder: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer | None = None,
                    ema: torch.nn.Module | None = None, restore_rng: bool = True) -> dict:
    """Restore a checkpoint written by `save_checkpoint`; returns its state.json."""
    folder = Path(folder)
    if folder.parent.is_dir():
        recover_dir(folder.parent, folder.name, "state.json")
    if not (folder / "state.json").is_file():
        raise BadInput(f"{folder}: not a gdrive checkpoint (no state.json); pass a checkpoint folder or drop --resume")
    meta = json.loads((folder / "state.json").read_text())
    load_weights(model, folder / "model.safetensors")
    if ema is not None and (folder / "ema.safetensors").exists():
        load_weights(ema, folder / "ema.safetensors")
    if optimizer is not None and "optimizer" in meta:
        _restore_optimizer(optimizer, read_tensors(folder / "optimizer.safetensors"), meta["optimizer"])
    if restore_rng:
        rng = read_tensors(folder / "rng.safetensors")
        torch.set_rng_state(rng["torch"])
        if torch.cuda.is_available():
            states = [rng[k] for k in sorted(k for k in rng if k.startswith("cuda"))]
            if len(states) == torch.cuda.device_count():
                torch.cuda.set_rng_state_all(states)
    return meta
