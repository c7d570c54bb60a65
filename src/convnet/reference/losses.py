"""Loss functions returning ``(loss, dscores)``: the softmax (cross-entropy) and the SVM.

scores (N, C) class scores, y (N,) integer labels; the loss is the mean over the batch and
``dscores`` its gradient with respect to the scores.
"""

from __future__ import annotations

import numpy as np

from ..errors import ShapeError

__all__ = ["softmax_cross_entropy", "svm_hinge"]


def _check(scores: np.ndarray, y: np.ndarray) -> np.ndarray:
    y = np.asarray(y).astype(np.int64)
    if scores.ndim != 2 or y.shape != (scores.shape[0],):
        raise ShapeError(
            f"a loss wants scores (N, C) and labels (N,), got {scores.shape} and {y.shape}"
        )
    if y.size and (y.min() < 0 or y.max() >= scores.shape[1]):
        raise ShapeError(f"labels must lie in [0, {scores.shape[1]}), got {y.min()}..{y.max()}")
    return y


def softmax_cross_entropy(scores: np.ndarray, y: np.ndarray) -> tuple[float, np.ndarray]:
    """``L = mean_i -log(exp(s[i, y_i]) / sum_j exp(s[i, j]))``; ``dL/ds = (p - onehot(y)) / N``.

    Scores are shifted by their row maximum first, which changes nothing but avoids overflow.

    >>> loss, d = softmax_cross_entropy(np.zeros((2, 10)), np.array([3, 7]))
    >>> round(loss, 4) == round(float(np.log(10)), 4)  # uniform scores: -log(1/10)
    True
    """
    y = _check(scores, y)
    n = scores.shape[0]
    shifted = scores - scores.max(axis=1, keepdims=True)
    log_z = np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    log_p = shifted - log_z
    loss = -log_p[np.arange(n), y].mean()
    dscores = np.exp(log_p)
    dscores[np.arange(n), y] -= 1
    dscores /= n
    return float(loss), dscores.astype(scores.dtype)


def svm_hinge(scores: np.ndarray, y: np.ndarray, margin: float = 1.0) -> tuple[float, np.ndarray]:
    """The multiclass SVM loss: ``L = mean_i sum_{j != y_i} max(0, s[i, j] - s[i, y_i] + margin)``.

    Gradient: each violating class j gets +1/N, the true class -(number of violators)/N.

    >>> loss, _ = svm_hinge(np.array([[3.2, 5.1, -1.7]]), np.array([0]))  # the cs231n cat
    >>> round(loss, 1)
    2.9
    """
    y = _check(scores, y)
    n = scores.shape[0]
    correct = scores[np.arange(n), y][:, None]
    margins = np.maximum(0, scores - correct + margin)
    margins[np.arange(n), y] = 0
    loss = margins.sum() / n
    d = (margins > 0).astype(scores.dtype)
    d[np.arange(n), y] = -d.sum(axis=1)
    return float(loss), d / n
