"""Exercise 4.4 -- predict the launches of a step.

At SPEC.md's one layer a training step of chapter 4 is 29 kernel launches: 12 forward, 16
backward, 1 Adam. How many at three layers (`--n-layer 3`, one name per step)? Work it out from
what one layer adds (chapter 4's README and `kernels/__init__.py` list the kernels per layer),
write the number below, then:

    python exercises/check.py 4.4

The check counts the launches of a real three-layer step through the interpreter.
"""

LAUNCHES_AT_THREE_LAYERS = None  # your number
