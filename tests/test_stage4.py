"""Stage 4: every kernel against PyTorch in float32 with odd shapes and padding, gradcheck
in float64, the whole model against stage 3, and the plan of an ahead-of-time compile of
every kernel for every GPU target from sm_75 (T4) to sm_120 (RTX 50 series) (.ci/run
compiles it).

In CI this runs on the CPU through Triton's interpreter (conftest sets TRITON_INTERPRET=1
before triton loads). On a CUDA machine, `TRITON_INTERPRET=0 pytest tests/test_stage4.py`
runs the same tests on compiled kernels on the GPU."""

import subprocess
import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import named_grads
import reference
from conftest import INTERPRET, REPO_ROOT, load_stage, stage_losses
from kernels import adam, attention, cross_entropy, embedding, kernels_per_step, linear, rmsnorm
from kernels.layout import padded_document
from shared.weights import GPTConfig, param_shapes

stage3 = load_stage("3_pytorch")
stage4 = load_stage("4_triton")

CPU = torch.device("cpu")
DEVICE = CPU if INTERPRET else torch.device("cuda")
TOL = {torch.float32: dict(rtol=1e-5, atol=1e-5), torch.float64: dict(rtol=1e-12, atol=1e-12)}


def randn(*shape, dtype=torch.float32, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed + sum(shape)), dtype=dtype).to(DEVICE)


def ints(values):
    return torch.tensor(values, dtype=torch.int32, device=DEVICE)


# ---------------------------------------------------------------------------- embedding


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("T, n, C, V", [(5, 5, 7, 11), (16, 9, 16, 27), (1, 1, 3, 2)])
def test_embedding(dtype, T, n, C, V):
    tokens = ints([(3 * i + 1) % V for i in range(T)])
    tokens[: min(3, T)] = 0  # repeated token: the scatter-add must sum
    wte, wpe = randn(V, C, dtype=dtype), randn(T + 2, C, dtype=dtype, seed=1)
    torch.testing.assert_close(embedding.embedding_forward(tokens, wte, wpe),
                               embedding.embedding_reference(tokens.long(), wte, wpe), **TOL[dtype])
    g = randn(T, C, dtype=dtype, seed=2)
    g_live = g.clone()
    g_live[n:] = 0  # rows past n are padding: no gradient flows from them
    ref_wte, ref_wpe = wte.clone().requires_grad_(), wpe.clone().requires_grad_()
    embedding.embedding_reference(tokens.long(), ref_wte, ref_wpe).backward(g_live)
    d_wte, d_wpe = torch.full_like(wte, 7.0), torch.full_like(wpe, 7.0)  # stale values must be overwritten
    embedding.embedding_backward(tokens, ints([n]), g, d_wte, d_wpe)
    torch.testing.assert_close(d_wte, ref_wte.grad, **TOL[dtype])
    torch.testing.assert_close(d_wpe, ref_wpe.grad, **TOL[dtype])


def real_rows(lengths, T):
    """(B, T, 1) mask: 1 where a row is one of its document's real rows, 0 on padding."""
    return (torch.arange(T, device=DEVICE)[None, :] < torch.tensor(lengths, device=DEVICE)[:, None])[..., None]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("T, lengths", [(5, [5, 2, 1]), (16, [9, 16, 1, 16, 3]), (2, [2, 1] * 35)])
def test_embedding_over_a_batch(dtype, T, lengths):
    """B documents of T rows: the scatter-add sums over the whole batch; rows past a document's
    length give nothing (70 documents of 2 rows: the d_wpe loop runs over two tiles of 64)."""
    B, C, V = len(lengths), 7, 11
    tokens = ints([[(3 * i + 5 * b) % V for i in range(T)] for b in range(B)])
    wte, wpe = randn(V, C, dtype=dtype), randn(T, C, dtype=dtype, seed=1)
    torch.testing.assert_close(embedding.embedding_forward(tokens, wte, wpe),
                               embedding.embedding_reference(tokens.long(), wte, wpe), **TOL[dtype])
    g = randn(B, T, C, dtype=dtype, seed=2)
    ref_wte, ref_wpe = wte.clone().requires_grad_(), wpe.clone().requires_grad_()
    embedding.embedding_reference(tokens.long(), ref_wte, ref_wpe).backward(g * real_rows(lengths, T))
    d_wte, d_wpe = torch.full_like(wte, 7.0), torch.full_like(wpe, 7.0)
    embedding.embedding_backward(tokens, ints(lengths), g, d_wte, d_wpe)
    torch.testing.assert_close(d_wte, ref_wte.grad, **TOL[dtype])
    torch.testing.assert_close(d_wpe, ref_wpe.grad, **TOL[dtype])


# ---------------------------------------------------------------------------- rmsnorm


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("shape", [(5, 7), (16, 16), (3, 64), (1, 1), (9, 16, 16)])  # the last: 144 rows, 3 programs
def test_rmsnorm_forward_backward_with_residual(dtype, shape):
    x = randn(*shape, dtype=dtype).requires_grad_()
    y, x_residual = rmsnorm.RMSNormWithResidual.apply(x)
    g, g_residual = randn(*shape, dtype=dtype, seed=1), randn(*shape, dtype=dtype, seed=2)
    (y * g + x_residual * g_residual).sum().backward()
    x_ref = x.detach().clone().requires_grad_()
    (rmsnorm.rmsnorm_reference(x_ref) * g + x_ref * g_residual).sum().backward()
    torch.testing.assert_close(y, rmsnorm.rmsnorm_reference(x.detach()), **TOL[dtype])
    torch.testing.assert_close(x.grad, x_ref.grad, **TOL[dtype])
    x_plain = x.detach().clone().requires_grad_()  # the plain norm: the same y, the norm's gradient only
    y_plain = rmsnorm.RMSNorm.apply(x_plain)
    (y_plain * g).sum().backward()
    x_ref = x.detach().clone().requires_grad_()
    (rmsnorm.rmsnorm_reference(x_ref) * g).sum().backward()
    torch.testing.assert_close(y_plain, y, rtol=0, atol=0)
    torch.testing.assert_close(x_plain.grad, x_ref.grad, **TOL[dtype])


def gradcheck(function, inputs, **tolerances) -> bool:
    """torch.autograd.gradcheck in its fast mode: the kernels' gradients against finite
    differences along random directions (u^T J v), not one Jacobian column at a time: a few
    launches through the interpreter where the column-by-column check takes hundreds."""
    return torch.autograd.gradcheck(function, inputs, fast_mode=True, **tolerances)


def test_rmsnorm_gradcheck():
    x = randn(5, 7, dtype=torch.float64).requires_grad_()
    assert gradcheck(rmsnorm.RMSNorm.apply, (x,))
    assert gradcheck(lambda t: rmsnorm.RMSNormWithResidual.apply(t)[0], (x,))
    assert gradcheck(lambda t: sum(rmsnorm.RMSNormWithResidual.apply(t)), (x,))


# ---------------------------------------------------------------------------- linear


LINEAR_CASES = [(5, 7, 3, False, False), (16, 16, 48, False, False), (16, 16, 16, False, True),
                (16, 16, 64, True, False), (13, 64, 16, False, True), (16, 16, 27, False, False),
                (3, 100, 70, True, False), (3, 100, 70, False, True),
                (130, 16, 64, True, False), (130, 64, 16, False, True)]  # a batch's rows: dW sums 3 row tiles


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("T, K, N, relu, residual", LINEAR_CASES)
def test_linear(dtype, T, K, N, relu, residual):
    x, w = randn(T, K, dtype=dtype).requires_grad_(), randn(N, K, dtype=dtype, seed=1)  # T: rows, B * T in a batch
    res = randn(T, N, dtype=dtype, seed=2).requires_grad_() if residual else None
    dw = torch.full_like(w, 7.0)
    y = linear.Linear.apply(x, w, dw, res, relu)
    g = randn(T, N, dtype=dtype, seed=3)
    y.backward(g)
    x_ref, w_ref = x.detach().clone().requires_grad_(), w.clone().requires_grad_()
    res_ref = res.detach().clone().requires_grad_() if residual else None
    y_ref = linear.linear_reference(x_ref, w_ref, res_ref, relu)
    y_ref.backward(g)
    tol = TOL[dtype] if K < 100 and T < 100 else dict(rtol=1e-4, atol=1e-4)  # (long float32 sums)
    torch.testing.assert_close(y, y_ref, **tol)
    torch.testing.assert_close(x.grad, x_ref.grad, **tol)
    torch.testing.assert_close(dw, w_ref.grad, **tol)
    if residual:
        torch.testing.assert_close(res.grad, res_ref.grad, **tol)


def test_linear_refuses_relu_with_residual():
    with pytest.raises(ValueError, match="not supported"):
        linear.linear_forward(randn(4, 5), randn(6, 5), randn(4, 6), relu=True)


def test_linear_gradcheck():
    w = randn(6, 5, dtype=torch.float64, seed=1)
    x = randn(4, 5, dtype=torch.float64).requires_grad_()
    res = randn(4, 6, dtype=torch.float64, seed=2).requires_grad_()
    dw = torch.zeros_like(w)
    assert gradcheck(lambda a, r: linear.Linear.apply(a, w, dw, r, False), (x, res))
    # away from the kink at 0, ReLU is differentiable and gradcheck applies
    x_relu = (randn(4, 5, dtype=torch.float64) + 0.05).requires_grad_()
    assert gradcheck(lambda a: linear.Linear.apply(a, w, dw, None, True), (x_relu,), atol=1e-6)


# ---------------------------------------------------------------------------- attention


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("B, T, n_head, head_dim", [(None, 1, 4, 4), (None, 5, 4, 4), (None, 16, 4, 4),
                                                    (None, 7, 3, 2), (None, 4, 2, 5), (3, 16, 4, 4), (2, 5, 3, 2)])
def test_attention(dtype, B, T, n_head, head_dim):
    """(T, 3C) for one document, (B, T, 3C) for a batch: documents never attend to each other."""
    lead = () if B is None else (B,)
    qkv = randn(*lead, T, 3 * n_head * head_dim, dtype=dtype).requires_grad_()
    y = attention.CausalAttention.apply(qkv, n_head)
    g = randn(*lead, T, n_head * head_dim, dtype=dtype, seed=1)
    y.backward(g)
    ref = qkv.detach().clone().requires_grad_()
    y_ref = reference.causal_attention(ref, n_head)
    y_ref.backward(g)
    torch.testing.assert_close(y, y_ref, **TOL[dtype])
    torch.testing.assert_close(qkv.grad, ref.grad, **TOL[dtype])


def test_attention_gradcheck():
    qkv = randn(6, 3 * 3 * 2, dtype=torch.float64).requires_grad_()
    assert gradcheck(lambda t: attention.CausalAttention.apply(t, 3), (qkv,))


# ---------------------------------------------------------------------------- cross-entropy


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("T, n, V", [(5, 5, 11), (16, 16, 27), (16, 6, 27), (1, 1, 2)])
def test_cross_entropy_over_real_rows(dtype, T, n, V):
    logits = (randn(T, V, dtype=dtype) * 3).requires_grad_()
    targets = ints([(5 * i + 2) % V for i in range(T)])
    loss = cross_entropy.CrossEntropy.apply(logits, targets, ints([n]))
    (loss * 2.5).backward()  # a non-unit upstream gradient exercises the backward kernel
    ref = logits.detach().clone().requires_grad_()
    ref_loss = F.cross_entropy(ref[:n], targets[:n].long())
    (ref_loss * 2.5).backward()
    torch.testing.assert_close(loss, ref_loss, **TOL[dtype])
    torch.testing.assert_close(logits.grad, ref.grad, **TOL[dtype])  # padded rows: exactly zero


@pytest.mark.parametrize("dtype, T, lengths", [(torch.float32, 16, [9, 16, 1]), (torch.float64, 16, [9, 16, 1]),
                                               (torch.float64, 2, [1, 2] * 520)])  # 1040 documents: two sum tiles
def test_cross_entropy_over_a_batch(dtype, T, lengths):
    """The mean over every real row of the batch (not the mean of the documents' means)."""
    B, V = len(lengths), 11
    logits = (randn(B, T, V, dtype=dtype) * 3).requires_grad_()
    targets = ints([[(5 * i + 3 * b + 2) % V for i in range(T)] for b in range(B)])
    loss = cross_entropy.CrossEntropy.apply(logits, targets, ints(lengths))
    (loss * 2.5).backward()
    ref = logits.detach().clone().requires_grad_()
    real = real_rows(lengths, T)[..., 0]
    ref_loss = F.cross_entropy(ref[real], targets[real].long())
    (ref_loss * 2.5).backward()
    torch.testing.assert_close(loss, ref_loss, **TOL[dtype])
    torch.testing.assert_close(logits.grad, ref.grad, **TOL[dtype])


def test_cross_entropy_gradcheck():
    logits = randn(6, 9, dtype=torch.float64).requires_grad_()
    targets = ints([1, 0, 8, 3, 3, 5])
    n = ints([4])
    assert gradcheck(lambda z: cross_entropy.CrossEntropy.apply(z, targets, n), (logits,))


# ---------------------------------------------------------------------------- adam


def test_adam_matches_torch_optim_over_steps():
    shapes = [(27, 16), (16, 16), (5, 3)]
    params = [torch.nn.Parameter(randn(*s, seed=i)) for i, s in enumerate(shapes)]  # on DEVICE
    optimizer = torch.optim.Adam(params, lr=0.01, betas=(0.85, 0.99), eps=1e-8)
    flat = torch.cat([p.detach().flatten() for p in params])
    m, v = torch.zeros_like(flat), torch.zeros_like(flat)
    for step in range(5):
        grads = [randn(*s, seed=10 * step + i) for i, s in enumerate(shapes)]
        for p, g in zip(params, grads):
            p.grad = g
        optimizer.step()
        scalars = torch.tensor([0.01, 1 - 0.85 ** (step + 1), 1 - 0.99 ** (step + 1)], device=DEVICE)
        adam.adam_step(flat, torch.cat([g.flatten() for g in grads]), m, v, scalars, 0.85, 0.99, 1e-8)
    torch.testing.assert_close(flat, torch.cat([p.detach().flatten() for p in params]), rtol=1e-6, atol=1e-7)


# ---------------------------------------------------------------------------- whole model


def padded(batch, block_size):
    """(inputs (B, T), n (B,), targets (B, T)) of a batch, padded to block_size as stage 4 trains on it."""
    rows = ints([padded_document(tokens, block_size) for tokens in batch])
    return (rows[:, 1:block_size + 1].contiguous(), rows[:, 0].contiguous(),
            rows[:, 2:block_size + 2].contiguous())


@pytest.mark.parametrize("dtype, atol", [(torch.float64, 1e-10), (torch.float32, 1e-5)])
@pytest.mark.parametrize("docs", [["anna"], ["christopheralexander"], ["anna", "x", "christopheralexander"]])
def test_model_gradients_equal_stage3(setup, dtype, atol, docs):
    tokenizer, config, _, state = setup
    batch = [tokenizer.encode_doc(doc) for doc in docs]
    model4 = stage4.GPT(config, state, dtype, DEVICE)
    _, loss4 = model4(*padded(batch, config.block_size))
    loss4.backward()
    model3 = stage3.load_weights(stage3.GPT(config).to(dtype), state)
    _, loss3 = model3(*stage3.batch_tensors(batch, config.block_size, CPU))
    loss3.backward()
    assert loss4.item() == pytest.approx(loss3.item(), abs=atol)
    grads3 = named_grads.stage3(model3)
    for name, grad in named_grads.stage4(model4).items():
        np.testing.assert_allclose(grad, grads3[name], rtol=0, atol=atol, err_msg=name)
    assert model4.params.flat.grad is None  # gradients go to the flat buffer, not through autograd


def autograd_nodes(loss) -> list:
    """Every node of the autograd graph behind `loss`."""
    seen, stack, nodes = set(), [loss.grad_fn], []  # (a node's metadata dict is its identity)
    while stack:
        node = stack.pop()
        if node is None or id(node.metadata) in seen:
            continue
        seen.add(id(node.metadata))
        nodes.append(node)
        stack.extend(next_node for next_node, _ in node.next_functions)
    return nodes


def forward_and_mark(model, inputs):
    """One forward; every node of its graph marked. Nothing of it outlives the call but what the model keeps."""
    _, loss = model(*inputs)
    for node in autograd_nodes(loss):
        node.metadata["earlier"] = True


def test_every_autograd_node_is_made_in_its_forward(setup):
    """A node made before a step, e.g. a weight view made once when the model is built, keeps
    the CUDA stream it was made on, and so does the parameter's gradient accumulator it keeps
    alive. At the end of backward autograd makes the caller's stream wait on the accumulator's
    stream, so a CUDA graph capture of the step fails ("dependency created on uncaptured work
    in another stream", seen on an H100). So no node of one forward may survive into the next."""
    tokenizer, config, _, state = setup
    model = stage4.GPT(config, state, torch.float64, DEVICE)
    inputs = padded([tokenizer.encode_doc(doc) for doc in ["anna", "bob"]], config.block_size)
    forward_and_mark(model, inputs)
    _, loss = model(*inputs)
    nodes = autograd_nodes(loss)
    assert len(nodes) > 20 and "torch::autograd::AccumulateGrad" in [node.name() for node in nodes]
    assert [node.name() for node in nodes if node.metadata.get("earlier")] == []


@pytest.mark.xdist_group("trajectories")  # (tests/test_parity.py compares the same runs: trained once)
def test_training_tracks_stage3_and_microgpt():
    """Stage 4's own training loop against stage 3's, 20 steps of microgpt's run."""
    losses = stage_losses("4_triton", 20)
    assert [round(x, 4) for x in losses[:3]] == [3.3660, 3.4243, 3.1778]
    np.testing.assert_allclose(losses, stage_losses("3_pytorch", 20, "--device", "cpu"), rtol=0, atol=1e-4)


def test_sampling_after_training_matches_stage3(setup):
    """Same weights, same random stream: the same names come out."""
    import random

    tokenizer, config, _, state = setup
    model3 = stage3.load_weights(stage3.GPT(config), state)
    model4 = stage4.GPT(config, state, device=DEVICE)
    rng3, rng4 = random.Random(7), random.Random(7)
    names3 = [stage3.sample(model3, config, tokenizer, rng3, 0.5) for _ in range(3)]
    names4 = [stage4.sample(model4, config, tokenizer, rng4, 0.5) for _ in range(3)]
    assert names4 == names3 and len(set(names3)) > 1


def test_the_ahead_of_time_compile_plans_every_kernel_for_every_gpu_target():
    """tests/aot_compile.py records the launches real training steps make (two widths, one
    document and a batch, the one-kernel step and its sampling forward) and plans a compile of
    each for every target from sm_75 (T4) to sm_120 (RTX 50 series); it refuses a plan that
    leaves a kernel of 4_triton/ out. Here only the plan (--plan, nothing compiled); .ci/run
    compiles every pair as its own step, which catches what the interpreter lets through."""
    proc = subprocess.run([sys.executable, str(REPO_ROOT / "tests" / "aot_compile.py"), "--plan"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    planned = [line.split() for line in proc.stdout.splitlines()]
    assert planned and all(words[0] == "plan" for words in planned)
    targets = {words[1] for words in planned}
    assert targets == {"sm_75", "sm_80", "sm_86", "sm_89", "sm_90", "sm_120"}
    kernels = {words[3].split("(")[0] for words in planned}
    for target in targets:
        assert {words[3].split("(")[0] for words in planned if words[1] == target} == kernels, target
    assert {"train_kernel", "linear_fwd_kernel", "adam_kernel"} <= kernels


@pytest.mark.parametrize("name", ["embedding", "rmsnorm", "linear", "attention", "cross_entropy", "adam", "partials"])
def test_each_kernel_file_runs_on_its_own(name):
    """`python 4_triton/kernels/<name>.py` checks its forward and backward against PyTorch and
    says so in one line (through the interpreter here; on a GPU it also times itself)."""
    proc = subprocess.run([sys.executable, str(REPO_ROOT / "4_triton" / "kernels" / f"{name}.py")],
                          capture_output=True, text=True, timeout=300)  # (it chooses the interpreter itself)
    assert proc.returncode == 0, proc.stdout + proc.stderr[-2000:]
    (line,) = proc.stdout.splitlines()
    assert line.startswith(f"{name}: matches PyTorch in float32 (through Triton's interpreter)"), line


# Allocations and views cost no kernel; anything else would be PyTorch doing arithmetic.
NO_KERNEL_OPS = {"aten.empty.memory_format", "aten.empty_like.default", "aten.view.default",
                 "aten.slice.Tensor", "aten.select.int", "aten.detach.default", "aten.alias.default"}


@pytest.mark.skipif(not INTERPRET, reason="counts launches through the interpreter; on a GPU, "
                    "benchmarks/gpu_profile.py counts them with the CUDA profiler")
@pytest.mark.parametrize("n_layer, batch_size, count", [(1, 1, 29), (1, 3, 29), (2, 3, 47), (1, 17, 35)])
def test_a_step_is_our_kernels_and_no_torch_compute(setup, monkeypatch, n_layer, batch_size, count):
    """Every op of the training step is one of our kernels, at any batch size: record what the
    step asks of PyTorch (muted inside our kernel launches, where the interpreter moves data)
    and count the launches: 29 at SPEC.md's one layer (12 forward, 16 backward, 1 Adam), 18
    more per layer, and 6 ordered sums of partials at one layer once a batch's rows (17 x 16)
    are shared among programs, as kernels_per_step says and the results files record."""
    from torch.utils._python_dispatch import TorchDispatchMode, _disable_current_modes
    from triton.runtime.interpreter import GridExecutor

    tokenizer, _, docs, _ = setup
    config = GPTConfig(vocab_size=tokenizer.vocab_size, n_layer=n_layer)
    state = {name: [[0.01 * ((r + c) % 7) for c in range(cols)] for r in range(rows)]
             for name, (rows, cols) in param_shapes(config)}
    launches = []
    run_kernel = GridExecutor.__call__

    def counted(self, *args, **kwargs):
        launches.append(self.fn.__name__)
        with _disable_current_modes():
            return run_kernel(self, *args, **kwargs)

    class RecordOps(TorchDispatchMode):
        def __init__(self):
            super().__init__()
            self.ops = set()

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            self.ops.add(str(func))
            return func(*args, **(kwargs or {}))

    monkeypatch.setattr(GridExecutor, "__call__", counted)
    step_fn = stage4.TrainStep(stage4.GPT(config, state), num_steps=1000, cuda_graph=False, batch_size=batch_size)
    step_fn.load([tokenizer.encode_doc(doc) for doc in docs[:batch_size]], 0)
    with RecordOps() as record:
        step_fn.launch()
    assert record.ops <= NO_KERNEL_OPS, record.ops - NO_KERNEL_OPS
    assert len(launches) == kernels_per_step(n_layer, batch_size, config.block_size) == count, launches
    assert launches.count("linear_fwd_kernel") == 1 + 4 * n_layer and launches[-1] == "adam_kernel"


# ---------------------------------------------------------------------------- a batch shared among programs


def test_a_large_batch_is_summed_in_parts_the_same_every_time(monkeypatch):
    """Weight gradients over more rows than one program sums (kernels/launch.py, partials.py): the rows
    are split among programs whose partial sums are added in order. Against PyTorch, against
    one program doing all the rows (to float32 rounding), and twice (the same bits)."""
    from kernels import launch

    B, T, C, V, N = 45, 16, 16, 27, 64  # 720 rows: 3 programs of 256
    assert launch.split(B * T) == 3
    lengths = [(5 * b) % T + 1 for b in range(B)]
    tokens = ints([[(3 * i + 7 * b) % V for i in range(T)] for b in range(B)])
    wte, wpe, w = randn(V, C), randn(T, C, seed=1), randn(N, C, seed=2)
    x, g_x, g_y = randn(B, T, C, seed=3), randn(B, T, C, seed=4), randn(B, T, N, seed=5)

    def gradients():
        d_wte, d_wpe, dw = torch.full_like(wte, 7.0), torch.full_like(wpe, 7.0), torch.full_like(w, 7.0)
        embedding.embedding_backward(tokens, ints(lengths), g_x, d_wte, d_wpe)
        linear.linear_backward(g_y, x, w, torch.ones_like(g_y), dw)
        return d_wte, d_wpe, dw

    split_once, split_twice = gradients(), gradients()
    ref_wte, ref_wpe, ref_w = wte.clone().requires_grad_(), wpe.clone().requires_grad_(), w.clone().requires_grad_()
    embedding.embedding_reference(tokens.long(), ref_wte, ref_wpe).backward(g_x * real_rows(lengths, T))
    (x @ ref_w.T).backward(g_y)
    for ours, ref in zip(split_once, (ref_wte.grad, ref_wpe.grad, ref_w.grad)):
        torch.testing.assert_close(ours, ref, rtol=1e-4, atol=1e-4)
    assert all(torch.equal(a, b) for a, b in zip(split_once, split_twice))
    monkeypatch.setattr(launch, "ROWS_PER_PROGRAM", 10**6)  # one program walks every row
    for whole, parts in zip(gradients(), split_once):
        torch.testing.assert_close(parts, whole, rtol=1e-5, atol=1e-5)
