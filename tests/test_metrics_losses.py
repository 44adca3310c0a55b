"""Occupancy metrics against hand-computed confusion matrices, and the training losses."""

import numpy as np
import pytest
import torch

from geniedrive.pipelines.metrics.occupancy import confusion_matrix, geometry_iou, miou, summarise
from geniedrive.pipelines.occworld.losses import lovasz_softmax, rotation_loss, trajectory_loss


def _cm(entries):
    cm = np.zeros((18, 18), np.int64)
    for (g, p), n in entries.items():
        cm[g, p] = n
    return cm


def test_confusion_matrix_counts():
    gt = torch.tensor([0, 0, 4, 4, 17, 17])
    pred = torch.tensor([0, 4, 4, 4, 17, 4])
    cm = confusion_matrix(pred, gt)
    assert cm[0, 0] == 1 and cm[0, 4] == 1 and cm[4, 4] == 2 and cm[17, 17] == 1 and cm[17, 4] == 1
    assert cm.sum() == 6


def test_both_miou_conventions_by_hand():
    # car (4): TP 6, FN 2 (as free), FP 2 (free predicted car) -> IoU 6/10.
    # sidewalk (13): TP 3, FP 1 (from terrain) -> IoU 3/4.
    # terrain (14): present in GT (1 voxel) but always missed -> IoU 0.
    # every other class 0..16 never seen -> undefined.
    cm = _cm({(4, 4): 6, (4, 17): 2, (17, 4): 2, (13, 13): 3, (14, 13): 1, (17, 17): 100})
    # drop_zero: mean of the non-zero IoUs {0.6, 0.75}; the missed and the unseen are dropped.
    assert miou(cm, "drop_zero") == pytest.approx(100 * (0.6 + 0.75) / 2)
    # unseen_one: 14 unseen classes count 1, terrain counts 0: (0.6 + 0.75 + 0 + 14) / 17.
    assert miou(cm, "unseen_one") == pytest.approx(100 * (0.6 + 0.75 + 0.0 + 14) / 17)
    # Geometry: occupied TP = 6 + 3 + 1 = 10, FP = 2, FN = 2 -> 10/14.
    assert geometry_iou(cm) == pytest.approx(100 * 10 / 14)


def test_iou_zero_case_differs_between_conventions():
    cm = _cm({(4, 10): 5, (17, 17): 10})  # car always predicted as truck
    assert miou(cm, "drop_zero") == 0.0  # car 0 and truck 0 are both dropped: nothing left
    assert miou(cm, "unseen_one") == pytest.approx(100 * 15 / 17)  # 15 unseen at 1, car 0, truck 0
    assert geometry_iou(cm) == 100.0  # occupied where occupied
    perfect = _cm({(c, c): 3 for c in range(18)})
    s = summarise(perfect)
    assert s["miou_drop_zero"] == s["miou_unseen_one"] == s["iou"] == 100.0


def test_lovasz_by_hand_and_perfect_prediction():
    # Two voxels, class 0 true on the first: errors [0.4, 0.2] -> loss 0.4 for class 0; only
    # class 0 and 1 are present.
    probs = torch.tensor([[0.6, 0.4], [0.2, 0.8]]).T.reshape(1, 2, 2)  # [B=1, C=2, P=2]
    labels = torch.tensor([[0, 1]])
    # class 0: fg [1, 0], p [0.6, 0.2] -> errors [0.4, 0.2] -> grad [1, 0] -> 0.4
    # class 1: fg [0, 1], p [0.4, 0.8] -> errors [0.4, 0.2] sorted, fg_sorted [0, 1]
    #   intersection [1, 0], union [2, 2] -> jaccard [0.5, 1] -> grad [0.5, 0.5] -> 0.3
    assert lovasz_softmax(probs, labels).item() == pytest.approx((0.4 + 0.3) / 2)
    onehot = torch.nn.functional.one_hot(torch.tensor([[0, 1, 1, 2]]), 3).permute(0, 2, 1).float()
    assert lovasz_softmax(onehot, torch.tensor([[0, 1, 1, 2]])).item() == pytest.approx(0.0)
    assert lovasz_softmax(probs, labels, ignore=1).item() == pytest.approx(0.4)


def test_trajectory_and_rotation_losses_by_hand():
    pred = torch.tensor([[[1.0, 0.0], [1.0, 0.0]]])
    gt = torch.tensor([[[1.0, 0.0], [1.0, 1.0]]])
    valid = torch.tensor([[True, True]])
    # cumulative error: step 1: 0; step 2: (0, -1) -> 1 * 0.85; mean over 2 steps
    assert trajectory_loss(pred, gt, valid).item() == pytest.approx(0.85 / 2)
    assert trajectory_loss(pred, gt, torch.tensor([[True, False]])).item() == 0.0
    q = torch.tensor([[[1.0, 0, 0, 0], [0.0, 0, 0, 1]]])
    assert rotation_loss(q, q).item() == pytest.approx(0.0)
    assert rotation_loss(q, -q).item() == pytest.approx(0.0)  # q and -q are one rotation
    assert rotation_loss(q, torch.tensor([[[1.0, 0, 0, 0], [1.0, 0, 0, 0]]])).item() == pytest.approx(1.0)
