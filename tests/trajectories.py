"""Each stage's training loop, reduced to its losses, for tests that compare trajectories.

Every function trains from SPEC.md's initial weights on the shuffled documents, with the
learning-rate schedule of a 1000-step run, for `steps` steps of `batch_size` documents
(SPEC.md's order), and returns the losses.
"""

import numpy as np
import torch

from conftest import load_stage

NUM_STEPS = 1000  # the schedule's length: lr_t = lr * (1 - step / NUM_STEPS)


def stage1_losses(spec, steps, batch_size=1):
    stage1 = load_stage("1_pure_python")
    params = stage1.make_params(spec.state)
    flat = stage1.flatten(params)
    m, v, losses = [0.0] * len(flat), [0.0] * len(flat), []
    for step in range(steps):
        loss = stage1.batch_loss(spec.batch(step, batch_size), params, spec.config)
        loss.backward()
        stage1.adam_step(flat, m, v, step, NUM_STEPS)
        losses.append(loss.data)
    return losses


def stage2_losses(spec, steps, dtype=np.float64, batch_size=1):
    stage2 = load_stage("2_numpy")
    flat, params = stage2.make_params(spec.state, spec.config, dtype)
    m, v, losses = np.zeros_like(flat), np.zeros_like(flat), []
    for step in range(steps):
        loss = stage2.batch_loss(spec.batch(step, batch_size), params, spec.config)
        loss.backward()
        stage2.adam_step(flat, stage2.flat_grad(params), m, v, step, NUM_STEPS)
        for p in params.values():
            p.grad = None
        losses.append(float(loss.data))
    return losses


def stage3_losses(spec, steps, dtype=torch.float32, compile=False, batch_size=1):
    stage3 = load_stage("3_pytorch")
    model = stage3.load_weights(stage3.GPT(spec.config).to(dtype), spec.state)
    optimizer, schedule = stage3.make_optimizer(model, NUM_STEPS, torch.device("cpu"))
    forward = torch.compile(model, dynamic=True) if compile else model
    losses = []
    for step in range(steps):
        _, loss = forward(*stage3.batch_tensors(spec.batch(step, batch_size), spec.config.block_size, "cpu"))
        loss.backward()
        optimizer.step()
        schedule.step()
        optimizer.zero_grad(set_to_none=True)
        losses.append(loss.item())
    return losses


def stage4_losses(spec, steps, device, batch_size=1):
    stage4 = load_stage("4_triton")
    step_fn = stage4.TrainStep(stage4.GPT(spec.config, spec.state, device=device), NUM_STEPS,
                               cuda_graph=torch.device(device).type == "cuda", batch_size=batch_size)
    return [step_fn(spec.batch(step, batch_size), step) for step in range(steps)]


def fused_losses(spec, steps, device, batch_size=1, programs=1, docs_per_tile=1):
    """The one-kernel step (4_triton/fused_step.py), one launch per step (two with several programs)."""
    stage4 = load_stage("4_triton")
    from fused_step import FusedTrainer

    model = stage4.GPT(spec.config, spec.state, device=device)
    trainer = FusedTrainer(model.params.flat.data, spec.config, NUM_STEPS, batch_size, programs, docs_per_tile)
    trainer.load_documents([spec.tokenizer.encode_doc(doc) for doc in spec.docs])
    for step in range(steps):
        trainer.launch(step, 1)
    return trainer.losses[:steps].tolist()
