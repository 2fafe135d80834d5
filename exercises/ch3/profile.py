"""Exercise 3.3 -- read a profile: which op costs a step the most?

Chapter 3's "One step, op by op" profiles this chapter's training step on a CPU
(`3_pytorch/profile_cpu.json`, drawn in `3_pytorch/profile.png`). Predict, from the picture
or from what the chapter says about where the time goes, which single op has the largest
self time per step -- its name as the profiler writes it, e.g. "aten::mm" -- and write it
below. Then:

    python exercises/check.py 3.3

The check reads the file and prints the answer, the op's share of the step, and how much of
that op's time its arithmetic would take.
"""

MOST_EXPENSIVE_OP = None  # your answer, a string
