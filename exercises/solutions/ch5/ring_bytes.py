"""Exercise 5.4, a worked solution.

One all_reduce per step, of ByHand's flat buffer: the P = 4,192 gradients and one slot for the
step's loss, 4,193 float32 numbers of 4 bytes. A ring of N ranks cuts it into N chunks; each rank
sends N - 1 chunks in the reduce-scatter and N - 1 in the all-gather, and at every one of those
2(N - 1) steps the N ranks together send each of the N chunks once: the whole buffer. So all N
ranks send 2(N - 1) buffers in all, 2(N - 1)/N of the buffer each.
"""

RING_BYTES_PER_STEP_AT_FOUR_RANKS = 2 * (4 - 1) * (4192 + 1) * 4  # 2(N - 1) buffers of P + 1 float32s

if __name__ == "__main__":
    print(f"your prediction: {RING_BYTES_PER_STEP_AT_FOUR_RANKS}; python exercises/check.py 5.4 checks it")
