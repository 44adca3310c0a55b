"""Training losses: Lovász-softmax, class-weighted CE, trajectory and rotation losses."""

from __future__ import annotations

import torch
import torch.nn.functional as F

# The official end-to-end class weights (18 classes, free last).
CLASS_WEIGHTS = (0.0727, 0.0692, 0.0838, 0.0681, 0.0601, 0.0741, 0.0823, 0.0688, 0.0773, 0.0681,
                 0.0641, 0.0527, 0.0655, 0.0563, 0.0558, 0.0541, 0.0538, 0.0468)
# β weights per future step for the latent MSE and the trajectory loss.
BETA = (1.0, 0.85, 0.7, 0.55, 0.4, 0.25, 0.1, 0.05)


def step_weights(steps: int) -> tuple[float, ...]:
    """β for `steps` future frames: the official eight, the last one held for longer horizons
    (`--future` above 8), so far steps keep the official smallest weight rather than none."""
    return BETA[:steps] + (BETA[-1],) * max(0, steps - len(BETA))


def lovasz_grad(gt_sorted: torch.Tensor) -> torch.Tensor:
    """Gradient of the Lovász extension of the Jaccard loss w.r.t. sorted errors ([P] -> [P])."""
    gts = gt_sorted.sum()
    intersection = gts - gt_sorted.cumsum(0)
    union = gts + (1.0 - gt_sorted).cumsum(0)
    jaccard = 1.0 - intersection / union
    if gt_sorted.numel() > 1:
        jaccard[1:] = jaccard[1:] - jaccard[:-1]
    return jaccard


def lovasz_softmax(probs: torch.Tensor, labels: torch.Tensor, ignore: int | None = None) -> torch.Tensor:
    """Lovász-softmax over the classes present in the batch (Berman et al. 2018).

    probs [B, C, ...] softmax probabilities; labels [B, ...] ints; `ignore` label left out.
    """
    c = probs.shape[1]
    p = probs.movedim(1, -1).reshape(-1, c)
    y = labels.reshape(-1)
    if ignore is not None:
        keep = y != ignore
        p, y = p[keep], y[keep]
    if y.numel() == 0:
        return probs.sum() * 0.0
    losses = []
    for cls in torch.unique(y):
        fg = (y == cls).to(p.dtype)
        errors = (fg - p[:, cls]).abs()
        errors_sorted, perm = torch.sort(errors, descending=True)
        losses.append(torch.dot(errors_sorted, lovasz_grad(fg[perm])))
    return torch.stack(losses).mean()


def occupancy_loss(logits: torch.Tensor, labels: torch.Tensor, class_weights: torch.Tensor | None = None,
                   ignore: int | None = None) -> dict[str, torch.Tensor]:
    """CE (optionally class-weighted) + Lovász-softmax on logits [B, 18, X, Y, Z] vs labels [B, X, Y, Z]."""
    ce = F.cross_entropy(logits, labels.long(), weight=class_weights, ignore_index=-100 if ignore is None else ignore)
    lov = lovasz_softmax(logits.softmax(1), labels.long(), ignore)
    return {"ce": ce, "lovasz": lov}


def trajectory_loss(pred_dxy: torch.Tensor, gt_dxy: torch.Tensor, valid: torch.Tensor,
                    weights=None) -> torch.Tensor:
    """Squared L2 of the cumulative Δxy per future step, β-weighted, masked, mean over steps, / batch.

    pred_dxy, gt_dxy [B, T, 2] per-step displacements; valid [B, T] bool.
    """
    t = pred_dxy.shape[1]
    w = torch.as_tensor((weights or step_weights(t))[:t], dtype=pred_dxy.dtype, device=pred_dxy.device)
    err = (pred_dxy.cumsum(1) - gt_dxy.cumsum(1)).pow(2).sum(-1)  # [B, T]
    err = err * w * valid.to(err.dtype)
    return err.mean(1).sum() / pred_dxy.shape[0]


def rotation_loss(pred_q: torch.Tensor, gt_q: torch.Tensor, valid: torch.Tensor | None = None) -> torch.Tensor:
    """Σ over steps of (1 - |<q̂, q>|), mean over the batch; quaternions [B, T, 4]."""
    d = 1.0 - (F.normalize(pred_q, dim=-1) * F.normalize(gt_q, dim=-1)).sum(-1).abs()
    if valid is not None:
        d = d * valid.to(d.dtype)
    return d.sum(1).mean()
