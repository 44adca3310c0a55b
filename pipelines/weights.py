"""Weights given to gdrive are input like any other.

`read_state_dict` reads a state dict from safetensors or a torch.save file (`weights_only=True`
only: a pickle that needs code is refused naming the global it asks for). `check_fit` requires a
state dict to fit the model it is loaded into (every key, shape and dtype) and to hold finite
numbers, or loading stops with exit 2 naming the file: a model whose weights are NaN would
otherwise forecast garbage and report success."""

from __future__ import annotations

import pickle
import re
import zipfile
from pathlib import Path
from typing import Mapping

import torch

from .errors import BadInput


def check_fit(state: Mapping[str, torch.Tensor], own: Mapping[str, torch.Tensor], where: str,
              hint: str = "use the config saved beside them") -> None:
    """Raise BadInput unless `state` has exactly the keys of `own`, with the same shapes and
    dtypes, and every floating tensor is finite."""
    missing = sorted(set(own) - set(state))
    extra = sorted(set(state) - set(own))
    if missing or extra:
        what = f"missing {missing[:3]}" if missing else f"unexpected {extra[:3]}"
        raise BadInput(f"{where}: weights do not fit this model ({what}); {hint}")
    for k, v in own.items():
        got = state[k]
        if not isinstance(got, torch.Tensor):
            raise BadInput(f"{where}: '{k}' is a {type(got).__name__}, not a tensor; re-export the weights")
        if got.shape != v.shape:
            raise BadInput(f"{where}: '{k}' has shape {tuple(got.shape)}, the model needs {tuple(v.shape)}; "
                           "the checkpoint is for another config (see its config.json)")
        if got.dtype != v.dtype and not (got.is_floating_point() and v.is_floating_point()):
            raise BadInput(f"{where}: '{k}' has dtype {str(got.dtype).replace('torch.', '')}, the model needs "
                           f"{str(v.dtype).replace('torch.', '')}; re-export the weights from the trained model")
        if got.is_floating_point() and not bool(torch.isfinite(got).all()):
            raise BadInput(f"{where}: '{k}' holds NaN or infinite values; these weights are broken (a diverged "
                           "run?), retrain or restore them")


def _is_torchscript(path: Path) -> bool:
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as zf:
        return any(n.endswith("/constants.pkl") or "/code/" in n for n in zf.namelist())


def _refusal(exc: Exception) -> str:
    """Why torch.load refused a file, as a whole phrase: the unpickler names the object it would not
    build ('Unsupported global: GLOBAL os.system'); other errors are named by their type."""
    text = " ".join(str(exc).split())
    found = re.search(r"(?:Unsupported global: GLOBAL|unsupported GLOBAL) ([\w.]+)", text)
    if found:
        return f"it holds the Python object {found.group(1)}, which weights_only loading refuses to build"
    if isinstance(exc, pickle.UnpicklingError) or "Weights only load failed" in text:
        return "it holds Python objects that weights_only loading refuses to build"
    return f"{type(exc).__name__}: it is no torch.save file"


def read_state_dict(path: Path, flag: str) -> dict[str, torch.Tensor]:
    """A state dict from safetensors or a torch.save file (loaded with weights_only=True)."""
    if not path.is_file():
        raise BadInput(f"{flag} {path}: file does not exist; give the path of a weights file")
    with open(path, "rb") as fh:
        head = fh.read(16)
    if len(head) >= 9 and head[8:9] == b"{":  # safetensors: u64 header length, then JSON
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            state = load_file(str(path))
        except (SafetensorError, OSError, ValueError) as exc:
            raise BadInput(f"{flag} {path}: unreadable safetensors ({str(exc).splitlines()[0]}); the file is truncated or corrupt") from None
    else:
        if _is_torchscript(path):
            raise BadInput(f"{flag} {path}: is a TorchScript archive, not a state dict; convert its tensors to the "
                           f"key layout {flag} expects (see the command's --help) and save them with safetensors")
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # pickle errors of many kinds: all mean "not a plain state dict"
            raise BadInput(f"{flag} {path}: not a safetensors or torch state-dict file ({_refusal(exc)}); "
                           "save the weights as a plain state dict (safetensors.torch.save_file)") from None
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]  # training checkpoints wrap the weights
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise BadInput(f"{flag} {path}: holds no state dict of tensors; save model.state_dict(), not the model")
    if state and all(k.startswith("module.") for k in state):  # saved from DataParallel / DDP
        state = {k[len("module."):]: v for k, v in state.items()}
    return state
