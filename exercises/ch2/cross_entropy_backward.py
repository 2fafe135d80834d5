"""Exercise 2.2 -- the backward pass of cross-entropy with label smoothing, over a padded batch.

Chapter 2's loss pushes the probability of each target letter towards 1. Label smoothing
(used to train many large models) aims lower: the target distribution puts 1 - smoothing on
the target letter and spreads `smoothing` evenly over all V letters, the target included,
and the loss at a position is -sum_j q_j log softmax(logits)_j. Over a batch the loss is the
mean over its real positions (`real` is True where a name has a target; padding adds
nothing). Return dL/dlogits. Chapter 2's README derives the gradient without smoothing
('Backpropagation through arrays', softmax with cross-entropy): derive this one on paper from
there, then write it.

Shapes: logits (B, T, V), targets (B, T) integers (garbage on the padding), real (B, T)
booleans, smoothing a float in [0, 1) -> dL/dlogits (B, T, V).

    python exercises/ch2/cross_entropy_backward.py   # try yours on a batch of two names
    python exercises/check.py 2.2                    # check it on many padded batches
    python exercises/check.py 2.2 --hint             # a hint (three, one at a time)
"""

import sys
from pathlib import Path

import numpy as np

sys.path += [str(p) for p in Path(__file__).resolve().parents if (p / "chapters.py").is_file()][:1]  # exercises/
from chapters import show


def cross_entropy_backward(logits, targets, real, smoothing):
    """dL/dlogits (B, T, V) of the mean label-smoothed cross-entropy over the real positions."""
    raise NotImplementedError("write the backward of cross-entropy with label smoothing")


if __name__ == "__main__":
    logits = np.array([[[2.0, 0.0, -1.0], [0.5, 0.5, 0.5]], [[0.0, 1.0, 0.0], [9.0, 9.0, 9.0]]])  # (2, 2, 3)
    targets = np.array([[0, 2], [1, 0]])
    real = np.array([[True, True], [True, False]])  # the second name has one position, then padding
    show(cross_entropy_backward, logits, targets, real, 0.1)
