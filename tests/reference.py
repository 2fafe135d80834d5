"""The SPEC.md model written once more, plainly, in PyTorch float64: the yardstick for every stage.

It is deliberately the explicit textbook form (whole sequence at once, a causal mask,
F.cross_entropy) and shares no code with any stage.
"""

import math

import torch
import torch.nn.functional as F

from shared.weights import GPTConfig


def rmsnorm(x, eps=1e-5):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps)


def causal_attention(qkv, n_head):
    """Causal multi-head attention of stacked projections (..., T, 3C) -> (..., T, C), every
    leading dimension a document: the reference the stages' attention ops are held to."""
    T, C = qkv.shape[-2], qkv.shape[-1] // 3
    lead = qkv.shape[:-2]
    q, k, v = (t.reshape(*lead, T, n_head, C // n_head).transpose(-3, -2) for t in qkv.split(C, dim=-1))
    y = F.scaled_dot_product_attention(q, k, v, is_causal=True)  # (..., H, T, D)
    return y.transpose(-3, -2).reshape(*lead, T, C)


def loss_and_grads(state: dict, batch: list[list[int]], config: GPTConfig):
    """(loss, {name: gradient as a float64 tensor}) for a batch of documents from weights `state`:
    the mean next-token cross-entropy over every position of every document (SPEC.md), each
    document run on its own, without padding."""
    params = {name: torch.tensor(w, dtype=torch.float64, requires_grad=True) for name, w in state.items()}
    H, D = config.n_head, config.head_dim
    total, count = 0.0, 0
    for tokens in batch:
        n = min(config.block_size, len(tokens) - 1)
        inputs, targets = torch.tensor(tokens[:n]), torch.tensor(tokens[1:n + 1])
        x = rmsnorm(params["wte"][inputs] + params["wpe"][:n])  # (T, C)
        mask = torch.ones(n, n, dtype=torch.bool).tril()
        for li in range(config.n_layer):
            p = {k.split(".", 1)[1]: v for k, v in params.items() if k.startswith(f"layer{li}.")}
            h = rmsnorm(x)
            q, k, v = (
                (h @ p[name].T).view(n, H, D).transpose(0, 1) for name in ("attn_wq", "attn_wk", "attn_wv")
            )  # (H, T, D)
            scores = (q @ k.transpose(1, 2) / math.sqrt(D)).masked_fill(~mask, float("-inf"))
            y = (scores.softmax(-1) @ v).transpose(0, 1).reshape(n, config.n_embd)  # (T, C)
            x = x + y @ p["attn_wo"].T
            x = x + torch.relu(rmsnorm(x) @ p["mlp_fc1"].T) @ p["mlp_fc2"].T
        total = total + F.cross_entropy(x @ params["lm_head"].T, targets, reduction="sum")
        count += n
    loss = total / count
    loss.backward()
    return loss.item(), {name: t.grad for name, t in params.items()}
