"""Exercise 3.3, a worked solution.

A linear layer is one matmul forward (y = x W^T) and two backward (dL/dx = g W, dL/dW = g^T x).
A block has four linear layers: attn_wqkv (q, k and v stacked in one matrix), attn_wo, mlp_fc1
and mlp_fc2; the lm_head is one more, outside the blocks. Attention's own products (q k^T and
P v) run inside F.scaled_dot_product_attention, which is not aten::mm, and Adam multiplies no
matrices. At two layers: 3 x (4 x 2 + 1) = 27.
"""

MATMULS_AT_TWO_LAYERS = 27  # your number

if __name__ == "__main__":
    print(f"your prediction: {MATMULS_AT_TWO_LAYERS}; python exercises/check.py 3.3 checks it")
