"""Exercise 2.2 -- the backward pass of softmax with cross-entropy, over a padded batch.

The loss is the mean of -log softmax(logits)[target] over the real positions of the batch
(`real` is True where a name has a target; padding adds nothing). Return dL/dlogits.

    python exercises/check.py 2.2

Shapes: logits (B, T, V), targets (B, T) ints, real (B, T) bools.
Hints:
- For one position, d(-log p_y)/dz_j = p_j - [j = y].
- A mean over n real positions divides by n, not by B * T; padding gets exactly 0.
"""

import numpy as np  # noqa: F401  (you will need it)


def cross_entropy_backward(logits, targets, real):
    """dL/dlogits (B, T, V) of the mean cross-entropy over the real positions."""
    raise NotImplementedError("write the backward of softmax with cross-entropy")
