"""Occupancy metrics from confusion matrices accumulated over a whole split.

Two mIoU conventions exist in the forecasting literature and give different numbers, so both are
reported by name:
- `drop_zero` (GenieDrive, I²-World `occ_metrics.py`): mean IoU over classes 0..16 (free
  excluded), leaving out every class whose IoU is exactly 0, whether it was never seen or always
  missed.
- `unseen_one` (OccWorld, DOME): mean over classes 0..16 where a class absent from both prediction
  and ground truth counts IoU 1; a class present but always missed counts 0.
IoU is the binary occupied (label != 17) vs free IoU.
"""

from __future__ import annotations

import numpy as np
import torch

NUM_CLASSES = 18
FREE = 17
CONVENTIONS = ("drop_zero", "unseen_one")


def confusion_matrix(pred: torch.Tensor | np.ndarray, gt: torch.Tensor | np.ndarray, num_classes: int = NUM_CLASSES) -> np.ndarray:
    """[num_classes, num_classes] int64 counts, rows = ground truth, columns = prediction."""
    # np.array copies read-only memmap views, which torch would otherwise warn about.
    p, g = (torch.as_tensor(np.array(a) if isinstance(a, np.ndarray) else a).reshape(-1).long() for a in (pred, gt))
    cm = torch.bincount(g * num_classes + p, minlength=num_classes * num_classes)
    return cm.view(num_classes, num_classes).cpu().numpy().astype(np.int64)


def class_iou(cm: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-class IoU (NaN where the class is in neither prediction nor ground truth) and support."""
    cm = np.asarray(cm, dtype=np.float64)
    tp = np.diag(cm)
    union = cm.sum(0) + cm.sum(1) - tp
    with np.errstate(invalid="ignore", divide="ignore"):
        iou = np.where(union > 0, tp / np.maximum(union, 1), np.nan)
    return iou, union


def miou(cm: np.ndarray, convention: str) -> float:
    """mIoU in percent over classes 0..16 under a named convention."""
    iou, _ = class_iou(cm)
    iou = iou[:FREE]
    if convention == "drop_zero":
        keep = np.nan_to_num(iou, nan=0.0) > 0
        return float(100.0 * iou[keep].mean()) if keep.any() else 0.0
    if convention == "unseen_one":
        return float(100.0 * np.nan_to_num(iou, nan=1.0).mean())
    raise ValueError(f"unknown mIoU convention '{convention}'; use one of {CONVENTIONS}")


def geometry_iou(cm: np.ndarray) -> float:
    """Binary occupied-vs-free IoU in percent from an 18-class confusion matrix."""
    cm = np.asarray(cm, dtype=np.float64)
    occ = np.arange(cm.shape[0]) != FREE
    tp = cm[np.ix_(occ, occ)].sum()
    fp = cm[np.ix_(~occ, occ)].sum()
    fn = cm[np.ix_(occ, ~occ)].sum()
    return float(100.0 * tp / (tp + fp + fn)) if tp + fp + fn > 0 else 0.0


def summarise(cm: np.ndarray) -> dict[str, float]:
    return {"miou_drop_zero": miou(cm, "drop_zero"), "miou_unseen_one": miou(cm, "unseen_one"),
            "iou": geometry_iou(cm)}
