"""Exercise 3.3, a worked solution.

A linear layer from n_in to n_out on n positions is one matmul forward, (n, n_in) @ (n_in, n_out):
n x n_out sums of n_in multiply-adds, 2 n n_in n_out FLOPs. Its backward is two matmuls of the same
size, dL/dx = g W and dL/dW = g^T x, so the layer costs 6 n n_in n_out in all. A block has four:
attn_wqkv 16 -> 48 (q, k and v stacked), attn_wo 16 -> 16, mlp_fc1 16 -> 64 and mlp_fc2 64 -> 16,
so n_in n_out adds up to 768 + 256 + 1,024 + 1,024 = 3,072 per block; the lm_head, 16 -> 27, adds
432. Attention's own products (q k^T and P v) run inside F.scaled_dot_product_attention, not
aten::mm, and Adam multiplies no matrices. "emma" is [BOS, e, m, m, a, BOS]: 5 positions, each
predicting the next token. At two layers: 6 x 5 x (2 x 3,072 + 432) = 197,280.
"""

MATMUL_FLOPS_AT_TWO_LAYERS = 197_280  # your number

if __name__ == "__main__":
    print(f"your prediction: {MATMUL_FLOPS_AT_TWO_LAYERS}; python exercises/check.py 3.3 checks it")
