"""Chapter 1's exercises, checked against chapter 1's own Value engine and functions.

An answer's Values come back from its process as a graph of plain records (data, children,
local_grads); `as_values` rebuilds them as chapter 1's own Values here, on the judge's own input
leaves, so backward and its gradients are computed by the chapter's code, not the answer's."""

import math

import numpy as np

from chapters import load

from .harness import Case, Crashed, Learner, Node, Other, Prediction, over_cases, random_cases
from .verdict import Mismatch, NotWritten, compare, describe_type, judge_prediction


def stage1():
    return load("1_pure_python")


def as_values(result, what: str) -> list:
    """The answer's returned graph (harness.Node records) as chapter 1's own Values, its leaves
    the judge's input Values; a list of results in, a list out. Mismatch where a node does not
    read as a Value: its data a number, its children a tuple (or list) of Values, one local
    gradient per child."""
    Value = stage1().Value
    built: dict[int, object] = {}

    def build(root: Node):
        stack = [(root, False)]
        while stack:
            node, ready = stack.pop()
            if id(node) in built:
                continue
            if node.input is not None:
                built[id(node)] = node.input
                continue
            if isinstance(node.data, Other) or not isinstance(node.data, (int, float)):
                raise Mismatch(f"a node's data is {node.data!r}, expected a number")
            if not isinstance(node.children, list):
                raise Mismatch(f"the node's children are {node.children!r}, expected a tuple of the Values it was "
                               f"computed from")
            if not isinstance(node.local_grads, list) or len(node.local_grads) != len(node.children):
                raise Mismatch(f"the node's local_grads are {node.local_grads!r}: expected a tuple with one number "
                               f"per child ({len(node.children)} here)")
            if not ready:
                stack.append((node, True))
                stack.extend((child, False) for child in node.children if id(child) not in built)
                continue
            built[id(node)] = Value(node.data, tuple(built[id(c)] for c in node.children), tuple(node.local_grads))
        return built[id(root)]

    results = result if isinstance(result, list) else [result]
    if not all(isinstance(r, Node) for r in results):
        expected = "a list of Values, one per input" if isinstance(result, list) else "a Value: the result is a " \
                                                                                       "node of the graph"
        raise Mismatch(f"{what} returned {describe_type(result)}, expected {expected}")
    values = [build(r) for r in results]
    return values if isinstance(result, list) else values[0]


def check_tanh(learner: Learner) -> str:
    Value = stage1().Value
    learner.load()
    tanh = learner.attribute("tanh")

    def run(case: Case) -> None:
        x = case["x"]
        v = Value(x)
        y = as_values(learner.call(tanh, v), "tanh")
        nodes = y.backward()
        t = math.tanh(x)
        compare("tanh(x)", y.data, t, atol=1e-12, rtol=1e-12)
        compare("dtanh/dx", v.grad, 1 - t * t, atol=1e-12, rtol=1e-12, slips={
            "1 - x^2: the local derivative squares the input, not the output tanh(x)": 1 - x * x,
            "1 - tanh(x): the output is squared in the derivative": 1 - t,
            "1 + tanh(x)^2: the derivative's sign": 1 + t * t,
            "0: the node's children must hold the input x, or backward cannot reach it": 0.0})
        if nodes != 2:
            raise Mismatch(f"tanh made {nodes - 1} nodes, expected 1: write it as one primitive op with its own local "
                           f"derivative, not from exp and division (the graph is x and the result: 2 nodes)")

    cases = [Case(x=x) for x in (0.0, 0.7, -0.5, 2.0, -3.0, 20.0, -20.0)]
    over_cases(run, cases)
    return f"tanh's value and gradient at {len(cases)} points from -20 to 20 against math.tanh, as one node"


# The graph of exercise 1.2: u = a * b, v = u + c, L = v * a, at a = 3, b = -2, c = 5.
BY_HAND = {"a": 3.0, "b": -2.0, "c": 5.0}


def gradients_by_hand() -> dict:
    """dL/da, dL/db, dL/dc of exercise 1.2's graph, by chapter 1's Value.backward."""
    Value = stage1().Value
    a, b, c = (Value(BY_HAND[k]) for k in "abc")
    L = ((a * b) + c) * a
    L.backward()
    return {"a": a.grad, "b": b.grad, "c": c.grad}


def check_backprop_by_hand(learner: Prediction) -> str:
    learner.load()
    guesses = learner.attribute("GRADIENTS")
    if not isinstance(guesses, dict) or set(guesses) != {"a", "b", "c"}:
        raise Mismatch(f"GRADIENTS is {guesses!r}: keep the stub's dict with the keys 'a', 'b' and 'c'")
    answer = gradients_by_hand()
    if all(g is None for g in guesses.values()):
        raise NotWritten("GRADIENTS still holds None: write your three numbers")
    pointer = "Walk it again from L (check.py 1.2 --hint; --reveal shows the answer)."
    slips = {
        "a": {-6.0: "you followed only the path through u: a also reaches L directly (L = v * a), and the paths add",
              -1.0: "you followed only the direct path: a also reaches L through u = a * b, and the paths add",
              7.0: "the magnitude is right, the sign is not"},
        "b": {-6.0: "du/db is a (u = a * b), not b", -9.0: "the magnitude is right, the sign is not"},
        "c": {-1.0: "dL/dv is a (L = v * a), not v", -3.0: "the magnitude is right, the sign is not"},
    }
    for name in "abc":
        judge_prediction(f"dL/d{name}", guesses[name], answer[name], slips[name], pointer)
    return "dL/da, dL/db and dL/dc, as chapter 1's Value.backward computes them on the same graph"


def reveal_backprop_by_hand() -> str:
    g = gradients_by_hand()
    return (f"dL/da = {g['a']:g}, dL/db = {g['b']:g}, dL/dc = {g['c']:g}. With u = -6, v = -1: dL/dv = a = 3; "
            f"dL/dc = dL/dv = 3; dL/du = dL/dv = 3; dL/db = dL/du * a = 9; dL/da = dL/du * b + v = -6 + -1 = -7, "
            f"its two paths added.")


def adam_reference(grads, num_steps, p=0.5, correct=True, eps_inside=False, decay=0, square=True):
    """(p, m, v) after each step of Adam as chapter 1 writes it, or of a slip of it."""
    s = stage1()
    m = v = 0.0
    out = []
    for step, g in enumerate(grads):
        lr_t = s.LEARNING_RATE * (1 - (step + decay) / num_steps) if decay is not None else s.LEARNING_RATE
        m = s.BETA1 * m + (1 - s.BETA1) * g
        v = s.BETA2 * v + (1 - s.BETA2) * (g * g if square else g)
        m_hat = m / (1 - s.BETA1 ** (step + 1)) if correct else m
        v_hat = v / (1 - s.BETA2 ** (step + 1)) if correct else v
        denominator = (v_hat + s.EPS_ADAM) ** 0.5 if eps_inside else abs(v_hat) ** 0.5 + s.EPS_ADAM
        p = p - lr_t * m_hat / denominator
        out.append((p, m, v))
    return out


def check_adam(learner: Learner) -> str:
    s = stage1()
    adam_step, Value = s.adam_step, s.Value
    learner.forbidden = [(s, "adam_step", "chapter 1's adam_step")]
    learner.load()
    adam_update = learner.attribute("adam_update")

    def run(case: Case) -> None:
        rng = np.random.default_rng(case["seed"])
        grads = [float(g) for g in rng.standard_normal(case["steps"]) * 10.0 ** rng.integers(-3, 3, case["steps"])]
        if case["seed"] == 0:
            grads[-1] = 0.0  # a zero gradient: the moments decay, the step does not stop
        num_steps = case["num_steps"]
        w, m, v = Value(0.5), [0.0], [0.0]
        p, mm, vv = 0.5, 0.0, 0.0
        slips = {
            "Adam without bias correction (m and v are not divided by 1 - beta^(step + 1))":
                adam_reference(grads, num_steps, correct=False),
            "eps inside the square root: sqrt(v_hat + eps), not sqrt(v_hat) + eps":
                adam_reference(grads, num_steps, eps_inside=True),
            "no learning-rate decay: the rate is due to fall linearly to 0 over num_steps":
                adam_reference(grads, num_steps, decay=None),
            "the decay one step ahead: step is 0-based, so the first step uses the full learning rate":
                adam_reference(grads, num_steps, decay=1),
            "v averages g, not g^2": adam_reference(grads, num_steps, square=False),
        }
        for step, g in enumerate(grads):
            w.grad = g
            adam_step([w], m, v, step, num_steps)
            result = learner.call(adam_update, p, g, mm, vv, step, num_steps)
            if not isinstance(result, tuple) or len(result) != 3:
                raise Mismatch(f"adam_update returned {describe_type(result)}, expected the tuple (p, m, v)")
            p, mm, vv = result
            for i, name in ((1, "m"), (2, "v"), (0, "p")):
                compare(f"{name} after step {step + 1}", result[i], (w.data, m[0], v[0])[i], atol=1e-15, rtol=1e-12,
                        slips={what: steps[step][i] for what, steps in slips.items()})

    cases = [Case(steps=1, num_steps=10, seed=1), Case(steps=5, num_steps=10, seed=0),
             Case(steps=3, num_steps=3, seed=2), *random_cases(13, 4, {"steps": (2, 12), "num_steps": (12, 1000)})]
    try:
        over_cases(run, cases, minimum={"steps": 1})
    except Crashed as err:
        if "ZeroDivisionError" in str(err):
            err.args = (f"{err} -- at step 0, 1 - beta^step is 1 - 1 = 0: the correction is 1 - beta^(step + 1)",)
        raise
    return (f"p, m and v after every step of {len(cases)} gradient sequences (zero, tiny and large gradients; runs of "
            f"3 to 1000 steps) against chapter 1's adam_step")


def check_rmsnorm(learner: Learner) -> str:
    s = stage1()
    rmsnorm, Value = s.rmsnorm, s.Value
    learner.forbidden = [(s, "rmsnorm", "chapter 1's rmsnorm")]
    learner.load()
    yours = learner.attribute("rmsnorm")

    def values(case):
        rng = np.random.default_rng(case["seed"])
        x = rng.standard_normal(case["C"]) * case["scale"]
        return [float(v) for v in x], [float(w) for w in rng.standard_normal(case["C"])]

    def run(case: Case) -> None:
        x, weights = values(case)
        xs, ref = [Value(v) for v in x], [Value(v) for v in x]
        ys = as_values(learner.call(yours, xs), "rmsnorm")
        expected = rmsnorm(ref)
        sum(y * w for y, w in zip(ys, weights)).backward()
        sum(y * w for y, w in zip(expected, weights)).backward()
        a = np.array(x)
        compare("rmsnorm(x)", [y.data for y in ys], [y.data for y in expected], atol=1e-12, rtol=1e-10, slips={
            "x / sqrt(mean(x)^2 + eps): the mean of x, squared, is not the mean of the squares":
                a / np.sqrt(a.mean() ** 2 + 1e-5),
            "x / (sqrt(mean(x^2)) + eps): eps goes inside the square root": a / (np.sqrt((a * a).mean()) + 1e-5),
            "x / sqrt(sum(x^2) + eps): a sum where the mean is due (divide by len(x))":
                a / np.sqrt((a * a).sum() + 1e-5),
            "x * sqrt(mean(x^2) + eps): ** 0.5 where ** -0.5 is due": a * np.sqrt((a * a).mean() + 1e-5)})
        compare("d(sum of w * rmsnorm(x))/dx", [v.grad for v in xs], [v.grad for v in ref], atol=1e-12, rtol=1e-10,
                slips={"0: the result is not connected to x in the graph (build it from Value ops, not floats)":
                       np.zeros(len(x))})

    cases = [Case(C=1, scale=1.0, seed=0), Case(C=3, scale=1.0, seed=1), Case(C=16, scale=3.0, seed=2),
             Case(C=27, scale=0.01, seed=3), Case(C=4, scale=0.0, seed=4),
             *[Case(C=c["C"], scale=1.0, seed=c["seed"]) for c in random_cases(14, 3, {"C": (2, 40)})]]
    over_cases(run, cases, minimum={"C": 1})
    return (f"rmsnorm and its gradient on {len(cases)} vectors of 1 to 40 numbers (zeros, tiny and large ones "
            f"included) against chapter 1's own rmsnorm")
