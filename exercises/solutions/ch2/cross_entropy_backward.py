"""Exercise 2.2, a worked solution.

At one position, L = -sum_j q_j log p_j with sum_j q_j = 1, so dL/dz_j = p_j - q_j: the
probabilities minus the target distribution, which is chapter 2's formula with the one-hot
replaced by q = (1 - smoothing) onehot + smoothing / V.
"""

import sys
from pathlib import Path

import numpy as np

sys.path += [str(p) for p in Path(__file__).resolve().parents if (p / "chapters.py").is_file()][:1]  # exercises/
from chapters import show


def cross_entropy_backward(logits, targets, real, smoothing):
    """dL/dlogits (B, T, V) of the mean label-smoothed cross-entropy over the real positions."""
    V = logits.shape[-1]
    e = np.exp(logits - logits.max(axis=-1, keepdims=True))
    d_logits = e / e.sum(axis=-1, keepdims=True)  # softmax
    d_logits -= smoothing / V  # minus the target distribution: its even share ...
    docs, rows = np.indices(targets.shape)
    d_logits[docs, rows, targets] -= 1.0 - smoothing  # ... and the target's own
    d_logits[~real] = 0.0  # padding: no gradient
    return d_logits / real.sum()  # the mean over real positions


if __name__ == "__main__":
    logits = np.array([[[2.0, 0.0, -1.0], [0.5, 0.5, 0.5]], [[0.0, 1.0, 0.0], [9.0, 9.0, 9.0]]])  # (2, 2, 3)
    targets = np.array([[0, 2], [1, 0]])
    real = np.array([[True, True], [True, False]])  # the second name has one position, then padding
    show(cross_entropy_backward, logits, targets, real, 0.1)
