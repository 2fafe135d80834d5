"""Our Triton kernels for every op of microgpt's training step, one file per op family.

Each file reads in the order of the Triton tutorials: a naive PyTorch reference (and what
its memory traffic is), the forward kernel, the backward kernel with its derivation above
it, the launcher, a `torch.autograd.Function`, and a benchmark.

Shapes: activations are (T, C) buffers whose T rows are padded to a power of two (the
padded rows hold finite filler and receive zero gradient); the number of real rows `n` is
read from device memory, so one compiled kernel, and one captured CUDA graph, serves every
document length.

Weights are views of one flat parameter buffer and their gradients views of one flat
gradient buffer. Each backward kernel *writes* its weight's gradient straight into that
buffer (every weight is used once per step, so there is nothing to add to) and hands
autograd `None` for it -- the "gradient accumulation fusion" of Megatron-LM -- so Adam can
update all 4,192 parameters in one launch with no copies.
"""
