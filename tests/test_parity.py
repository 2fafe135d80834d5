"""The proof that the speed-ups compare like with like: from the same initial weights and
the same document, every stage computes the same loss and the same gradient for every
parameter as every other stage (float64 pairs to 1e-10, float32 pairs to 1e-5), and the
first 20 training steps agree across all four stages."""

import itertools
import json

import numpy as np
import pytest
import torch

import trajectories
from conftest import REPO_ROOT, load_stage
from reference import loss_and_grads
from shared.tokenizer import padded_document

stage1, stage2, stage3, stage4 = (load_stage(s) for s in ("1_pure_python", "2_numpy", "3_pytorch", "4_triton"))
DOCS = ["emma", "christopheralexander"]  # a short name, and one longer than block_size


def grads_stage1(tokens, state, config, dtype):
    params = stage1.make_params(state)
    loss = stage1.document_loss(tokens, params, config)
    loss.backward()
    return loss.data, {name: np.array([[p.grad for p in row] for row in m]) for name, m in params.items()}


def grads_stage2(tokens, state, config, dtype):
    _, params = stage2.make_params(state, config, dtype)
    loss = stage2.document_loss(tokens, params, config)
    loss.backward()
    return float(loss.data), stage2.grads_by_name(stage2.flat_grad(params), config)


def grads_stage3(tokens, state, config, dtype):
    model = stage3.load_weights(stage3.GPT(config).to(getattr(torch, np.dtype(dtype).name)), state)
    _, loss = model(*stage3.document_tensors(tokens, config.block_size, "cpu"))
    loss.backward()
    return loss.item(), {k: v.numpy() for k, v in stage3.grads_by_name(model).items()}


def grads_stage4(tokens, state, config, dtype):
    device = "cpu" if stage4.INTERPRET else "cuda"
    model = stage4.GPT(config, state, getattr(torch, np.dtype(dtype).name), device)
    T = config.block_size
    row = torch.tensor(padded_document(tokens, T), dtype=torch.int32, device=device)
    _, loss = model(row[1:T + 1], row[0:1], row[2:T + 2])  # inputs, n, targets
    loss.backward()
    return loss.item(), {k: v.cpu().numpy() for k, v in stage4.grads_by_name(model).items()}


def grads_reference(tokens, state, config, dtype):
    loss, grads = loss_and_grads(state, tokens, config)
    return loss, {k: v.numpy() for k, v in grads.items()}


FLOAT64 = {"1_pure_python": grads_stage1, "2_numpy": grads_stage2, "3_pytorch": grads_stage3,
           "4_triton": grads_stage4, "torch reference": grads_reference}
FLOAT32 = {"2_numpy": grads_stage2, "3_pytorch": grads_stage3, "4_triton": grads_stage4}


@pytest.fixture(scope="module")
def computed(setup):
    tokenizer, config, _, state = setup
    out = {}
    for doc in DOCS:
        tokens = tokenizer.encode_doc(doc)
        for name, fn in FLOAT64.items():
            out[doc, name, "float64"] = fn(tokens, state, config, np.float64)
        for name, fn in FLOAT32.items():
            out[doc, name, "float32"] = fn(tokens, state, config, np.float32)
    return out


@pytest.mark.parametrize("doc", DOCS)
@pytest.mark.parametrize("a, b", list(itertools.combinations(FLOAT64, 2)))
def test_float64_pairs_agree_to_1e_10(computed, doc, a, b):
    (loss_a, grads_a), (loss_b, grads_b) = computed[doc, a, "float64"], computed[doc, b, "float64"]
    assert abs(loss_a - loss_b) < 1e-10
    assert set(grads_a) == set(grads_b) and len(grads_a) == 9
    for name in grads_a:
        np.testing.assert_allclose(grads_a[name], grads_b[name], rtol=0, atol=1e-10, err_msg=f"{a} vs {b}: {name}")


@pytest.mark.parametrize("doc", DOCS)
@pytest.mark.parametrize("a, b", list(itertools.combinations(FLOAT32, 2)))
def test_float32_pairs_agree_to_1e_5(computed, doc, a, b):
    (loss_a, grads_a), (loss_b, grads_b) = computed[doc, a, "float32"], computed[doc, b, "float32"]
    assert abs(loss_a - loss_b) < 1e-5
    for name in grads_a:
        np.testing.assert_allclose(grads_a[name], grads_b[name], rtol=0, atol=1e-5, err_msg=f"{a} vs {b}: {name}")


def test_a_gradient_change_would_be_caught(computed):
    """The comparisons above are sharp: one weight's gradient nudged by 1e-9 fails them."""
    _, grads = computed[DOCS[0], "2_numpy", "float64"]
    _, reference = computed[DOCS[0], "torch reference", "float64"]
    nudged = grads["layer0.attn_wq"].copy()
    nudged[3, 5] += 1e-9
    with pytest.raises(AssertionError):
        np.testing.assert_allclose(nudged, reference["layer0.attn_wq"], rtol=0, atol=1e-10)


def test_20_step_trajectories_agree_across_stages(spec):
    s1 = trajectories.stage1_losses(spec, 20)
    s2 = trajectories.stage2_losses(spec, 20)
    s3 = trajectories.stage3_losses(spec, 20, torch.float64)
    s3_f32 = trajectories.stage3_losses(spec, 20, torch.float32)
    s4 = trajectories.stage4_losses(spec, 20, "cpu" if stage4.INTERPRET else "cuda")
    np.testing.assert_allclose(s2, s1, rtol=0, atol=1e-9)  # float64 against float64
    np.testing.assert_allclose(s3, s1, rtol=0, atol=1e-9)
    np.testing.assert_allclose(s3_f32, s1, rtol=0, atol=1e-4)  # float32 against float64
    np.testing.assert_allclose(s4, s3_f32, rtol=0, atol=1e-4)


@pytest.mark.parametrize("stage", ["2_numpy", "3_pytorch"])
def test_committed_runs_follow_stage1_for_1000_steps(stage):
    """The committed results files themselves: stage 2 (float64) to 1e-6, stage 3 (float32) to 1e-3."""
    ref = json.loads((REPO_ROOT / "1_pure_python" / "results.json").read_text())["losses"]
    res = json.loads((REPO_ROOT / stage / "results.json").read_text())
    atol = 1e-6 if res["config"]["dtype"] == "float64" else 1e-3
    np.testing.assert_allclose(res["losses"], ref, rtol=0, atol=atol)
