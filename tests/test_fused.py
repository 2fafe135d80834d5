"""The whole training step as one kernel (4_triton/fused_step.py), through the interpreter:
its losses follow stage 3 (float32) step by step, one launch for many steps equals one
launch per step, a batch split among programs and reduced equals one program doing it all,
and its committed full run ends where microgpt's does."""

import json
import random

import numpy as np
import pytest
import torch

from conftest import INTERPRET, REPO_ROOT, load_stage, stage_losses, train_stage
from fused_step import FusedTrainer
from shared.weights import GPTConfig

stage4 = load_stage("4_triton")
DEVICE = torch.device("cpu") if INTERPRET else torch.device("cuda")


def trainer(setup, steps, batch_size=1, programs=1, docs_per_tile=1):
    tokenizer, config, docs, state = setup
    params = stage4.FlatParameters(config, state, torch.float32, DEVICE).flat.data
    fused = FusedTrainer(params, config, 1000, batch_size, programs, docs_per_tile)
    fused.load_documents([tokenizer.encode_doc(doc) for doc in docs[:steps * batch_size]])
    return fused


@pytest.fixture(scope="module")
def stage3_losses():
    return stage_losses("3_pytorch", 20, "--device", "cpu")


def test_one_launch_per_step_follows_stage3(stage3_losses):
    """fused_step.py's own loop (one launch per step) against stage 3's own loop."""
    losses = stage_losses("4_triton", 20, program="fused_step.py")
    assert [round(x, 4) for x in losses[:3]] == [3.3660, 3.4243, 3.1778]
    np.testing.assert_allclose(losses, stage3_losses, rtol=0, atol=1e-4)


def test_whole_run_launch_follows_stage3(stage3_losses):
    """fused_step.py --launch run: the first 8 steps in one launch, through the runner."""
    run, _ = train_stage("4_triton", "--launch", "run", max_steps=8, program="fused_step.py")
    np.testing.assert_allclose(run.losses, stage3_losses[:8], rtol=0, atol=1e-4)


def test_sampling_runs_the_training_forward(setup):
    """The one-kernel program samples with its own forward (logits_kernel on _forward): from the
    same weights and the same random stream it draws what the per-op model draws."""
    tokenizer, config, _, state = setup
    fused = trainer(setup, 1)
    model4 = stage4.GPT(config, state, device=DEVICE)
    tokens = tokenizer.encode_doc("emma")[:-1]
    per_op_logits, _ = model4(torch.tensor([tokens + [0] * (16 - len(tokens))], dtype=torch.int32, device=DEVICE),
                              torch.tensor([len(tokens)], dtype=torch.int32, device=DEVICE))
    torch.testing.assert_close(fused.logits(tokens)[:len(tokens)], per_op_logits[0, :len(tokens)],
                               rtol=1e-5, atol=1e-5)
    from fused_step import sample

    rng_fused, rng_per_op = random.Random(7), random.Random(7)
    names = [sample(fused, config, tokenizer, rng_fused, 0.5) for _ in range(5)]
    assert names == [stage4.sample(model4, config, tokenizer, rng_per_op, 0.5) for _ in range(5)]
    assert len(set(names)) > 1


def test_whole_run_in_one_launch_equals_one_launch_per_step(setup, stage3_losses):
    per_step, one_launch = trainer(setup, 8), trainer(setup, 8)
    for step in range(8):
        per_step.launch(step, 1)
    one_launch.launch(0, 8)
    torch.testing.assert_close(one_launch.losses[:8], per_step.losses[:8], rtol=0, atol=0)
    torch.testing.assert_close(one_launch.params, per_step.params, rtol=0, atol=0)
    np.testing.assert_allclose(one_launch.losses[:8].tolist(), stage3_losses[:8], rtol=0, atol=1e-4)


def test_weights_after_steps_match_the_per_op_kernels(setup):
    """Five steps of the fused kernel leave the same weights as five steps of the per-op kernels."""
    tokenizer, config, docs, state = setup
    fused = trainer(setup, 5)
    fused.launch(0, 5)
    step_fn = stage4.TrainStep(stage4.GPT(config, state, device=DEVICE), 1000, cuda_graph=False)  # (main.py's)
    for step in range(5):
        step_fn([tokenizer.encode_doc(docs[step])], step)
    torch.testing.assert_close(fused.params, step_fn.model.params.flat.data, rtol=0, atol=2e-6)


@pytest.mark.parametrize("programs, docs_per_tile", [(3, 1), (2, 2), (1, 4)])
def test_a_batch_split_among_programs_equals_one_program(setup, programs, docs_per_tile):
    """Batches of 7 for 4 steps: one program doing every document alone, one launch for all
    four steps, against programs each summing their share and a second kernel reducing them
    (3 programs of 1 document a tile, 2 of 2, 1 of 4): the same losses and weights to float32
    rounding; and a rerun of the split gives the same bits (no atomics)."""
    alone = trainer(setup, 4, batch_size=7)
    alone.launch(0, 4)
    runs = []
    for _ in range(2):
        split = trainer(setup, 4, batch_size=7, programs=programs, docs_per_tile=docs_per_tile)
        for step in range(4):
            split.launch(step, 1)
        runs.append(split)
    assert runs[0].programs == programs
    torch.testing.assert_close(runs[0].losses[:4], alone.losses[:4], rtol=0, atol=2e-6)
    torch.testing.assert_close(runs[0].params, alone.params, rtol=0, atol=2e-6)
    assert torch.equal(runs[0].params, runs[1].params) and torch.equal(runs[0].losses, runs[1].losses)


def test_fused_refuses_models_it_does_not_implement(setup):
    _, config, _, state = setup
    deeper = GPTConfig(config.vocab_size, n_layer=2)
    with pytest.raises(ValueError, match="one-layer"):
        FusedTrainer(torch.zeros(10), deeper, 10)


def test_committed_full_fused_run_ends_at_microgpts_loss():
    res = json.loads((REPO_ROOT / "4_triton" / "results_fused.json").read_text())
    assert res["env"]["fused"] == "step" and len(res["losses"]) == 1000
    assert round(res["losses"][0], 4) == 3.3660
    assert abs(res["losses"][-1] - 2.6497) < 0.01
