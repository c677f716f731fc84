"""Absolute (camera-frame) error and root-relative poses (issue 10 item 7): hand-computed."""
from __future__ import annotations

import numpy as np
import pytest

from pose_ros.core import metrics


def test_absolute_error_hand_case():
    gt = np.array([[0.0, 0, 4], [0.3, 0, 4], [0, 1, 4]])
    pred = gt + [[0, 0, 0.3], [0.4, 0, 0.3], [np.nan, np.nan, np.nan]]  # 0.3, 0.5, not placed
    assert metrics.absolute_error(pred, gt) == pytest.approx(0.4)
    assert metrics.absolute_error(pred, gt, visible=[[False, True, True]]) == pytest.approx(0.5)
    assert np.isnan(metrics.absolute_error(pred[2:], gt[2:]))


def test_root_relative_removes_a_translation_not_a_scale():
    gt = np.array([[0.0, 0, 4], [0.2, 0, 4], [0.1, -0.5, 4]])
    pred = gt * 0.9  # placed 10 % near and 10 % small: absolute error 0.4 m-ish, rel. small
    rel = metrics.root_relative(pred, [0, 1])
    np.testing.assert_allclose(rel[0, 2], [0.0, -0.45, 0.0])
    np.testing.assert_allclose(metrics.root_relative(gt, 2)[0, 2], 0.0)
    # hand: gt root-relative [(-.1,0,0),(.1,0,0),(0,-.5,0)], pred = 0.9 x that
    assert metrics.mpjpe(rel, metrics.root_relative(gt, [0, 1])) == pytest.approx((0.01 + 0.01 + 0.05) / 3)
    assert metrics.absolute_error(pred, gt) == pytest.approx(np.linalg.norm(gt * 0.1, axis=1).mean())
