"""Chapter 5's exercises, checked on real ranks: processes forked in the answer's process and
joined in one gloo process group, as chapter 5's tests run them (5_distributed/launch.py).

Each rank runs the learner's function on its own inputs; what every rank returned, what it
wrote into its arguments and the bytes of each message it sent come back as data
(harness.Learner.ranks). The references are computed here, in float64: the sum of the ranks'
buffers (what dist.all_reduce gives), chapter 3's loss on the whole step, Adam on the summed
gradients, and, for the prediction, the all-reduces of one real step of chapter 5 recorded as
it ran."""

import functools
import math

import numpy as np
import torch
import torch.distributed as dist
import torch.distributed.distributed_c10d as c10d

from chapters import load, spec_run

from .harness import Case, Learner, Prediction, over_cases
from .verdict import Mismatch, compare, judge_prediction, number, plain, require_prediction

TIMEOUT_S = 3  # a check's ranks that have not finished by then wait for each other: a deadlock
PADDING = -100

DEADLOCK = ("the ranks had not finished after {timeout} s: each waits for another (or one runs a loop that never "
            "ends). gloo's send returns only once the receiving rank has taken the message, so when every rank "
            "sends first and receives after, every rank waits in its send. Send and receive at once (dist.isend "
            "and dist.irecv, then .wait() on both), or let even ranks send first and odd ranks receive first")


def collectives(*names: str) -> list[tuple]:
    """Stand-ins for torch.distributed's collectives (both doors: torch.distributed and its c10d)."""
    return [(module, name, f"dist.{name}") for module in (dist, c10d) for name in names if hasattr(module, name)]


def chunks(P: int, N: int) -> list[slice]:
    """buffer.tensor_split(N)'s chunks, as slices: sizes differ by at most one, the larger first."""
    bounds = [c * (P // N) + min(c, P % N) for c in range(N + 1)]
    return [slice(a, b) for a, b in zip(bounds, bounds[1:])]


def ring(arrays: list[np.ndarray], all_gather: str = "copy") -> list[np.ndarray]:
    """The ring all-reduce of chapter 5's README on numbers, `all_gather`: "copy" (the ring),
    "add" (a known slip: the all-gather adds what arrives) or "none" (the reduce-scatter alone)."""
    N = len(arrays)
    buffers = [a.copy() for a in arrays]
    parts = chunks(len(arrays[0]), N)
    for phase in ("reduce-scatter", "all-gather"):
        if phase == "all-gather" and all_gather == "none":
            break
        for step in range(N - 1):
            messages = [(rank, (rank - step) % N if phase == "reduce-scatter" else (rank + 1 - step) % N)
                        for rank in range(N)]
            values = [buffers[rank][parts[c]].copy() for rank, c in messages]
            for (rank, c), value in zip(messages, values):
                to = buffers[(rank + 1) % N]
                to[parts[c]] = to[parts[c]] + value if phase == "reduce-scatter" or all_gather == "add" else value
    return buffers


def check_ring_all_reduce(learner: Learner) -> str:
    learner.forbidden = collectives("all_reduce", "all_reduce_coalesced", "reduce_scatter", "reduce_scatter_tensor",
                                    "reduce_scatter_single", "all_gather", "all_gather_into_tensor",
                                    "all_gather_single", "all_gather_coalesced", "reduce", "broadcast", "all_to_all",
                                    "all_to_all_single", "gather", "scatter", "all_gather_object",
                                    "broadcast_object_list")
    learner.ranks_used = True
    learner.load()
    yours = learner.attribute("ring_all_reduce")

    def run(case: Case) -> None:
        N, P, dtype = case["N"], case["P"], getattr(torch, case["dtype"])
        rng = np.random.default_rng(case["seed"])
        arrays = [torch.tensor(rng.standard_normal(P), dtype=dtype).double().numpy() for _ in range(N)]
        ranks = learner.ranks(yours, [[torch.tensor(a, dtype=dtype)] for a in arrays], timeout=TIMEOUT_S)
        if ranks is None:
            raise Mismatch(DEADLOCK.format(timeout=TIMEOUT_S))
        total = np.sum(arrays, axis=0)
        atol, rtol = (1e-12, 1e-12) if dtype == torch.float64 else (1e-5 * N, 1e-5)
        added, alone = ring(arrays, "add"), ring(arrays, "none")
        parts = chunks(P, N)
        if N > 1 and not any(0 in rank.updated for rank in ranks):
            raise Mismatch("every rank's buffer is unchanged: ring_all_reduce sums into the buffer it is given, in "
                           "place, as dist.all_reduce does (a tensor it returns is not seen)")
        results = [plain(rank.updated[0]) if 0 in rank.updated else arrays[r] for r, rank in enumerate(ranks)]
        finished = [[c for c, part in enumerate(parts) if part.stop > part.start and np.allclose(
            results[r][part], total[part], atol=atol, rtol=rtol)] for r in range(N)]
        if N > 1 and P >= N and all(len(f) == 1 for f in finished) and len({f[0] for f in finished}) == N:
            raise Mismatch(f"each rank holds the sum in one chunk only (rank 0 in chunk {finished[0][0]}, rank 1 in "
                           f"chunk {finished[1][0]}): that is the reduce-scatter alone; the all-gather, N - 1 more "
                           f"steps, passes each finished chunk around the ring to every rank")
        for r, got in enumerate(results):
            compare(f"rank {r}'s buffer", got, total, atol=atol, rtol=rtol, slips={
                "the reduce-scatter alone: the all-gather passes each finished chunk around the ring": alone[r],
                "the all-gather adding what arrives: the chunks it passes on are finished sums, to be copied":
                    added[r],
                "this rank's own buffer: nothing was added to it": arrays[r]})
        sent = [sum(rank.sent) for rank in ranks]
        size = torch.tensor([], dtype=dtype).element_size()
        ring_total = 2 * (N - 1) * P * size
        if sum(sent) == N * (N - 1) * P * size != ring_total:
            raise Mismatch(f"right sums, but the ranks sent {sum(sent):,} bytes in all where a ring sends "
                           f"{ring_total:,}: each rank passed its whole buffer around, N - 1 times; the ring sends "
                           f"chunks of 1/N of it, 2(N - 1) times, 2(N - 1)/N of the buffer per rank")
        if sum(sent) != ring_total:
            raise Mismatch(f"right sums, but the ranks sent {sum(sent):,} bytes in all (through dist.send and "
                           f"dist.isend), where a ring of {N} sends 2(N - 1) = {2 * (N - 1)} buffers of {P * size:,} "
                           f"bytes, {ring_total:,}: every step, each rank sends one chunk of 1/N of its buffer")
        most = 2 * (N - 1) * -(-P // N) * size
        if max(sent) > most:
            r = sent.index(max(sent))
            raise Mismatch(f"right sums and the ring's bytes in all, but rank {r} sent {sent[r]:,} of them where a "
                           f"ring's rank sends at most {most:,} (2(N - 1) chunks of 1/N): a ring shares the sending "
                           f"equally; here one rank carries it, as a star through one rank does")

    cases = [Case(N=1, P=5, dtype="float64", seed=0), Case(N=2, P=1, dtype="float64", seed=1),
             Case(N=2, P=6, dtype="float64", seed=2), Case(N=3, P=2, dtype="float64", seed=3),
             Case(N=3, P=7, dtype="float64", seed=4), Case(N=4, P=16, dtype="float64", seed=5),
             Case(N=3, P=1000, dtype="float32", seed=6), Case(N=4, P=4193, dtype="float64", seed=7)]
    over_cases(run, cases, minimum={"N": 1, "P": 1})
    return (f"the sums on every rank against the sum of the ranks' buffers, and the bytes each rank sent against "
            f"the ring's 2(N - 1)/N of the buffer, on {len(cases)} cases of 1 to 4 ranks (buffers of 1 to 4,193 "
            f"numbers, fewer than the ranks included)")


# --------------------------------------------------------------------------- 5.2


@functools.cache
def named_batches() -> tuple:
    """(chapter 3's float64 model from SPEC.md's weights, the block size, the first names' tokens)."""
    chapter3 = load("3_pytorch")
    tokenizer, config, docs, state = spec_run()
    model = chapter3.load_weights(chapter3.GPT(config).double(), state)
    return model, config.block_size, [tokenizer.encode_doc(name) for name in list(docs)[:400]]


def positions_of(targets: torch.Tensor) -> int:
    return int((targets != PADDING).sum())


def check_loss_weights(learner: Learner) -> str:
    stage5, chapter3 = load("5_distributed"), load("3_pytorch")
    learner.ranks_used = True
    learner.load()
    yours = learner.attribute("loss_weights")
    model, block_size, tokens = named_batches()

    def run(case: Case) -> None:
        N, B, k = case["N"], case["B"], case["k"]
        rows = list(range(case["seed"] * B, case["seed"] * B + B))
        micro = [[stage5.share(stage5.share(rows, j, k), r, N) for j in range(k)] for r in range(N)]
        batches = [[chapter3.batch_tensors([tokens[i] for i in mine], block_size, "cpu") for mine in rank]
                   for rank in micro]
        ranks = learner.ranks(yours, [[[t for _, t in rank]] for rank in batches], timeout=TIMEOUT_S)
        if ranks is None:
            raise Mismatch(DEADLOCK.format(timeout=TIMEOUT_S))
        counts = [[positions_of(t) for _, t in rank] for rank in batches]
        total, names = sum(map(sum, counts)), [[len(m) for m in rank] for rank in micro]
        numels = [[t.numel() for _, t in rank] for rank in batches]
        weights = []
        for r, rank in enumerate(ranks):
            try:
                weights.append(plain(rank.result))
            except Mismatch as e:
                raise Mismatch(f"rank {r}: {e}; expected a list of {k} weights, one per micro-batch") from None
            compare(f"rank {r}'s weights", weights[r], [c / total for c in counts[r]], atol=1e-9, rtol=1e-6, slips={
                "1/(N k) for every micro-batch: equal weights are right only when every share has as many positions":
                    [1 / (N * k)] * k,
                "names counted, not positions: a long name trains more positions, so it weighs more":
                    [n / B for n in names[r]],
                "the padding counted: a padded position is no target, and -100 marks it":
                    [n / sum(map(sum, numels)) for n in numels[r]],
                "this rank's own positions as the whole: without an all_reduce each rank's weights sum to 1, and "
                "the ranks' losses add up to N times the step's": [c / sum(counts[r]) for c in counts[r]],
                "the rank's weight split equally over its micro-batches: a micro-batch weighs its own positions":
                    [sum(counts[r]) / total / k] * k,
                "one micro-batch as the whole step: with k micro-batches, their positions add up too":
                    [c / sum(row[j] for row in counts) for j, c in enumerate(counts[r])]})
        weighted = 0.0
        with torch.no_grad():
            for r, rank in enumerate(batches):
                for (inputs, targets), weight in zip(rank, weights[r]):
                    weighted += float(model(inputs, targets)[1]) * float(weight)
            whole, whole_targets = chapter3.batch_tensors([tokens[i] for i in rows], block_size, "cpu")
            step_loss = float(model(whole, whole_targets)[1])
        if not math.isclose(weighted, step_loss, rel_tol=1e-6, abs_tol=1e-9):  # (float32 weights are right too)
            raise Mismatch(f"the weighted losses add up to {number(weighted, step_loss)}, chapter 3's loss on the "
                           f"step's {B} names is {number(step_loss, weighted)}")

    cases = [Case(N=1, B=1, k=1, seed=0), Case(N=2, B=2, k=1, seed=1), Case(N=2, B=5, k=1, seed=2),
             Case(N=3, B=7, k=1, seed=3), Case(N=2, B=6, k=2, seed=4), Case(N=3, B=8, k=2, seed=5),
             Case(N=2, B=9, k=3, seed=6), Case(N=4, B=10, k=1, seed=7)]
    over_cases(run, cases, minimum={"N": 1, "B": 1, "k": 1}, valid=lambda c: c["B"] >= c["N"] * c["k"])
    return (f"every rank's weights against its positions over the step's, on {len(cases)} steps of real names (1 to "
            f"4 ranks, shares of unequal size, 1 to 3 micro-batches), and the weighted losses of chapter 3's model "
            f"adding up to its loss on the whole step")


# --------------------------------------------------------------------------- 5.3


def adam(w, g, m, v, step: int, lr_t: float, correct: bool = True, step_power: int = 1, eps_inside=False):
    """Chapter 3's Adam on numbers, and its known slips: (new w, new m, new v)."""
    chapter3 = load("3_pytorch")
    b1, b2, eps = chapter3.BETA1, chapter3.BETA2, chapter3.EPS_ADAM
    m = b1 * m + (1 - b1) * g
    v = b2 * v + (1 - b2) * g * g
    with np.errstate(divide="ignore", invalid="ignore"):  # (the slip beta^step divides by 0 at step 0)
        m_hat = m / (1 - b1 ** (step + step_power)) if correct else m
        v_hat = v / (1 - b2 ** (step + step_power)) if correct else v
        root = np.sqrt(v_hat + eps) if eps_inside else np.sqrt(v_hat) + eps
        return w - lr_t * m_hat / root, m, v


def check_zero_step(learner: Learner) -> str:
    learner.forbidden = [*collectives("all_reduce"), (torch.optim, "Adam", "torch.optim.Adam"),
                         (torch.optim, "AdamW", "torch.optim.AdamW"),
                         (torch.optim._functional, "adam", "torch.optim._functional.adam")]
    learner.ranks_used = True
    learner.load()
    yours = learner.attribute("zero_step")

    def run(case: Case) -> None:
        N, S, step = case["N"], case["S"], case["step"]
        rng = np.random.default_rng(case["seed"])
        weights, lr_t = rng.standard_normal(N * S), 0.01 * (1 - step / 10)
        grads = [rng.standard_normal(N * S) for _ in range(N)]
        moments = [(rng.standard_normal(S) * 0.1 * (step > 0), rng.random(S) * 0.1 * (step > 0)) for _ in range(N)]
        args = [[torch.tensor(weights), torch.tensor(grads[r]), torch.tensor(m), torch.tensor(v), step, lr_t]
                for r, (m, v) in enumerate(moments)]
        ranks = learner.ranks(yours, args, timeout=TIMEOUT_S)
        if ranks is None:
            raise Mismatch(DEADLOCK.format(timeout=TIMEOUT_S))
        total = np.sum(grads, axis=0)
        shard = [slice(r * S, (r + 1) * S) for r in range(N)]

        def updated(g=total, **slip):  # every rank's (new shard, m, v), and the new weights they make together
            new = [adam(weights[shard[r]], g[r][shard[r]] if isinstance(g, list) else g[shard[r]], *moments[r], step,
                        lr_t, **slip) for r in range(N)]
            return new, np.concatenate([w for w, _, _ in new])

        right, whole = updated()
        slips = {"the step's gradients are the sum over the ranks (reduce-scatter's SUM), not their mean":
                 updated(total / N), "this rank's own gradients: the others' were never added (reduce-scatter)":
                 updated(grads), "Adam without its bias correction": updated(correct=False),
                 "the bias correction of the step before: beta^step, where step counts from 0 and this step counts "
                 "too (beta^(step + 1))": updated(step_power=0),
                 "sqrt(v + eps): eps goes outside the square root": updated(eps_inside=True)}
        for r, rank in enumerate(ranks):
            for index, name in ((2, "m"), (3, "v")):
                if index not in rank.updated:
                    raise Mismatch(f"rank {r}'s {name} is unchanged: Adam's moments are updated in place, for the next "
                                   f"step")
                compare(f"rank {r}'s {name}", rank.updated[index], right[r][index - 1], atol=1e-12, rtol=1e-10,
                        slips={what: new[r][index - 1] for what, (new, _) in slips.items()})
            got = rank.updated.get(0)
            if got is None:
                raise Mismatch(f"rank {r}'s weights are unchanged: the step updates them in place")
            alone = weights.copy()
            alone[shard[r]] = right[r][0]
            compare(f"rank {r}'s weights", got, whole, atol=1e-12, rtol=1e-10, slips={
                **{what: new_whole for what, (_, new_whole) in slips.items()},
                "only this rank's shard updated: the all-gather brings every rank's new shard to every rank": alone})

    cases = [Case(N=1, S=3, step=0, seed=0), Case(N=2, S=1, step=0, seed=1), Case(N=2, S=4, step=3, seed=2),
             Case(N=3, S=5, step=0, seed=3), Case(N=3, S=2, step=7, seed=4), Case(N=4, S=1048, step=1, seed=5)]
    over_cases(run, cases, minimum={"N": 1, "S": 1, "step": 0})
    return (f"every rank's weights, m and v against Adam on the ranks' summed gradients, on {len(cases)} cases of 1 "
            f"to 4 ranks (shards of 1 to 1,048 numbers, steps 0 to 7), in float64")


# --------------------------------------------------------------------------- 5.4

WORLD, BATCH = 4, 8  # the step of 5.4: --nproc-per-node 4 --batch-size 8


@functools.cache
def hand_step_all_reduces() -> list[tuple[int, int]]:
    """(numbers, bytes per number) of the buffer of every all_reduce rank 0 made in one real step
    of chapter 5's --mode hand on WORLD ranks in float32 (each rank makes the same calls): what
    the chapter keeps under the name `all_reduce` (shared/keep.py) as it runs."""
    from tools.stages import train_keeping

    load("5_distributed")
    import launch  # 5_distributed/launch.py, on the path once chapter 5 is loaded

    def step(rank: int) -> list[tuple[int, int]]:
        _, _, kept = train_keeping("5_distributed", ["--mode", "hand", "--batch-size", str(BATCH)], max_steps=1)
        return [(record.value.numel(), record.value.element_size()) for record in kept["all_reduce"]]

    return launch.in_forked_ranks(WORLD, step, timeout=60)[0]


def ring_bytes(calls) -> int:
    return sum(2 * (WORLD - 1) * numbers * size for numbers, size in calls)


def check_ring_bytes(learner: Prediction) -> str:
    learner.load()
    guess = learner.attribute("RING_BYTES_PER_STEP_AT_FOUR_RANKS")
    require_prediction("RING_BYTES_PER_STEP_AT_FOUR_RANKS", guess)
    calls = hand_step_all_reduces()
    answer = ring_bytes(calls)
    buffer = sum(numbers * size for numbers, size in calls)
    P = buffer // 4 - 1
    judge_prediction("RING_BYTES_PER_STEP_AT_FOUR_RANKS", guess, answer, {
        answer // WORLD: "that is one rank's share (2(N - 1)/N of the buffer): the question asks for all four ranks "
                         "added up",
        answer // 2: "that is N - 1 buffers, one phase alone: the reduce-scatter and the all-gather each send that "
                     "much",
        2 * (WORLD - 1) * P * 4: "the buffer holds one number more than the gradients: the step's loss rides in it "
                                 "(ByHand)",
        2 * answer: "either float64 (the default is float32, 4 bytes a number) or every rank sending its whole buffer "
                    "N - 1 times (a ring sends chunks of 1/N)",
        2 * WORLD * buffer: "2N steps: a ring of N ranks takes N - 1 steps in each phase"},
        "Count the numbers of ByHand's buffer, their bytes, and what each rank sends in a ring of four again "
        "(check.py 5.4 --hint).")
    return (f"{answer:,} bytes: {len(calls)} all_reduce of {buffer // 4:,} float32 numbers in one real step of chapter "
            f"5 on {WORLD} ranks, recorded as it ran, and a ring's 2(N - 1) buffers for it")


def reveal_ring_bytes() -> str:
    calls = hand_step_all_reduces()
    (numbers, size), = calls
    return (f"{ring_bytes(calls):,}. One real step of chapter 5 (--mode hand, float32) on {WORLD} ranks makes "
            f"{len(calls)} all_reduce, of ByHand's flat buffer: the {numbers - 1:,} gradients and the step's loss, "
            f"{numbers:,} numbers of {size} bytes, {numbers * size:,} bytes. A ring cuts it into N = {WORLD} chunks; "
            f"in each of its 2(N - 1) = {2 * (WORLD - 1)} steps every rank sends one chunk, and the {WORLD} ranks "
            f"together send every chunk once, one whole buffer: {2 * (WORLD - 1)} x {numbers * size:,} = "
            f"{ring_bytes(calls):,} bytes, 2(N - 1)/N = {2 * (WORLD - 1) / WORLD:g} buffers per rank.")
