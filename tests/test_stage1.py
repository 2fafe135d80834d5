"""Stage 1: every Value op against torch float64, the whole model against the reference,
and microgpt's published losses."""

import math
import sys
import threading

import pytest
import torch

import named_grads
from conftest import load_stage, stage_losses
from reference import loss_and_grads
from shared.tokenizer import positions

stage1 = load_stage("1_pure_python")
Value = stage1.Value

# (name, Value expression, torch expression) over two inputs a, b
BINARY_CASES = [
    ("add", lambda a, b: a + b, lambda a, b: a + b),
    ("radd", lambda a, b: 1.5 + a, lambda a, b: 1.5 + a),
    ("sub", lambda a, b: a - b, lambda a, b: a - b),
    ("rsub", lambda a, b: 2.0 - a, lambda a, b: 2.0 - a),
    ("mul", lambda a, b: a * b, lambda a, b: a * b),
    ("rmul", lambda a, b: 3.0 * b, lambda a, b: 3.0 * b),
    ("div", lambda a, b: a / b, lambda a, b: a / b),
    ("rdiv", lambda a, b: 2.0 / b, lambda a, b: 2.0 / b),
    ("neg", lambda a, b: -a, lambda a, b: -a),
    ("pow", lambda a, b: a**3, lambda a, b: a**3),
    ("pow_neg_half", lambda a, b: b**-0.5, lambda a, b: b**-0.5),
    ("log", lambda a, b: b.log(), lambda a, b: b.log()),
    ("exp", lambda a, b: a.exp(), lambda a, b: a.exp()),
    ("relu_pos", lambda a, b: b.relu(), lambda a, b: b.relu()),
    ("relu_neg", lambda a, b: a.relu(), lambda a, b: a.relu()),
    ("same_input_twice", lambda a, b: a * a + a, lambda a, b: a * a + a),
    ("micrograd_mix", lambda a, b: ((a * b + b**3).relu() + (a - b).exp() * 0.5) / (b + 2.0),
     lambda a, b: ((a * b + b**3).relu() + (a - b).exp() * 0.5) / (b + 2.0)),
]


@pytest.mark.parametrize("name, value_fn, torch_fn", BINARY_CASES, ids=[c[0] for c in BINARY_CASES])
def test_value_op_matches_torch(name, value_fn, torch_fn):
    a_data, b_data = -1.3, 2.7
    a, b = Value(a_data), Value(b_data)
    out = value_fn(a, b)
    out.backward()
    ta = torch.tensor(a_data, dtype=torch.float64, requires_grad=True)
    tb = torch.tensor(b_data, dtype=torch.float64, requires_grad=True)
    tout = torch_fn(ta, tb)
    tout.backward()
    assert out.data == pytest.approx(tout.item(), rel=1e-14, abs=1e-14)
    for v, t in ((a, ta), (b, tb)):
        expected = 0.0 if t.grad is None else t.grad.item()
        assert v.grad == pytest.approx(expected, rel=1e-13, abs=1e-14)


def test_backward_counts_each_node_once():
    a, b = Value(2.0), Value(3.0)
    out = a * b + a  # nodes: a, b, a*b, (a*b)+a
    assert out.backward() == 4
    assert (a.grad, b.grad) == (4.0, 2.0)


def graph_depth(root) -> int:
    """Nodes on the longest path from `root` down to a leaf: the deepest backward's recursive
    build_topo can go. Counted here with a stack of our own, not by recursion."""
    depth, stack = {}, [root]
    while stack:
        node = stack[-1]
        waiting = [child for child in node._children if child not in depth]
        if waiting:
            stack.extend(waiting)
        else:
            stack.pop()
            depth[node] = 1 + max((depth[child] for child in node._children), default=0)
    return depth[root]


def test_the_recursion_limit_covers_the_deepest_step_ten_times(setup):
    """main.py raises Python's recursion limit for backward's build_topo and says by how much a
    step needs: under 300 levels for one name, about 15 more per name of a batch. Held on the
    longest documents in the data (block_size positions each)."""
    tokenizer, config, docs, state = setup
    longest = sorted(docs, key=len)[-4:]
    depths = [graph_depth(stage1.batch_loss([tokenizer.encode_doc(doc) for doc in longest[:size]],
                                            stage1.make_params(state), config)) for size in (1, 4)]
    assert positions(tokenizer.encode_doc(longest[-1]), config.block_size) == config.block_size
    assert depths[0] < 300 and 10 < (depths[1] - depths[0]) / 3 < 20, depths
    assert 10 * depths[1] <= sys.getrecursionlimit()


def test_backward_reaches_the_recursion_limit_in_a_thread_of_default_stack():
    """A chain nearly as deep as the raised limit backpropagates, in a new thread (whose stack is
    the platform's default, smaller than the main thread's on some systems): the limit is safe."""
    result = {}

    def chain():
        x = Value(1.0)
        y = x
        for _ in range(sys.getrecursionlimit() - 100):
            y = y * 1.0
        result["nodes"], result["grad"] = y.backward(), x.grad

    thread = threading.Thread(target=chain)
    thread.start()
    thread.join()
    assert result == {"nodes": 2 * (sys.getrecursionlimit() - 100) + 1, "grad": 1.0}


def test_model_loss_and_every_gradient_match_torch_float64(setup):
    tokenizer, config, docs, state = setup
    for doc in (docs[0], "christopheralexander"):  # a short name and one longer than block_size
        tokens = tokenizer.encode_doc(doc)
        params = stage1.make_params(state)
        loss = stage1.batch_loss([tokens], params, config)
        loss.backward()
        ref_loss, ref_grads = loss_and_grads(state, [tokens], config)
        assert loss.data == pytest.approx(ref_loss, abs=1e-12)
        for name, grads in named_grads.stage1(params).items():
            torch.testing.assert_close(torch.from_numpy(grads), ref_grads[name], rtol=0, atol=1e-10, msg=name)


def test_first_three_losses_match_microgpt():
    """microgpt's published run prints 3.3660, 3.4243, 3.1778 for steps 1-3 of 1000: stage 1's
    own training loop, stopped after three steps."""
    assert [round(x, 4) for x in stage_losses("1_pure_python", 3)] == [3.3660, 3.4243, 3.1778]


def test_adam_step_updates_every_parameter_and_clears_its_gradient(setup):
    _, config, docs, state = setup
    params = stage1.make_params(state)
    flat = stage1.flatten(params)
    before = [p.data for p in flat]
    stage1.batch_loss([setup[0].encode_doc(docs[0])], params, config).backward()
    had_gradient = [p.grad != 0.0 for p in flat]
    stage1.adam_step(flat, [0.0] * len(flat), [0.0] * len(flat), 0, num_steps=1000)
    assert all(math.isfinite(p.data) and p.grad == 0.0 for p in flat)
    # a weight moves exactly when it had a gradient (rows of wte and wpe the name never used do not)
    assert [p.data != b for p, b in zip(flat, before)] == had_gradient
    assert 3000 < sum(had_gradient) < len(flat)


def test_the_worked_example_in_the_readme_prints_what_the_readme_says():
    """Chapter 1's backprop-by-hand example: its code block, run from the chapter's folder as
    the README says, prints exactly the output block below it (and the numbers worked by hand)."""
    from conftest import run_worked_examples

    (printed,) = run_worked_examples("1_pure_python")
    assert printed.split() == ["16.0", "16.0", "-16.0", "5"]  # L, dL/da (two paths: 24 - 8), dL/db, nodes
