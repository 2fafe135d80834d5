"""Chapter 2's exercises, checked against PyTorch in float64 and chapter 2's own functions (each
tested against PyTorch by tests/test_stage2.py). Chapter 2 is NumPy: torch is off limits in the
answers (the checks use it for their references, outside the learner's code)."""

import sys

import numpy as np

from chapters import load, spec_run

from .harness import Case, Learner, over_cases, random_cases
from .verdict import Mismatch, compare, describe_type, require_dtype, shape_text

NO_TORCH = (sys.modules, "torch", "torch (chapter 2 is NumPy: write it with arrays)")
BROADCAST = {"could not be broadcast": "a sum or mean over an axis without keepdims=True drops that axis, and the "
                                       "result no longer lines up with the rows it belongs to"}


def stage2():
    return load("2_numpy")


def torch64(array, grad=False):
    import torch

    return torch.tensor(array, dtype=torch.float64, requires_grad=grad)


def check_rmsnorm_backward(learner: Learner) -> str:
    import torch.nn.functional as F

    s = stage2()
    learner.forbidden = [(s, "rmsnorm", "chapter 2's rmsnorm and its backward"), NO_TORCH]
    learner.crash_slips = BROADCAST
    learner.load()
    yours = learner.attribute("rmsnorm_backward")

    def run(case: Case) -> None:
        rng = np.random.default_rng(case["seed"])
        B, T, C = case["B"], case["T"], case["C"]
        x = rng.standard_normal((B, T, C)) * 2.0
        g, w = rng.standard_normal(x.shape), rng.standard_normal(C) + 1.0
        result = learner.call(yours, g.copy(), x.copy(), w.copy())
        if not isinstance(result, tuple) or len(result) != 2:
            raise Mismatch(f"rmsnorm_backward returned {describe_type(result)}, expected the tuple (dx, dw)")
        dx, dw = result
        tx, tw = torch64(x, grad=True), torch64(w, grad=True)
        (F.rms_norm(tx, (C,), weight=tw, eps=1e-5) * torch64(g)).sum().backward()
        r = 1 / np.sqrt((x * x).mean(-1, keepdims=True) + 1e-5)
        n, gw = x * r, g * w
        plain_dx = r * (g - n * (g * n).mean(-1, keepdims=True))
        dw_shape = np.shape(dw)
        if dw_shape == (B, T, C):
            raise Mismatch(f"dL/dw: shape {shape_text(dw_shape)}, expected {shape_text((C,))} -- every row uses the "
                           f"same w, so its gradient sums over all of them (as the linear layer's dW does)")
        compare("dL/dx", dx, tx.grad, atol=1e-10, rtol=1e-8, slips={
            "the gain is missing from dL/dx: the gradient reaching x * r is g * w, not g": plain_dx,
            "g w - n mean(g w n) without the factor r (n = x r)": gw - n * (gw * n).mean(-1, keepdims=True),
            "r * g * w: the normalization's own dependence on x (the second term) is missing": r * gw,
            "the mean over every number of the batch, not per row (axis=-1, keepdims=True)":
                r * (gw - n * (gw * n).mean()),
            "a hard-coded width of 16: divide by C, the length of the last axis": hard_coded_16(g, x, w)})
        compare("dL/dw", dw, tw.grad, atol=1e-10, rtol=1e-8, slips={
            "the sum of g * x: the gain multiplies the normalized rows x * r, so dL/dw sums g * x * r":
                (g * x).reshape(-1, C).sum(0),
            "the mean over the rows: w is used once per row, and each use adds its gradient":
                (g * n).reshape(-1, C).mean(0)})

    cases = [Case(B=1, T=1, C=1, seed=0), Case(B=1, T=1, C=3, seed=1), Case(B=1, T=2, C=27, seed=2),
             Case(B=2, T=5, C=16, seed=3), Case(B=3, T=4, C=5, seed=4),
             *random_cases(21, 4, {"B": (1, 4), "T": (1, 16), "C": (2, 40)})]
    over_cases(run, cases, minimum={"B": 1, "T": 1, "C": 1})
    return (f"dL/dx and dL/dw on {len(cases)} batches, (1, 1, 1) to (4, 16, 40), widths that are not 16 included, "
            f"against F.rms_norm with a weight in float64")


def hard_coded_16(g, x, w):
    """dL/dx of 2.1 by an answer whose mean over the row divides by 16, chapter 2's width, not C."""
    r = 1 / np.sqrt((x * x).mean(-1, keepdims=True) + 1e-5)
    n, gw = x * r, g * w
    return r * (gw - n * (gw * n).sum(-1, keepdims=True) / 16)


def padded_batch(case: Case):
    """logits (B, T, V), targets (B, T) (garbage on padding), real (B, T): every row has at least
    one real position, the first row all T."""
    rng = np.random.default_rng(case["seed"])
    B, T, V = case["B"], case["T"], case["V"]
    logits = rng.standard_normal((B, T, V)) * 3 + case.get("shift", 0.0)
    targets = rng.integers(0, V, (B, T))
    n = np.concatenate([[T], rng.integers(1, T + 1, B - 1)])
    real = np.arange(T)[None, :] < n[:, None]
    return logits, targets, real


def check_cross_entropy_backward(learner: Learner) -> str:
    import torch
    import torch.nn.functional as F

    s = stage2()
    learner.forbidden = [(s, "cross_entropy", "chapter 2's cross_entropy and its backward"), NO_TORCH]
    learner.crash_slips = BROADCAST
    learner.load()
    yours = learner.attribute("cross_entropy_backward")

    def run(case: Case) -> None:
        logits, targets, real = padded_batch(case)
        smoothing = case["smoothing"]
        got = learner.call(yours, logits.copy(), targets.copy(), real.copy(), smoothing)
        lt = torch64(logits, grad=True)
        mask = torch.tensor(real)
        F.cross_entropy(lt[mask], torch.tensor(targets)[mask], label_smoothing=smoothing).backward()
        expected = lt.grad.numpy()
        n, (B, T, V) = real.sum(), logits.shape
        e = np.exp(logits - logits.max(-1, keepdims=True))
        p = e / e.sum(-1, keepdims=True)
        onehot = np.eye(V)[targets]
        q = (1 - smoothing) * onehot + smoothing / V
        on_real = real[..., None]
        with np.errstate(all="ignore"):
            unshifted = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
        compare("dL/dlogits", got, expected, atol=1e-12, rtol=1e-9, slips={
            "softmax without subtracting each row's max first: exp overflows (float64 holds exp(x) only up to "
            "x = 709), and inf / inf is NaN": np.where(on_real, unshifted - q, 0) / n,
            "not divided by the number of real positions (the loss is their mean)": expected * n,
            f"divided by B * T = {B * T}, which counts the padding, not by the {n} real positions":
                expected * n / (B * T),
            f"divided by B = {B}, the number of names, not by the {n} real positions": expected * n / B,
            "the padding's gradient is not 0 (padding has no target: nothing to learn there)": (p - q) / n,
            "the smoothing is missing: the target distribution is (1 - smoothing) at the target plus smoothing / V "
            "everywhere": np.where(on_real, p - onehot, 0) / n,
            "smoothing / (V - 1): the even share is smoothing / V, one for each of the V letters":
                np.where(on_real, p - ((1 - smoothing) * onehot + smoothing / (V - 1)), 0) / n,
            "softmax alone: the target distribution is not subtracted": np.where(on_real, p, 0) / n,
            "the even share is missing: every letter, the target included, gets smoothing / V":
                np.where(on_real, p - (1 - smoothing) * onehot, 0) / n})

    cases = [Case(B=1, T=1, V=2, smoothing=0.1, seed=0), Case(B=1, T=1, V=27, smoothing=0.0, seed=1),
             Case(B=2, T=3, V=27, smoothing=0.1, seed=2), Case(B=3, T=6, V=27, smoothing=0.3, seed=3),
             Case(B=2, T=2, V=5, smoothing=0.1, shift=750.0, seed=4),
             *[Case({**c, "smoothing": 0.2}) for c in random_cases(22, 4, {"B": (1, 5), "T": (1, 16), "V": (2, 40)})]]
    over_cases(run, cases, minimum={"B": 1, "T": 1, "V": 2})
    return (f"dL/dlogits on {len(cases)} padded batches (rows of 1 to 16 real positions, garbage targets on the "
            f"padding, smoothing 0 to 0.3, logits near 750, where exp overflows) against F.cross_entropy "
            f"with label_smoothing in float64")


def attention_case(case: Case):
    """q, k, v, g (B, H, T, D), each head's temperature tau (H,), and P = softmax(tau q k^T), causal."""
    rng = np.random.default_rng(case["seed"])
    B, H, T, D = case["B"], case["H"], case["T"], case["D"]
    q, k, v, g = (rng.standard_normal((B, H, T, D)) for _ in range(4))
    tau = rng.uniform(0.25, 1.5, H)
    S = tau[:, None, None] * (q @ k.swapaxes(-1, -2)) + np.triu(np.full((T, T), -np.inf), k=1)
    P = np.exp(S - S.max(-1, keepdims=True))
    P /= P.sum(-1, keepdims=True)
    return q, k, v, P, g, tau


def attention_reference(q, k, v, g, tau):
    """(dq, dk, dv, dtau) by PyTorch's autograd in float64, through the forward written out."""
    import torch

    tq, tk, tv, ttau = (torch64(a, grad=True) for a in (q, k, v, tau))
    T = q.shape[-2]
    future = torch.ones(T, T, dtype=torch.bool).triu(1)
    S = (ttau[:, None, None] * (tq @ tk.transpose(-1, -2))).masked_fill(future, float("-inf"))
    (S.softmax(-1) @ tv * torch64(g)).sum().backward()
    return tq.grad.numpy(), tk.grad.numpy(), tv.grad.numpy(), ttau.grad.numpy()


def check_attention_backward(learner: Learner) -> str:
    s = stage2()
    learner.forbidden = [(s, "causal_attention", "chapter 2's causal_attention and its backward"), NO_TORCH]
    learner.crash_slips = BROADCAST
    learner.load()
    yours = learner.attribute("attention_backward")

    def run(case: Case) -> None:
        q, k, v, P, g, tau = attention_case(case)
        B, H, T, D = q.shape
        result = learner.call(yours, q.copy(), k.copy(), v.copy(), P.copy(), g.copy(), tau.copy())
        if not isinstance(result, tuple) or len(result) != 4:
            raise Mismatch(f"attention_backward returned {describe_type(result)}, expected the tuple "
                           f"(dq, dk, dv, dtau)")
        dq, dk, dv, dtau = attention_reference(q, k, v, g, tau)
        t = tau[:, None, None]
        A = q @ k.swapaxes(-1, -2)  # the scores before tau scales them
        dP = g @ v.swapaxes(-1, -2)
        dS = P * (dP - (dP * P).sum(-1, keepdims=True))
        compare("dv", result[2], dv, atol=1e-10, rtol=1e-8, slips={"P g: P needs its transpose, P^T g": P @ g})
        compare("dq", result[0], dq, atol=1e-10, rtol=1e-8, slips={
            "without tau: S = tau q k^T, so dq and dk carry tau[h]": dS @ k,
            "1/sqrt(D) where tau is due: this head's scores are scaled by tau[h]": dS @ k / np.sqrt(D),
            "softmax's backward without subtracting rowsum(dP * P): dS = P * dP is only its first term":
                t * (P * dP) @ k,
            "the rowsum over the wrong axis: softmax runs along each row, the last axis":
                t * (P * (dP - (dP * P).sum(-2, keepdims=True))) @ k,
            "dS^T k: dq uses dS itself, since S = tau q k^T": t * dS.swapaxes(-1, -2) @ k})
        compare("dk", result[1], dk, atol=1e-10, rtol=1e-8, slips={
            "dS q: dS needs its transpose, dS^T q": t * dS @ q,
            "without tau: S = tau q k^T, so dq and dk carry tau[h]": dS.swapaxes(-1, -2) @ q})
        shape = np.shape(result[3])
        if shape != (H,):
            said = {(): " -- summed over the heads too: each head has its own tau[h], so sum over the names and "
                        "both position axes (0, 2, 3) and keep the heads' axis",
                    (B, H): " -- not summed over the names: every name uses the same tau[h], and each use adds",
                    (B, H, T, T): " -- not summed: tau[h] is one number, so its gradient adds up what every score "
                                  "of head h contributes"}.get(shape, "")
            raise Mismatch(f"dtau: shape {shape_text(shape)}, expected {shape_text((H,))}{said}")
        compare("dtau", result[3], dtau, atol=1e-10, rtol=1e-8, slips={
            "the sum of dL/dS alone: S = tau A with A = q k^T, so each score adds dL/dS * A": dS.sum((0, 2, 3)),
            "dL/dP where dL/dS is due: tau sits before the softmax, so its gradient goes through the softmax's "
            "backward first": (dP * A).sum((0, 2, 3)),
            "tau q k^T where q k^T is due: S = tau A, and differentiating tau A by tau leaves A = q k^T":
                (dS * t * A).sum((0, 2, 3)),
            "the mean over the names: every name uses tau[h], and each use adds its gradient":
                (dS * A).sum((2, 3)).mean(0),
            "summed over the heads too: each head has its own tau[h]":
                np.full(H, (dS * A).sum())})

    cases = [Case(B=1, H=1, T=1, D=1, seed=0), Case(B=1, H=1, T=2, D=4, seed=1), Case(B=1, H=2, T=3, D=4, seed=2),
             Case(B=2, H=4, T=5, D=4, seed=3), Case(B=1, H=1, T=7, D=3, seed=4), Case(B=2, H=4, T=16, D=4, seed=5),
             *random_cases(23, 3, {"B": (1, 3), "H": (1, 4), "T": (1, 16), "D": (1, 8)})]
    over_cases(run, cases, minimum={"B": 1, "H": 1, "T": 1, "D": 1})
    return (f"dq, dk, dv and dtau on {len(cases)} cases, one position to 16, one head to 4, each head its own tau, "
            f"against PyTorch's autograd in float64")


NAMES = {"one letter": ["x"], "one name": ["emma"], "a name longer than block_size": ["christopheralexander"],
         "names of one length": ["ava", "eli", "zoe"], "mixed": ["emma", "x", "christopheralexander", "olivia"]}


def batches(block_sizes=(16,)):
    """Cases of names (the edges learners get wrong) and random batches of SPEC.md's documents."""
    tokenizer, _, docs, _ = spec_run()
    cases = [Case(names=names, block_size=b) for names in NAMES.values() for b in block_sizes]
    rng = np.random.default_rng(24)
    for _ in range(3):
        picked = [docs[j] for j in rng.integers(0, len(docs), int(rng.integers(1, 9)))]
        cases.append(Case(names=picked, block_size=int(rng.choice([4, 8, 16]))))
    for case in cases:
        case["_tokens"] = [tokenizer.encode_doc(doc) for doc in case["names"]]
    return sorted(cases, key=lambda c: (sum(map(len, c["names"])), c["block_size"]))


class BatchCase(Case):
    def label(self) -> str:
        return f"names={self['names']}, block_size={self['block_size']}"


def check_padding(learner: Learner) -> str:
    s = stage2()
    batch_arrays = s.batch_arrays
    learner.forbidden = [(s, "batch_arrays", "chapter 2's batch_arrays"), NO_TORCH]
    learner.load()
    yours = learner.attribute("batch_arrays")

    def run(case: Case) -> None:
        tokens, block_size = case["_tokens"], case["block_size"]
        result = learner.call(yours, [list(t) for t in tokens], block_size)
        if not isinstance(result, tuple) or len(result) != 3:
            raise Mismatch(f"batch_arrays returned {describe_type(result)}, expected the tuple (inputs, targets, real)")
        inputs, targets, real = (np.asarray(a) if isinstance(a, (list, np.ndarray)) else a for a in result)
        expected = batch_arrays(tokens, block_size)
        n = np.array([min(block_size, len(t) - 1) for t in tokens])
        longest = max(len(t) - 1 for t in tokens)
        why = "chapter 2 indexes the embedding with them (wte[inputs]), and an index is an integer"
        require_dtype("inputs", inputs, "integer", why)
        require_dtype("targets", targets, "integer", "chapter 2 picks each target's logit with them, an index")
        require_dtype("real", real, "bool", "chapter 2 selects with it (logits[real]); an integer array there "
                                            "picks rows 0 and 1 instead of masking")
        for name, got, want in zip(("inputs", "targets", "real"), (inputs, targets, real), expected):
            if got.shape != want.shape:
                T = got.shape[-1] if got.ndim == 2 else None
                slip = ""
                if T == block_size:
                    slip = " -- padded to block_size: T is the longest name's n in this batch"
                elif T == longest:
                    slip = " -- a name longer than block_size still trains only block_size positions"
                elif T == max(n) + 1:
                    slip = " -- one position too many: a name of len(tokens) tokens has len(tokens) - 1 targets"
                raise Mismatch(f"{name}: shape {shape_text(got.shape)}, expected {shape_text(want.shape)}{slip}")
        off_by_one = np.arange(expected[2].shape[1])[None, :] <= n[:, None]
        compare("real", real, expected[2], atol=0, slips={
            "one position too many: real must be True for t < n, not t <= n": off_by_one,
            "the mask inverted: True on the padding": ~expected[2]})
        compare("inputs", inputs, expected[0], atol=0, slips={
            "the targets: inputs are tokens[:n], targets tokens[1:n + 1]": expected[1]})
        compare("targets", targets, expected[1], atol=0, slips={
            "the inputs: targets are the inputs shifted by one, tokens[1:n + 1]": expected[0],
            "padded with -100: that is chapter 3's ignore_index; here the padding is 0, and real masks it":
                np.where(expected[2], expected[1], -100)})

    cases = [BatchCase(c) for c in batches(block_sizes=(16, 4))]
    over_cases(run, cases)
    return (f"inputs, targets and mask, with their dtypes, on {len(cases)} batches (one letter, one name, a name "
            f"longer than block_size, block sizes 4 to 16) against chapter 2's batch_arrays")
