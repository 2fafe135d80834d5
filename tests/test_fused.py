"""The whole training step as one kernel (4_triton/fused_step.py), through the interpreter:
its losses follow stage 3 (float32) step by step and its weights the per-op kernels', one
launch for many steps equals one launch per step, and a batch split among programs and
reduced equals one program doing it all. Each trains with the program's own `train`.
(Its committed full run is checked with the others in tests/test_repo.py.)"""

import random

import numpy as np
import pytest
import torch

from conftest import INTERPRET, load_stage, stage_losses, train_stage
from fused_step import FusedTrainer
from shared.weights import GPTConfig

stage4 = load_stage("4_triton")
DEVICE = torch.device("cpu") if INTERPRET else torch.device("cuda")


@pytest.fixture(scope="module")
def stage3_losses():
    return stage_losses("3_pytorch", 20, "--device", "cpu")


@pytest.mark.xdist_group("trajectories")  # (tests/test_parity.py compares the same run: trained once)
def test_one_launch_per_step_follows_stage3(stage3_losses):
    """fused_step.py's own loop (one launch per step) against stage 3's own loop."""
    losses = stage_losses("4_triton", 20, program="fused_step.py")
    assert [round(x, 4) for x in losses[:3]] == [3.3660, 3.4243, 3.1778]
    np.testing.assert_allclose(losses, stage3_losses, rtol=0, atol=1e-4)


def test_sampling_runs_the_training_forward(setup):
    """The one-kernel program samples with its own forward (logits_kernel on _forward): from the
    same weights and the same random stream it draws what the per-op model draws."""
    tokenizer, config, _, state = setup
    fused = FusedTrainer(stage4.FlatParameters(config, state, torch.float32, DEVICE).flat.data, config, 1)
    model4 = stage4.GPT(config, state, device=DEVICE)
    tokens = tokenizer.encode_doc("emma")[:-1]
    per_op_logits, _ = model4(torch.tensor([tokens + [0] * (16 - len(tokens))], dtype=torch.int32, device=DEVICE),
                              torch.tensor([len(tokens)], dtype=torch.int32, device=DEVICE))
    torch.testing.assert_close(fused.logits(tokens)[:len(tokens)], per_op_logits[0, :len(tokens)],
                               rtol=1e-5, atol=1e-5)
    from fused_step import sample

    rng_fused, rng_per_op = random.Random(7), random.Random(7)
    names = [sample(fused, config, tokenizer, rng_fused, 0.5) for _ in range(3)]
    assert names == [stage4.sample(model4, config, tokenizer, rng_per_op, 0.5) for _ in range(3)]
    assert len(set(names)) > 1


def test_whole_run_in_one_launch_equals_one_launch_per_step(stage3_losses):
    """fused_step.py --launch run (the first 8 steps in one launch) against its default, one
    launch per step: the same losses and weights to the bit, and stage 3's losses to float32 rounding."""
    per_step_run, per_step = train_stage("4_triton", max_steps=8, program="fused_step.py")
    one_launch_run, one_launch = train_stage("4_triton", "--launch", "run", max_steps=8, program="fused_step.py")
    assert one_launch_run.losses == per_step_run.losses
    assert torch.equal(one_launch.params, per_step.params)
    np.testing.assert_allclose(one_launch_run.losses, stage3_losses[:8], rtol=0, atol=1e-4)


def test_weights_after_steps_match_the_per_op_kernels():
    """Five steps of fused_step.py's own train leave the same weights as five of main.py's (the per-op kernels)."""
    _, fused = train_stage("4_triton", max_steps=5, program="fused_step.py")
    _, per_op = train_stage("4_triton", max_steps=5)
    torch.testing.assert_close(fused.params, per_op.params.flat.data, rtol=0, atol=2e-6)


BATCH = ("--batch-size", "7")


@pytest.fixture(scope="module")
def one_program_batches_of_7():
    """(run, trainer): 4 steps of 7 documents, one program doing every document alone, all four
    steps in one launch (--launch run)."""
    return train_stage("4_triton", *BATCH, "--launch", "run", max_steps=4, program="fused_step.py")


@pytest.mark.parametrize("programs, docs_per_tile", [(3, 1), (2, 2), (1, 4)])
def test_a_batch_split_among_programs_equals_one_program(one_program_batches_of_7, programs, docs_per_tile):
    """Batches of 7 for 4 steps: one program doing every document alone against programs each
    summing their share and a second kernel reducing them (3 programs of 1 document a tile, 2
    of 2, 1 of 4): the same losses and weights to float32 rounding; and a rerun of the widest
    split gives the same bits (no atomics: the partial sums are added in one order)."""
    alone_run, alone = one_program_batches_of_7
    split = ("--programs", str(programs), "--docs-per-tile", str(docs_per_tile))
    runs = [train_stage("4_triton", *BATCH, *split, max_steps=4, program="fused_step.py")
            for _ in range(2 if programs == 3 else 1)]
    split_run, split_trainer = runs[0]
    assert split_trainer.programs == programs and alone.programs == 1
    np.testing.assert_allclose(split_run.losses, alone_run.losses, rtol=0, atol=2e-6)
    torch.testing.assert_close(split_trainer.params, alone.params, rtol=0, atol=2e-6)
    for rerun, rerun_trainer in runs[1:]:
        assert torch.equal(split_trainer.params, rerun_trainer.params) and split_run.losses == rerun.losses


def test_fused_refuses_models_it_does_not_implement(setup):
    _, config, _, state = setup
    deeper = GPTConfig(config.vocab_size, n_layer=2)
    with pytest.raises(ValueError, match="one-layer"):
        FusedTrainer(torch.zeros(10), deeper, 10)
