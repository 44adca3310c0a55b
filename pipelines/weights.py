"""Weights given to gdrive are input like any other: a state dict must fit the model it is loaded
into (every key, shape and dtype) and hold finite numbers, or loading stops with exit 2 naming the
file. A model whose weights are NaN would otherwise forecast garbage and report success."""

from __future__ import annotations

from typing import Mapping

import torch

from pipelines.errors import BadInput


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
