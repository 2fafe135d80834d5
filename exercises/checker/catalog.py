"""The exercises: number, file, title, kind, and the hints, in the order a learner asks for them.

Hints climb: the first names the idea and the chapter section that teaches it, the second
the shapes (or what to count), the third one formula. None is the whole answer: the answer is
what the learner writes. This module imports nothing heavy, so `check.py --hint` is instant.
"""

from dataclasses import dataclass


@dataclass(frozen=True)
class Exercise:
    number: str
    file: str  # under exercises/ (the stub) and exercises/solutions/ (a worked solution)
    title: str
    kind: str  # "write": code, checked on many cases; "predict": a number, judged too high or too low
    hints: tuple[str, str, str]

    @property
    def chapter(self) -> str:
        return self.number.split(".")[0]

    @property
    def check_function(self) -> str:
        """The name of its check in checker/chapter<N>.py: check_ and the file's stem."""
        return "check_" + self.file.split("/")[-1].removesuffix(".py")


# The chapters each chapter's checks load (an answer's process has them loaded before it starts).
STAGES = {"1": ["1_pure_python"], "2": ["2_numpy"], "3": ["2_numpy", "3_pytorch"], "4": ["4_triton"],
          "5": ["3_pytorch", "5_distributed"]}

CH1, CH2, CH3, CH4, CH5 = ("1_pure_python/README.md", "2_numpy/README.md", "3_pytorch/README.md",
                           "4_triton/README.md", "5_distributed/README.md")

EXERCISES = [
    Exercise("1.1", "ch1/tanh.py", "tanh as a new Value op: its value and its local derivative, one node", "write", (
        f"The idea: a primitive op stores, beside its result, the derivative of the result with respect to each "
        f"input. Read `Value.exp` in 1_pure_python/main.py, and {CH1}, 'How the engine works'.",
        "The shapes: one Value in, one Value out. `children` is a tuple holding the input; `local_grads` a tuple "
        "of the same length holding one float each.",
        "One formula: d tanh(x)/dx = 1 - tanh(x)^2. Which number goes into it: the input, or the output?")),
    Exercise("1.2", "ch1/backprop_by_hand.py", "backpropagation by hand: three gradients of a small graph", "predict", (
        f"The idea: start at L with dL/dL = 1 and walk backwards, multiplying local derivatives; a value that "
        f"reaches L by two paths gets the sum of both. {CH1}, 'Backpropagation, by hand'.",
        "What to write down: dL/dv first, then dL/du and dL/dc from it, then dL/db, and dL/da last, since a is "
        "used twice.",
        "One formula: for L = v * a, dL/dv = a and dL/da (the direct path only) = v.")),
    Exercise("1.3", "ch1/adam.py", "one Adam step, with its bias correction", "write", (
        f"The idea: Adam keeps two running averages per parameter, of the gradient and of its square, and steps "
        f"by their ratio. {CH1}, 'Adam: what the gradients are used for'.",
        "The shapes: everything is a plain float; `step` counts from 0; return the tuple (p, m, v).",
        "One formula: both averages start at 0, so early on they are too small by the factor an average of a "
        "constant gradient would be (sum the weights beta gives the steps so far: a geometric series); which power "
        "of beta, when step counts from 0 and this step counts too?")),
    Exercise("1.4", "ch1/rmsnorm.py", "rmsnorm out of Values", "write", (
        f"The idea: build rmsnorm from Value operations only, and backward differentiates it for free. "
        f"{CH1}, 'The model: microgpt's forward pass' (the rmsnorm box).",
        "The shapes: a list of C Values in, a list of C Values out; the mean of the squares is one Value.",
        "One formula: rmsnorm(x)_i = x_i / sqrt(mean_j(x_j^2) + eps). Which of Value's ops gives a square root, or "
        "one over it?")),
    Exercise("2.1", "ch2/rmsnorm_backward.py", "rmsnorm's backward with a gain, on arrays", "write", (
        f"The idea: with n = x r the normalized rows, y = w n; first find dL/dn, then go through the "
        f"normalization as chapter 2 does, and sum dL/dw over every row that used w, as the linear layer does "
        f"for its weight. {CH2}, 'Backpropagation through arrays' (rmsnorm, and the linear layer).",
        "The shapes: g and x are (B, T, C), w is (C,) and so is dL/dw; the per-row sum runs over the last axis "
        "and must keep it (keepdims=True) to broadcast back.",
        "One formula: dL/dn = g w, and without the gain chapter 2's rmsnorm backward turns dL/dn into dL/dx.")),
    Exercise("2.2", "ch2/cross_entropy_backward.py",
             "cross-entropy with label smoothing, backward, over a padded batch", "write", (
        f"The idea: the loss compares the predicted distribution with a target distribution; chapter 2's "
        f"target is one-hot, this one is smoothed. Padding has no target, so no gradient. {CH2}, "
        f"'Backpropagation through arrays' (softmax with cross-entropy).",
        "The shapes: logits (B, T, V), targets (B, T) integers, real (B, T) booleans; the answer is (B, T, V); "
        "n, the number of real positions, is one number for the whole batch.",
        "One formula: for L = -sum_j q_j log p_j with sum_j q_j = 1, dL/dz_j = p_j - q_j.")),
    Exercise("2.3", "ch2/attention_backward.py", "causal attention's backward with a learnable temperature per head",
             "write", (
        f"The idea: walk the three forward steps backwards as chapter 2 does, y = P v, then P = softmax(S), then "
        f"S = tau[h] q k^T, with tau[h] where the chapter has 1/sqrt(D); then tau's own gradient: tau[h] scales "
        f"every score of head h, of every name, and each of those uses adds to it, as every row adds to a "
        f"shared weight's. {CH2}, 'Backpropagation through arrays' (causal attention, and the linear layer).",
        "The shapes: q, k, v, g are (B, H, T, D); P and its gradients (B, H, T, T); tau and dtau (H,), so "
        "dtau sums over every axis but the heads' (0, 2 and 3), and tau[None, :, None, None] broadcasts tau "
        "over the rest. A transpose of the last two axes is a.swapaxes(-1, -2).",
        "One formula: for S = tau A, with A = q k^T, dL/dA = tau dL/dS, and dL/dtau is the sum of "
        "dL/dS * A over the entries tau scales.")),
    Exercise("2.4", "ch2/padding.py", "a batch of names as rectangular arrays, with its mask", "write", (
        f"The idea: names differ in length, arrays do not: pad the short rows and say, with a mask, which "
        f"positions are real. {CH2}, 'Batches'.",
        "The shapes: three (B, T) arrays, T the largest n of the batch; inputs and targets integers, the mask "
        "booleans.",
        "One formula: a name trains n = min(block_size, len(tokens) - 1) positions (`positions` in "
        "shared/tokenizer.py); its targets are its inputs shifted by one.")),
    Exercise("3.1", "ch3/explicit_attention.py", "attention from basic ops, equal to F.scaled_dot_product_attention",
             "write", (
        f"The idea: SDPA is four steps in one op: scores, causal mask, softmax, weighted sum. Chapter 2 wrote them "
        f"in NumPy (`causal_attention` in 2_numpy/main.py); {CH3}, 'Reading the diff'.",
        "The shapes: q, k, v are (B, H, T, D); the scores (B, H, T, T); the result (B, H, T, D).",
        "One formula: scores = q k^T / sqrt(D), and position i may look at j only when j <= i.")),
    Exercise("3.2", "ch3/rmsnorm_function.py", "rmsnorm as a torch.autograd.Function with a hand-written backward",
             "write", (
        f"The idea: forward computes y and saves what backward will need; backward turns dL/dy into dL/dx. "
        f"{CH4}, 'The kernels' (each wraps its kernels in one), and your exercise 2.1.",
        "The shapes: x is (..., C); `ctx.save_for_backward(...)` keeps tensors, `ctx.saved_tensors` gives them "
        "back; backward returns one tensor shaped like x.",
        "One formula: exercise 2.1's dL/dx with the gain w = 1, the mean over the last dimension.")),
    Exercise("3.3", "ch3/matmul_flops.py", "predict the FLOPs of a two-layer step's matrix multiplies", "predict", (
        f"The idea: a linear layer runs one matmul forward, and its backward two of the same size: one for dL/dx, "
        f"one for dL/dW. A matmul (m, k) @ (k, n) is m x n sums of k multiply-adds, and a multiply-add counts 2. "
        f"{CH3}, 'One step, op by op', and 2_numpy/README.md, 'Backpropagation through arrays' (the linear layer).",
        "What to count: the positions of \"emma\" (chapter 1's README, 'The task: predict the next letter'), the "
        "linear layers of one block and the one outside the blocks with their shapes (SPEC.md's table; q, k and v "
        "are one matrix here), and two blocks. Attention's own products run inside SDPA, which is not aten::mm.",
        "One formula: a linear layer from n_in to n_out on n positions is 6 n n_in n_out FLOPs, forward and "
        "backward.")),
    Exercise("3.4", "ch3/ignore_index.py", "padded targets with ignore_index", "write", (
        f"The idea: F.cross_entropy leaves out every target equal to its ignore_index (its documentation gives the "
        f"default), so padding can be a target that is never counted. {CH3}, 'Reading the diff'.",
        "The shapes: two (B, T) tensors of dtype torch.long, T the largest n of the batch.",
        "One formula: the two tensors are padded differently: a target the loss skips, and an input the embedding "
        "can look up (a real token id; what a padded input predicts is never counted).")),
    Exercise("4.1", "ch4/add_block.py", "a first kernel: load a block, add, store it", "write", (
        f"The idea: one program handles BLOCK numbers at once: a block of offsets makes a block of pointers, "
        f"loaded and stored in one go. {CH4}, 'Writing a first kernel'.",
        "The shapes: tl.arange(0, BLOCK) is the block of offsets 0..BLOCK-1; x_ptr + offsets is BLOCK pointers; "
        "tl.load of them is BLOCK numbers.",
        "One formula: the element i of x is at x_ptr + i.")),
    Exercise("4.2", "ch4/masked_tail.py", "a masked tail: y = a x + b for any length", "write", (
        f"The idea: N is not a multiple of BLOCK, so the last program's block runs past the end; a mask turns "
        f"those lanes off. {CH4}, 'Writing a first kernel'.",
        "The shapes: program i handles offsets i*BLOCK .. i*BLOCK + BLOCK - 1; the launcher starts "
        "cdiv(N, BLOCK) programs.",
        "One formula: which lanes are real? The last block's offsets run past N - 1; tl.load and tl.store each "
        "take mask=, one boolean per lane, and a lane whose mask is False touches no memory.")),
    Exercise("4.3", "ch4/transpose_tile.py", "a 2-D tile: the transpose of a matrix", "write", (
        f"The idea: a program of a 2-D grid owns a BLOCK_M x BLOCK_N tile; a column of row indices and a row of "
        f"column indices broadcast into a tile of pointers. {CH4}, 'A 2-D tile: strides'.",
        "The shapes: rows (BLOCK_M,) and cols (BLOCK_N,); rows[:, None] and cols[None, :] broadcast to "
        "(BLOCK_M, BLOCK_N). x is (M, N) and y is (N, M), both row-major.",
        "One formula: in a row-major (R, S) matrix, element (i, j) is at offset i * S + j.")),
    Exercise("4.4", "ch4/row_softmax.py", "a reduction over a row: softmax, one program per row", "write", (
        f"The idea: one program per row; a row's max and its sum are reductions over the block (tl.max, "
        f"tl.sum). {CH4}, 'A reduction over a row: rmsnorm forward'.",
        "The shapes: a row of C numbers in a block of BLOCK_C, the next power of two; the padding lanes must "
        "change neither the max nor the sum.",
        "One formula: softmax(x) = exp(x - max(x)) / sum(exp(x - max(x))), and exp(-inf) = 0.")),
    Exercise("4.5", "ch4/softmax_backward.py", "a backward kernel: softmax's, one program per row", "write", (
        f"The idea: derive it on paper first. y_i depends on every x_j of its row, so dx_j is a sum over the row; "
        f"2_numpy/README.md, 'Backpropagation through arrays' (the softmax line), then {CH4}, "
        f"'A backward kernel: rmsnorm backward', for the kernel's shape.",
        "The shapes: y and g are rows of C numbers in a block of BLOCK_C; the sum over the row is one tl.sum, a "
        "single number that broadcasts back over the block; padding lanes must add nothing to it.",
        "One formula: dy_i/dx_j = y_i ([i == j] - y_j), and dx_j = sum_i g_i dy_i/dx_j.")),
    Exercise("4.6", "ch4/adam_kernel.py", "Adam as one Triton kernel over a flat buffer", "write", (
        f"The idea: each parameter's update is independent of the others, so all 4,192 are one 1-D launch, as in "
        f"4.2. {CH4}, 'The kernels' (adam.py), and chapter 1's Adam.",
        "The shapes: p, g, m and v are flat buffers of N numbers; m and v must be stored back, for the next "
        "step.",
        "One formula: chapter 1's Adam (your 1.3) on a block: the launcher has computed lr_t, bias1 and bias2, one "
        "number each; m and v are updated first, and p's step uses both, each divided by its bias correction.")),
    Exercise("4.7", "ch4/relu_epilogue.py", "a tl.dot matmul with its ReLU as the epilogue", "write", (
        f"The idea: a tile of y needs a block of rows of x and a block of rows of W, summed over K a chunk at a "
        f"time; the ReLU goes on the finished tile, before its one store. {CH4}, 'The kernels' (linear.py).",
        "The shapes: an x tile (BLOCK_M, BLOCK_K), a W tile (BLOCK_N, BLOCK_K), the accumulator (BLOCK_M, "
        "BLOCK_N) in float32; tl.dot(a, b) takes a (M, K) and b (K, N).",
        "One formula: each chunk of K adds one tile product into acc; tl.dot(a, b) wants b as (K, N) and W's tile "
        "is (N, K), so it is transposed first (tl.trans); and ask tl.dot for exact float32, as chapter 4's "
        "linear.py does, or a GPU multiplies in TF32.")),
    Exercise("4.8", "ch4/launches.py", "predict the launches of a three-layer step on a batch of 17 names",
             "predict", (
        f"The idea: some kernels run once per layer, others once per step, whatever the depth; and a weight "
        f"gradient that sums over more rows than one program takes is summed in parts, which one more launch "
        f"adds in order. {CH4}, 'Why launch overhead is the whole story', 'The kernels' and 'Batches'.",
        "What to count: the launches of a one-layer step on one name, sorted into per-layer and once-per-step; "
        "then the rows of a batch of 17 (how long is every document in a kernel's buffers?), and which weight "
        "gradients are sums over the rows.",
        "One formula: launches = a + b L for one name; a split batch adds one launch per weight gradient that "
        "sums over the rows, c L + d of them.")),
    Exercise("5.1", "ch5/ring_all_reduce.py", "the ring all-reduce, written with send and recv", "write", (
        f"The idea: cut the buffer into N chunks; in the reduce-scatter each chunk travels once around the ring, "
        f"each rank adding its own part as it passes, so after N - 1 steps every rank holds one finished chunk; "
        f"the all-gather passes the finished chunks on, N - 1 more steps, copying. {CH5}, 'The ring all-reduce'.",
        "What to send: at step s of the reduce-scatter rank r sends chunk (r - s) % N to rank (r + 1) % N and adds "
        "chunk (r - s - 1) % N from rank (r - 1) % N into its own; after it, rank r's chunk (r + 1) % N is "
        "finished. buffer.tensor_split(N) gives views: writing into one writes the buffer.",
        "One rule for gloo: dist.send returns only once the receiver has taken the message, so if every rank sends "
        "first, every rank waits. Start both at once, a = dist.isend(chunk, next); b = dist.irecv(space, previous); "
        "then a.wait() and b.wait().")),
    Exercise("5.2", "ch5/loss_weights.py", "the weight of each share's loss, when the shares are unequal",
             "write", (
        f"The idea: the step's loss is a mean over the step's target positions, and a share's mean loss is a mean "
        f"over its own; a mean times its count is a sum, and sums add. {CH5}, 'One step over two processes, on "
        f"paper' and 'The classic bug: the mean of the means'.",
        "What to count: the real target positions of each micro-batch (not the names: a long name has more; not "
        "the padding, -100), and the positions of the whole step, which no rank sees alone.",
        "One formula: weight = positions of the micro-batch / positions of the step, and the step's count is the "
        "sum over the ranks of each rank's count: one dist.all_reduce of one number.")),
    Exercise("5.3", "ch5/zero_step.py", "one ZeRO step: reduce-scatter, Adam on a shard, all-gather", "write", (
        f"The idea: Adam is elementwise, so each rank can update 1/N of the weights with 1/N of the moments, if it "
        f"has the summed gradients of that shard; then the ranks swap their new shards. {CH5}, 'ZeRO: Adam's "
        f"memory split over the ranks', and `ZeroByHand` in 5_distributed/main.py.",
        "The shapes: the summed gradient of this rank's shard is (S,), like m and v; the new shard is (S,); the "
        "all-gather writes every rank's new shard, in rank order, into the (N * S,) weights.",
        "One formula: chapter 1's Adam (your 1.3) on the shard, m and v updated in place (m.mul_(beta1).add_(...)), "
        "bias corrections 1 - beta^(step + 1); the sum, not the mean: chapter 5's gradients are already weighted "
        "(5.2).")),
    Exercise("5.4", "ch5/ring_bytes.py", "predict the bytes a ring all-reduce sends in one step on four ranks",
             "predict", (
        f"The idea: one all_reduce per step, of ByHand's flat buffer; a ring sends, in all, the same whole buffer "
        f"once at every one of its steps. {CH5}, 'The code: data parallelism by hand' and 'The ring all-reduce'.",
        "What to count: the numbers in ByHand's buffer (what does it carry beside the 4,192 gradients?), the "
        "bytes of one float32, and the steps of a ring of four, in both phases.",
        "One formula: bytes in all = (steps of the ring) x (bytes of the buffer), with 2(N - 1) steps: each rank "
        "sends 2(N - 1)/N of the buffer.")),
]

BY_NUMBER = {e.number: e for e in EXERCISES}
