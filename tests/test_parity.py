"""The proof that the speed-ups compare like with like: from the same initial weights and
the same documents, every stage computes the same loss and the same gradient for every
parameter as every other stage (float64 pairs to 1e-10, float32 pairs to 1e-5), one document
at a time and in batches of mixed length, and the first 20 training steps agree across stages.
Stage 4 takes part twice: its per-op kernels (main.py) and its one-kernel step
(fused_step.py), the latter with two programs of two documents each, so a batch of five is
summed within programs and then across them."""

import itertools
import json

import numpy as np
import pytest
import torch

import trajectories
from conftest import REPO_ROOT, load_stage
from reference import loss_and_grads
from shared.tokenizer import padded_document
from shared.weights import param_offsets, param_shapes

stage1, stage2, stage3, stage4 = (load_stage(s) for s in ("1_pure_python", "2_numpy", "3_pytorch", "4_triton"))
from fused_step import FusedTrainer  # noqa: E402  (stage 4's folder is on the path once it is loaded)

DEVICE = "cpu" if stage4.INTERPRET else "cuda"
# a short name; one longer than block_size; and batches mixing a one-letter name, a name longer
# than block_size and names between, so padding and masking are exercised
CASES = {
    "emma": ["emma"],
    "christopheralexander": ["christopheralexander"],
    "B=2": ["x", "christopheralexander"],
    "B=5": ["emma", "x", "christopheralexander", "annabelle", "bo"],
}


def grads_stage1(batch, state, config, dtype):
    params = stage1.make_params(state)
    loss = stage1.batch_loss(batch, params, config)
    loss.backward()
    return loss.data, {name: np.array([[p.grad for p in row] for row in m]) for name, m in params.items()}


def grads_stage2(batch, state, config, dtype):
    _, params = stage2.make_params(state, config, dtype)
    loss = stage2.batch_loss(batch, params, config)
    loss.backward()
    return float(loss.data), stage2.grads_by_name(stage2.flat_grad(params), config)


def grads_stage3(batch, state, config, dtype):
    model = stage3.load_weights(stage3.GPT(config).to(getattr(torch, np.dtype(dtype).name)), state)
    _, loss = model(*stage3.batch_tensors(batch, config.block_size, "cpu"))
    loss.backward()
    return loss.item(), {k: v.numpy() for k, v in stage3.grads_by_name(model).items()}


def grads_stage4(batch, state, config, dtype):
    model = stage4.GPT(config, state, getattr(torch, np.dtype(dtype).name), DEVICE)
    T = config.block_size
    rows = torch.tensor([padded_document(tokens, T) for tokens in batch], dtype=torch.int32, device=DEVICE)
    _, loss = model(rows[:, 1:T + 1].contiguous(), rows[:, 0].contiguous(), rows[:, 2:T + 2].contiguous())
    loss.backward()
    return loss.item(), {k: v.cpu().numpy() for k, v in stage4.grads_by_name(model).items()}


def grads_fused(batch, state, config, dtype):
    """One step of the one-kernel trainer on `batch`: its summed gradient, before Adam used it."""
    model = stage4.GPT(config, state, getattr(torch, np.dtype(dtype).name), DEVICE)
    trainer = FusedTrainer(model.params.flat.data, config, 1, len(batch), programs=2, docs_per_tile=2)
    trainer.load_documents(batch)
    trainer.launch(0, 1)
    offsets = param_offsets(config)
    flat = trainer.grads.cpu().numpy()
    return trainer.losses[0].item(), {name: flat[offsets[name][0]:offsets[name][0] + rows * cols].reshape(rows, cols)
                                      for name, (rows, cols) in param_shapes(config)}


def grads_reference(batch, state, config, dtype):
    loss, grads = loss_and_grads(state, batch, config)
    return loss, {k: v.numpy() for k, v in grads.items()}


FLOAT32 = {"2_numpy": grads_stage2, "3_pytorch": grads_stage3, "4_triton": grads_stage4,
           "4_triton one kernel": grads_fused}
FLOAT64 = {"1_pure_python": grads_stage1, **FLOAT32, "torch reference": grads_reference}


def pairs(stages: dict) -> list[tuple]:
    return [(case, a, b) for case in CASES for a, b in itertools.combinations(stages, 2)]


@pytest.fixture(scope="module")
def computed(setup):
    tokenizer, config, _, state = setup
    out = {}
    for case, docs in CASES.items():
        batch = [tokenizer.encode_doc(doc) for doc in docs]
        for name in FLOAT64:
            out[case, name, "float64"] = FLOAT64[name](batch, state, config, np.float64)
        for name in FLOAT32:
            out[case, name, "float32"] = FLOAT32[name](batch, state, config, np.float32)
    return out


@pytest.mark.parametrize("case, a, b", pairs(FLOAT64))
def test_float64_pairs_agree_to_1e_10(computed, case, a, b):
    (loss_a, grads_a), (loss_b, grads_b) = computed[case, a, "float64"], computed[case, b, "float64"]
    assert abs(loss_a - loss_b) < 1e-10
    assert set(grads_a) == set(grads_b) and len(grads_a) == 9
    for name in grads_a:
        np.testing.assert_allclose(grads_a[name], grads_b[name], rtol=0, atol=1e-10, err_msg=f"{a} vs {b}: {name}")


@pytest.mark.parametrize("case, a, b", pairs(FLOAT32))
def test_float32_pairs_agree_to_1e_5(computed, case, a, b):
    (loss_a, grads_a), (loss_b, grads_b) = computed[case, a, "float32"], computed[case, b, "float32"]
    assert abs(loss_a - loss_b) < 1e-5
    for name in grads_a:
        np.testing.assert_allclose(grads_a[name], grads_b[name], rtol=0, atol=1e-5, err_msg=f"{a} vs {b}: {name}")


def test_a_batch_loss_is_the_mean_over_positions_not_over_documents(setup):
    """SPEC.md: a step's loss is the mean over all real target positions of its documents. For
    documents of different length that is the length-weighted mean of their losses, not the
    plain mean, and the two differ here by far more than the tolerances above."""
    tokenizer, config, _, state = setup
    batch = [tokenizer.encode_doc(doc) for doc in CASES["B=2"]]
    n = [min(config.block_size, len(tokens) - 1) for tokens in batch]
    per_doc = [loss_and_grads(state, [tokens], config)[0] for tokens in batch]
    for name in FLOAT64:
        if name == "torch reference":
            continue
        loss, _ = FLOAT64[name](batch, state, config, np.float64)
        assert loss == pytest.approx(sum(lo * k for lo, k in zip(per_doc, n)) / sum(n), abs=1e-12), name
        assert abs(loss - sum(per_doc) / len(per_doc)) > 1e-3, name


def test_a_gradient_change_would_be_caught(computed):
    """The comparisons above are sharp: one weight's gradient nudged by 1e-9 fails them."""
    _, grads = computed["emma", "2_numpy", "float64"]
    _, reference = computed["emma", "torch reference", "float64"]
    nudged = grads["layer0.attn_wq"].copy()
    nudged[3, 5] += 1e-9
    with pytest.raises(AssertionError):
        np.testing.assert_allclose(nudged, reference["layer0.attn_wq"], rtol=0, atol=1e-10)


def test_20_step_trajectories_at_batch_size_4_agree(spec):
    """Batches of 4 for 20 steps: all four stages train the same model the same way (stage 4's
    one-kernel step with two programs of two documents)."""
    s1 = trajectories.stage1_losses(spec, 20, batch_size=4)
    s2 = trajectories.stage2_losses(spec, 20, batch_size=4)
    s3 = trajectories.stage3_losses(spec, 20, torch.float64, batch_size=4)
    s3_f32 = trajectories.stage3_losses(spec, 20, torch.float32, batch_size=4)
    s4 = trajectories.stage4_losses(spec, 20, DEVICE, batch_size=4)
    s4_fused = trajectories.fused_losses(spec, 20, DEVICE, batch_size=4, programs=2, docs_per_tile=2)
    np.testing.assert_allclose(s2, s1, rtol=0, atol=1e-9)
    np.testing.assert_allclose(s3, s1, rtol=0, atol=1e-9)
    np.testing.assert_allclose(s3_f32, s1, rtol=0, atol=1e-4)
    np.testing.assert_allclose(s4, s3_f32, rtol=0, atol=1e-4)
    np.testing.assert_allclose(s4_fused, s3_f32, rtol=0, atol=1e-4)
    assert abs(s1[0] - trajectories.stage1_losses(spec, 1)[0]) > 1e-3  # four names are not the first one


def test_20_step_trajectories_agree_across_stages(spec):
    s1 = trajectories.stage1_losses(spec, 20)
    s2 = trajectories.stage2_losses(spec, 20)
    s3 = trajectories.stage3_losses(spec, 20, torch.float64)
    s3_f32 = trajectories.stage3_losses(spec, 20, torch.float32)
    s4 = trajectories.stage4_losses(spec, 20, DEVICE)
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
