"""Stage 3: the nn.Module model equals stage 2 (gradients to 1e-10 in float64), its own training
loop follows stage 1's 1000-step run to 1e-6 in float64, float32 stays within 0.01 of
microgpt's final loss, and --compile (the same loop, forward and backward compiled) trains as
eager does."""

import json

import numpy as np
import pytest
import torch

import named_grads
from conftest import REPO_ROOT, load_stage, stage_losses
from shared import runner

stage2 = load_stage("2_numpy")
stage3 = load_stage("3_pytorch")
CPU = torch.device("cpu")


def test_parameter_count_is_the_spec_model(setup):
    _, config, _, state = setup
    model = stage3.GPT(config)
    assert sum(p.numel() for p in model.parameters()) == 4192
    assert all(m.bias is None for m in model.modules() if isinstance(m, torch.nn.Linear))


@pytest.mark.parametrize("doc_index, doc", [(0, None), (None, "christopheralexander"), (None, "x")])
def test_float64_gradients_equal_stage2(setup, doc_index, doc):
    tokenizer, config, docs, state = setup
    tokens = tokenizer.encode_doc(docs[doc_index] if doc is None else doc)
    _, p2 = stage2.make_params(state, config)
    loss2 = stage2.batch_loss([tokens], p2, config)
    loss2.backward()
    grads2 = named_grads.from_flat(stage2.flat_grad(p2), config)
    model = stage3.load_weights(stage3.GPT(config).double(), state)
    _, loss3 = model(*stage3.batch_tensors([tokens], config.block_size, CPU))
    loss3.backward()
    assert loss3.item() == pytest.approx(float(loss2.data), abs=1e-12)
    for name, grad in named_grads.stage3(model).items():
        np.testing.assert_allclose(grad, grads2[name], rtol=0, atol=1e-10, err_msg=name)


def test_float64_1000_steps_equal_stage1_run():
    """Stage 3's own training loop, float64, against the reference run (stage 1's committed file)."""
    stage1_losses = json.loads((REPO_ROOT / "1_pure_python" / "results.json").read_text())["losses"]
    losses = stage_losses("3_pytorch", 1000, "--device", "cpu", "--dtype", "float64")
    assert [round(x, 4) for x in losses[:3]] == [3.3660, 3.4243, 3.1778]
    np.testing.assert_allclose(losses, stage1_losses, rtol=0, atol=1e-6)


def test_float32_run_ends_within_0_01_of_microgpt():
    losses = stage_losses("3_pytorch", 1000, "--device", "cpu", "--dtype", "float32")
    assert abs(losses[-1] - 2.6497) < 0.01


def test_compiled_step_trains_like_eager_in_one_graph():
    """--compile (forward and backward compiled as one graph, each batch cut to its width rounded
    up to a multiple of 4) against the eager run over 20 steps of 4 names: float64 to 1e-12
    (losses and trained weights), float32 to float32 rounding. Dynamo breaks no graph
    (loss.backward() is traced into it) and compiles one program per width, all at the calls
    before step 1: no step after them compiles again."""
    from torch._dynamo.utils import counters

    from conftest import train_stage

    argv = ("--device", "cpu", "--batch-size", "4")
    torch._dynamo.reset()  # as a reader's first run: nothing compiled in this process before
    counters.clear()
    run, compiled = train_stage("3_pytorch", *argv, "--dtype", "float64", "--compile", max_steps=20)
    assert dict(counters["graph_break"]) == {}  # every line of the step traced into the graph
    widths = run.env["batch_widths"]  # compiled before step 1, one call each
    assert len(widths) > 1 and all(w % stage3.WIDTH_MULTIPLE == 0 for w in widths)  # 20 steps of 4 names: several
    assert counters["stats"]["unique_graphs"] == len(widths)  # and no program compiled after them
    eager_run, eager = train_stage("3_pytorch", *argv, "--dtype", "float64", max_steps=20)
    np.testing.assert_allclose(run.losses, eager_run.losses, rtol=0, atol=1e-12)
    for (name, p), q in zip(compiled.named_parameters(), eager.parameters()):  # what sampling draws from
        np.testing.assert_allclose(p.detach().numpy(), q.detach().numpy(), rtol=0, atol=1e-12, err_msg=name)
    assert run.env["compile"] is True and run.env["compile_s"] > 0 and "forward_ms" in eager_run.record.results([])
    np.testing.assert_allclose(stage_losses("3_pytorch", 20, *argv, "--compile"), stage_losses("3_pytorch", 20, *argv),
                               rtol=0, atol=2e-6)


@pytest.mark.parametrize("a_shape, b_shape, left_alone", [
    ((8, 16, 4), (8, 4, 16), False),  # q kᵀ: the result 16 x 16
    ((8, 16, 16), (8, 16, 4), False),  # attention times v: the result 16 x 4
    ((2, 12, 12), (2, 12, 4), False),  # a batch of width 12
    ((2, 100, 4), (2, 4, 100), True),  # a side past SMALL_SIDE: the library's call stays
])
def test_the_compile_pass_writes_small_products_as_loops(a_shape, b_shape, left_alone):
    """small_products_as_loops, the pass the compile adds on one CPU thread, on a traced bmm: every small
    batched matmul rewritten (no aten.bmm left), the result equal to torch.bmm in float64."""
    from torch.fx.experimental.proxy_tensor import make_fx

    gen = torch.Generator().manual_seed(0)
    a, b = (torch.randn(shape, dtype=torch.float64, generator=gen) for shape in (a_shape, b_shape))
    graph_module = make_fx(torch.bmm, tracing_mode="fake")(a, b)  # each node's meta holds its shape
    stage3.small_products_as_loops()(graph_module.graph)
    graph_module.recompile()
    bmm_left = graph_module.graph.find_nodes(op="call_function", target=torch.ops.aten.bmm.default)
    assert len(bmm_left) == left_alone
    np.testing.assert_allclose(graph_module(a, b).numpy(), torch.bmm(a, b).numpy(), rtol=0, atol=1e-12)


def test_the_documents_are_tokenized_once_and_a_step_takes_its_rows(names_path):
    """train()'s table: every document one row, padded to the longest document's positions
    (PADDING targets after a short name); a step's rows cut to its own longest document are
    exactly batch_tensors of the step's documents (the eager batch); a compiled batch's width is
    that, rounded up to a multiple of 4."""
    run = runner.start(stage3.__file__, stage3.FLAGS, ["--data", str(names_path), "--samples", "0", "--device", "cpu"])
    run.docs = ["emma", "x", "christopheralexander"]  # 4, 1 and 20 characters: the last is cut to block_size
    inputs, targets, lengths = stage3.tokenized_documents(run)
    assert inputs.shape == targets.shape == (3, 16) and lengths == [5, 2, 16]
    assert targets[0, :5].tolist() == [4, 12, 12, 0, 26] and targets[0, 5:].eq(stage3.PADDING).all()
    rows, T = [0, 1], 5  # a step of "emma" and "x": its longest document, emma's 5 positions
    expected = stage3.batch_tensors([run.tokenizer.encode_doc(doc) for doc in ("emma", "x")], 16, CPU)
    assert stage3.longest(torch.tensor(lengths)[rows]) == T
    for got, want in zip((inputs[rows, :T], targets[rows, :T]), expected):
        assert torch.equal(got, want)
    assert [stage3.compiled_width(torch.tensor([n])) for n in (1, 4, 5, 8, 13, 16)] == [4, 4, 8, 8, 16, 16]


def test_compile_flag_reports_compile_time(tmp_path, names_path, capsys):
    """A line before the compile's silence, the compile timed apart, said once in the banner."""
    out = tmp_path / "r.json"
    runner.train_and_sample(stage3.__file__, stage3.FLAGS, stage3.train, stage3.sample,
                            ["--data", str(names_path), "--steps", "3", "--samples", "1", "--compile",
                             "--device", "cpu", "--out", str(out)])
    res = json.loads(out.read_text())
    assert res["env"]["compile"] is True and res["env"]["compile_s"] > 0
    assert round(res["losses"][0], 4) == 3.3660
    first, banner = capsys.readouterr().out.splitlines()[:2]
    assert first.startswith("compiling the step for 1 batch width before step 1") and banner.count("compile") == 1
    assert f"batch widths {res['env']['batch_widths'][0]}," in banner  # the first 3 steps: one width


def test_the_pytorch_primer_gives_chapter_2s_gradients():
    """Chapter 3's primer runs as printed, and its gradients are chapter 2's worked example's."""
    from conftest import run_worked_examples

    (primer,) = run_worked_examples("3_pytorch")
    chapter2 = run_worked_examples("2_numpy")[1]
    assert primer.splitlines()[:2] == chapter2.splitlines()[1:3]
