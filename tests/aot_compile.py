"""Compile every stage-4 kernel ahead of time for real NVIDIA GPUs, on any machine.

The interpreter runs kernels with NumPy and accepts things a GPU compiler rejects (tl.dot
on tiles below 16, K < 8 for float32, ...). This script runs without TRITON_INTERPRET and
asks Triton for PTX and a cubin for each kernel, with the argument types and constexpr
values the launchers use at SPEC.md's sizes and at a wider model.

    python tests/aot_compile.py 80 90     (prints one line per kernel and target)
"""

import os
import sys
from pathlib import Path

os.environ.pop("TRITON_INTERPRET", None)
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "4_triton"))

import triton  # noqa: E402
from triton.backends.compiler import GPUTarget  # noqa: E402

import fused_step  # noqa: E402
from kernels import adam, attention, cross_entropy, embedding, linear, rmsnorm  # noqa: E402

F32, I32 = "*fp32", "*i32"


def cases(C=16, T=16, V=27, H=4):
    """(name, kernel, signature, constexprs) for every launch the model makes."""
    D = C // H
    pow2 = triton.next_power_of_2
    out = [
        ("embedding_fwd", embedding.embedding_fwd_kernel,
         {"tokens_ptr": I32, "wte_ptr": F32, "wpe_ptr": F32, "x_ptr": F32, "T": "i32", "C": "i32"},
         {"BLOCK_T": pow2(T), "BLOCK_C": pow2(C)}),
        ("embedding_bwd", embedding.embedding_bwd_kernel,
         {"tokens_ptr": I32, "n_ptr": I32, "g_ptr": F32, "d_wte_ptr": F32, "d_wpe_ptr": F32,
          "T": "i32", "C": "i32", "V": "i32"}, {"BLOCK_T": pow2(T), "BLOCK_C": pow2(C)}),
        ("rmsnorm_fwd", rmsnorm.rmsnorm_fwd_kernel,
         {"x_ptr": F32, "y_ptr": F32, "r_ptr": F32, "T": "i32", "C": "i32"},
         {"EPS": rmsnorm.EPS, "BLOCK_T": pow2(T), "BLOCK_C": pow2(C)}),
        ("attention_fwd", attention.attention_fwd_kernel,
         {"qkv_ptr": F32, "y_ptr": F32, "lse_ptr": F32, "T": "i32", "C": "i32"},
         {"D": D, "BLOCK_T": pow2(T), "BLOCK_D": pow2(D)}),
        ("attention_bwd", attention.attention_bwd_kernel,
         {"qkv_ptr": F32, "y_ptr": F32, "lse_ptr": F32, "g_ptr": F32, "dqkv_ptr": F32, "T": "i32", "C": "i32"},
         {"D": D, "BLOCK_T": pow2(T), "BLOCK_D": pow2(D)}),
        ("cross_entropy_fwd", cross_entropy.cross_entropy_fwd_kernel,
         {"logits_ptr": F32, "targets_ptr": I32, "n_ptr": I32, "loss_ptr": F32, "d_logits_ptr": F32,
          "T": "i32", "V": "i32"}, {"BLOCK_T": pow2(T), "BLOCK_V": pow2(V)}),
        ("cross_entropy_bwd", cross_entropy.cross_entropy_bwd_kernel,
         {"d_logits_ptr": F32, "g_ptr": F32, "numel": "i32"}, {"BLOCK": pow2(T * V)}),
        ("adam", adam.adam_kernel,
         {"p_ptr": F32, "g_ptr": F32, "m_ptr": F32, "v_ptr": F32, "hyper_ptr": F32, "N": "i32",
          "beta1": "fp32", "beta2": "fp32", "eps": "fp32"}, {"BLOCK": adam.BLOCK}),
    ]
    for has_pass in (False, True):
        out.append((f"rmsnorm_bwd(pass={has_pass})", rmsnorm.rmsnorm_bwd_kernel,
                    {"x_ptr": F32, "r_ptr": F32, "g_ptr": F32, "g_pass_ptr": F32, "dx_ptr": F32,
                     "T": "i32", "C": "i32"},
                    {"HAS_PASS": has_pass, "BLOCK_T": pow2(T), "BLOCK_C": pow2(C)}))
    # every linear layer of the model: (n_in K, n_out N, relu, residual)
    for K, N, relu, residual in ((C, 3 * C, False, False), (C, C, False, True), (C, 4 * C, True, False),
                                 (4 * C, C, False, True), (C, V, False, False)):
        blocks = {"BLOCK_T": max(16, pow2(T)), "BLOCK_N": min(max(16, pow2(N)), 64),
                  "BLOCK_K": min(max(16, pow2(K)), 64)}
        tag = f"K={K},N={N}" + (",relu" if relu else "") + (",residual" if residual else "")
        out.append((f"linear_fwd({tag})", linear.linear_fwd_kernel,
                    {"x_ptr": F32, "w_ptr": F32, "res_ptr": F32, "y_ptr": F32, "T": "i32", "N": "i32", "K": "i32"},
                    {"RELU": relu, "HAS_RESIDUAL": residual, **blocks}))
        out.append((f"linear_bwd_dx({tag})", linear.linear_bwd_dx_kernel,
                    {"g_ptr": F32, "y_ptr": F32, "w_ptr": F32, "dx_ptr": F32, "T": "i32", "N": "i32", "K": "i32"},
                    {"RELU": relu, **blocks}))
        out.append((f"linear_bwd_dw({tag})", linear.linear_bwd_dw_kernel,
                    {"g_ptr": F32, "y_ptr": F32, "x_ptr": F32, "dw_ptr": F32, "T": "i32", "N": "i32", "K": "i32"},
                    {"RELU": relu, **blocks}))
    if C != 16:  # the one-kernel step unrolls the whole model: compile it at SPEC.md's width only
        return out
    out.append(("fused train_kernel", fused_step.train_kernel,
                {"p_ptr": F32, "g_ptr": F32, "m_ptr": F32, "v_ptr": F32, "batches_ptr": I32, "hyper_ptr": F32,
                 "losses_ptr": F32, "first_step": "i32", "num_steps": "i32", "beta1": "fp32", "beta2": "fp32",
                 "eps_adam": "fp32"},
                {"N": 12 * C * C + (2 * V + T) * C, "V": V, "V_PAD": max(16, pow2(V)), "T": T, "C": C, "H": H,
                 "D": D, "EPS": rmsnorm.EPS}))
    return out


def compile_all(capabilities: list[int], widths=(16, 64)) -> list[str]:
    lines = []
    for C in widths:
        for name, kernel, signature, constexprs in cases(C=C):
            signature = {**signature, **{k: "constexpr" for k in constexprs}}
            for cap in capabilities:
                src = triton.compiler.ASTSource(fn=kernel, signature=signature, constexprs=constexprs)
                compiled = triton.compile(src, target=GPUTarget("cuda", cap, 32))
                assert compiled.asm["cubin"], name
                lines.append(f"ok sm_{cap} C={C} {name} ({len(compiled.asm['cubin'])} bytes of cubin)")
    return lines


if __name__ == "__main__":
    for line in compile_all([int(c) for c in sys.argv[1:]] or [80, 90]):
        print(line)
