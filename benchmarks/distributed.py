"""Chapter 5's measurements: where a data-parallel step's time goes, on this machine, per rank.

    python benchmarks/distributed.py --out benchmarks/results/distributed-cpu-<date>.json
    python benchmarks/distributed.py --quick --out /tmp/distributed.json      (a smoke run: a few steps)

Every number comes from chapter 5's own `train` (and chapter 3's, for the one-process row), in
real processes: ranks forked from this one and joined in one gloo process group
(5_distributed/launch.py's in_forked_ranks), one thread each. It records:

- `runs`: chapter 3, then chapter 5 with 1 process, and with 2 in every mode, at --batch-size
  6 in float32 (the chapter's run), each rank's per-step times -- forward, backward,
  communication, optimizer -- and the bytes each rank handed to its sockets during training
  (`wchar` of /proc/self/io: every byte gloo sends goes through a write), per step; each
  setting run --repeats times, interleaved, keeping the least disturbed (a shared machine);
- `all_reduce`: one all_reduce of 4 bytes to 64 MB between 2 processes, timed on each rank
  (the median of many), with the bytes each sent: the latency alpha (the 4-byte time) and the
  bandwidth beta (from the 64 MB time) of this machine's gloo;
- `step1`: step 1 of the chapter's run taken apart: each rank's documents, their target
  positions, their mean loss and its weight, and the sum that is chapter 3's loss;
- `bugs`: 200 steps of float64 at 2 processes, right and with two classic mistakes;
- `chapter3_run`: chapter 3's 1000-step run at the same batch, a whole results file (the
  notebook's comparison);
- `predictions`: an alpha-beta ring all-reduce of the chapter's gradient at 8, 64 and 1,024
  GPUs, with NCCL's own per-hop latencies and NVIDIA's published link speeds (PREDICTION,
  cited below): predictions, not measurements.

It also runs the program itself, as the README tells a reader to (torchrun, 2 processes,
--batch-size 6, 1000 steps), into 5_distributed/results.json, the chapter's committed run.
"""

import argparse
import contextlib
import io
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))
from report.distributed import ring_prediction  # noqa: E402
from shared import cli, runner, saving  # noqa: E402
from shared.environment import environment  # noqa: E402
from tools import stages  # noqa: E402

stage3 = stages.load("3_pytorch")
stage5 = stages.load("5_distributed")
import launch  # noqa: E402  (5_distributed/launch.py: on the path once stage 5 is loaded)
import torch  # noqa: E402
import torch.distributed as dist  # noqa: E402

BATCH = 6  # the chapter's run: 6 names a step, shared by the ranks
PHASES = ("forward_ms", "backward_ms", "communication_ms", "optimizer_ms")
MODES_AT_2 = ("hand", "ddp", "zero", "zero-torch", "fsdp")

# PREDICTION inputs, as published. NCCL's own cost model for a ring all-reduce with its
# low-latency protocol (LL), which it picks for small messages such as ours: a base latency,
# and a latency per step of the ring (2(N-1) steps), over NVLink inside a node and over the
# network between nodes.
NCCL_SOURCE = ("NVIDIA/nccl, src/graph/tuning.cc (commit b6475625), baseLat and hwLat for Ring/LL: "
               "https://github.com/NVIDIA/nccl/blob/b6475625fbcaa2c3c0e50eed2fa1255d7514d4a2/src/graph/tuning.cc")
NCCL_BASE_US, NCCL_HOP_NVLINK_US, NCCL_HOP_NETWORK_US = 6.6, 0.6, 2.7
# Link speeds: an H100/H200 SXM has 18 NVLink 4 links, 900 GB/s both ways together (450 GB/s
# each way); between nodes, one 400 Gb/s InfiniBand port per GPU (50 GB/s each way).
LINKS_SOURCE = ("NVIDIA's MLPerf Inference v4.1 system description of its 8x H200 SXM server: '18x 4th Gen "
                "NVLink, 900GB/s', '400Gbe Infiniband': https://github.com/mlcommons/inference_results_v4.1/blob/"
                "main/closed/NVIDIA/systems/H200-SXM-141GBx8_TRT_MaxQ.json")
NVLINK_GB_S, NETWORK_GB_S, GPUS_PER_NODE = 450.0, 50.0, 8


def wchar() -> int:
    """Bytes this process has handed to write() and its kin so far: files, pipes and sockets."""
    with open("/proc/self/io") as io_file:
        return int(next(line for line in io_file if line.startswith("wchar")).split()[1])


def chapter_argv(steps: int, *extra: str) -> list[str]:
    return ["--device", "cpu", "--steps", str(steps), "--samples", "0", "--batch-size", str(BATCH), *extra]


def train_rank(mode: str, steps: int, dtype: str = "float32", wrong: str | None = None) -> dict:
    """Chapter 5's train on this rank: its per-step series, its bytes sent per step, its Adam bytes."""
    run = runner.start(stage5.__file__, stage5.FLAGS, chapter_argv(steps, "--mode", mode, "--dtype", dtype))
    right, world = stage5.forward_backward, dist.get_world_size()
    if wrong == "mean of means":  # each rank's mean loss, the ranks averaged: every share weighs 1/N
        stage5.forward_backward = lambda model, i, t, weight, scale, phase: right(model, i, t, 1 / world, scale, phase)
    if wrong == "averaged gradients":  # DDP's average taken for the sum: the loss not multiplied by N
        stage5.forward_backward = lambda model, i, t, weight, scale, phase: right(model, i, t, weight, 1, phase)
    sent = wchar()
    try:
        with contextlib.redirect_stdout(io.StringIO()):  # (a StringIO: no write() reaches the kernel)
            stage5.train(run)
    finally:
        stage5.forward_backward = right
    sent = wchar() - sent
    results = run.record.results([])
    return {"losses": results["losses"], "step_ms": rounded(results["step_ms"]),
            **{phase: rounded(results.get(phase, [])) for phase in PHASES},
            "bytes_per_step": sent / steps, "adam_state_bytes": run.env["adam_state_bytes"]}


def rounded(values: list[float]) -> list[float]:
    return [round(v, 4) for v in values]


def chapter3_run(steps: int) -> dict:
    """Chapter 3's own train, the same steps: the one-process reference."""
    run = runner.start(stage3.__file__, stage3.FLAGS, chapter_argv(steps))
    with contextlib.redirect_stdout(io.StringIO()):
        stage3.train(run)
    results = run.record.results([])
    return {"losses": results["losses"], "step_ms": rounded(results["step_ms"]),
            **{phase: rounded(results.get(phase, [])) for phase in PHASES if phase in results}}


def chapter3_full(steps: int) -> dict:
    """Chapter 3's whole run at the chapter's batch, as a results file: what the notebook sets beside
    chapter 5's committed run (the same names, weights and Adam: one loss curve)."""
    run = runner.start(stage3.__file__, stage3.FLAGS, chapter_argv(steps))
    with contextlib.redirect_stdout(io.StringIO()):
        stage3.train(run)
    return run.record.results([])


def measure_runs(steps: int, repeats: int) -> list[dict]:
    """Every setting `repeats` times, interleaved (1, 2, ..., 1, 2, ...), so that a busy spell of a
    shared machine falls on every setting alike; each keeps its least disturbed repeat (the lowest
    median step time of its slower rank) and records every repeat's median."""
    settings = [(1, "chapter 3"), (1, "hand"), *((2, mode) for mode in MODES_AT_2)]
    tries: dict = {setting: [] for setting in settings}
    for repeat in range(repeats):
        for world, mode in settings:
            print(f"repeat {repeat + 1}/{repeats}: {world} process(es), {mode} ...", flush=True)
            ranks = [chapter3_run(steps)] if mode == "chapter 3" else launch.in_forked_ranks(
                world, lambda r, mode=mode: train_rank(mode, steps), timeout=1800)
            tries[(world, mode)].append(ranks)
    runs = []
    for (world, mode), ranks_of in tries.items():
        medians = [max(statistics.median(rank["step_ms"][10:]) for rank in ranks) for ranks in ranks_of]
        ranks = ranks_of[medians.index(min(medians))]
        losses = ranks[0]["losses"]
        for rank in ranks:
            del rank["losses"]
        runs.append({"world": world, "mode": mode, "losses": losses, "ranks": ranks, "repeat_median_ms": medians})
    return runs


def all_reduce_times(sizes: list[int], budget_bytes: float) -> list[dict]:
    """On this rank: {bytes, median_us, sent_bytes} of one all_reduce of `bytes` bytes (float32),
    repeated until `budget_bytes` have been reduced or 200 times, after 3 untimed."""
    rows = []
    for nbytes in sizes:
        buffer = torch.ones(nbytes // 4)
        repeats = int(min(200, max(5, budget_bytes // nbytes)))
        for _ in range(3):
            dist.all_reduce(buffer)
        times, sent = [], 0
        for _ in range(repeats):
            dist.barrier()  # every rank starts together: a time is the collective's, not a wait for the other
            before, started = wchar(), time.perf_counter()
            dist.all_reduce(buffer)
            times.append(time.perf_counter() - started)
            sent += wchar() - before
        rows.append({"bytes": nbytes, "median_us": statistics.median(times) * 1e6, "repeats": repeats,
                     "sent_bytes": sent / repeats})
    return rows


def collective_bytes(nbytes: int) -> dict[str, float]:
    """On this rank: the bytes one call of each collective ZeRO and DDP use hands to the sockets,
    for a buffer of `nbytes` (float32; a shard is 1/N of it)."""
    world = dist.get_world_size()
    whole, shard = torch.ones(nbytes // 4), torch.ones(nbytes // 4 // world)
    calls = {"all_reduce": lambda: dist.all_reduce(whole),
             "reduce_scatter": lambda: dist.reduce_scatter_single(shard, whole),
             "all_gather": lambda: dist.all_gather_single(whole, shard),
             "broadcast": lambda: dist.broadcast(whole, 0)}
    sent = {}
    for name, call in calls.items():
        call()
        before = wchar()
        for _ in range(10):
            call()
        sent[name] = (wchar() - before) / 10
    return sent


def measure_all_reduce(quick: bool) -> dict:
    gradient = 4 * 4192  # the chapter's gradient in float32: 16,768 bytes
    largest = 2**22 if quick else 2**26  # 4 MB or 64 MB
    sizes = [4, 64, 1024, gradient, *(2**k for k in range(16, 27, 2) if 2**k <= largest)]
    ranks = launch.in_forked_ranks(2, lambda r: (all_reduce_times(sizes, 2**22 if quick else 2**27),
                                                 collective_bytes(gradient)), timeout=1800)
    collectives = [sent for _, sent in ranks]
    ranks = [times for times, _ in ranks]
    rows = [{"bytes": n, "median_us": [rank[i]["median_us"] for rank in ranks],
             "sent_bytes": [rank[i]["sent_bytes"] for rank in ranks], "repeats": ranks[0][i]["repeats"]}
            for i, n in enumerate(sizes)]
    world, small, large = 2, rows[0], rows[-1]
    alpha_us = max(small["median_us"])
    beta = 2 * (world - 1) / world * large["bytes"] / ((max(large["median_us"]) - alpha_us) * 1e-6)  # bytes/s
    return {"world": world, "rows": rows, "gradient_bytes": gradient, "collective_bytes": collectives,
            "alpha_us": alpha_us, "beta_GB_s": beta / 1e9,
            "how": "alpha: the 4-byte all_reduce's time (the slower rank's median); beta: 2(N-1)/N x the largest "
                   "size over the largest all_reduce's time less alpha"}


def predictions(gradient_bytes: int) -> dict:
    nccl = {"base_us": NCCL_BASE_US, "hop_nvlink_us": NCCL_HOP_NVLINK_US, "hop_network_us": NCCL_HOP_NETWORK_US}
    links = {"nvlink_GB_s": NVLINK_GB_S, "network_GB_s": NETWORK_GB_S, "gpus_per_node": GPUS_PER_NODE}
    rows = [ring_prediction(world, nbytes, nccl, links) for nbytes in (gradient_bytes, 4 * 124_000_000)
            for world in (8, 64, 1024)]  # the chapter's gradient, and GPT-2 small's (124M parameters, float32)
    return {"PREDICTION": "not measured: an alpha-beta model of a ring with published figures", "rows": rows,
            "nccl_latency": {**nccl, "source": NCCL_SOURCE}, "links": {**links, "source": LINKS_SOURCE}}


def step1() -> dict:
    """Step 1 of the chapter's run (2 processes, B = 6), taken apart in float64 with chapter 3's
    model at the initial weights: each rank's documents and target positions, its mean loss and
    the weight that makes the shares add up to the step's loss."""
    run = runner.start(stage3.__file__, stage3.FLAGS, [*chapter_argv(1), "--dtype", "float64"])
    model = stage3.load_weights(stage3.GPT(run.config).double(), run.initial_weights)
    names = run.docs[:BATCH]
    batch = [run.tokenizer.encode_doc(name) for name in names]
    lengths = [min(run.config.block_size, len(tokens) - 1) for tokens in batch]
    total = sum(lengths)
    ranks = []
    for rank in range(2):
        rows = stage5.share(list(range(BATCH)), rank, 2)
        mean = model(*stage3.batch_tensors([batch[i] for i in rows], run.config.block_size, "cpu"))[1].item()
        positions = sum(lengths[i] for i in rows)
        ranks.append({"rank": rank, "names": [names[i] for i in rows], "positions": positions, "mean_loss": mean,
                      "weight": positions / total, "weighted_loss": mean * positions / total})
    whole = model(*stage3.batch_tensors(batch, run.config.block_size, "cpu"))[1].item()
    return {"ranks": ranks, "positions": total, "batch_loss": whole,
            "sum_of_weighted": sum(r["weighted_loss"] for r in ranks),
            "mean_of_means": statistics.fmean(r["mean_loss"] for r in ranks)}


def bugs(steps: int) -> dict:
    """2 processes, float64: the right run, and two classic mistakes (see chapter 5's README)."""
    out = {}
    for name, mode, wrong in (("right", "hand", None), ("mean of means", "hand", "mean of means"),
                              ("averaged gradients", "ddp", "averaged gradients")):
        out[name] = launch.in_forked_ranks(2, lambda r, m=mode, w=wrong: train_rank(m, steps, "float64", w),
                                           timeout=1800)[0]["losses"]
    return {"steps": steps, "batch_size": BATCH, "world": 2, "dtype": "float64", "losses": out}


def committed_run(out: Path, steps: int) -> None:
    """The chapter's run as the README gives it, through torchrun, into `out`."""
    subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
                    str(REPO_ROOT / "5_distributed" / "main.py"), "--batch-size", str(BATCH), "--steps", str(steps),
                    "--out", str(out)], check=True, stdout=subprocess.DEVNULL,
                   env={**os.environ, "OMP_NUM_THREADS": "1"})


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", required=True, help="the results JSON to write")
    parser.add_argument("--steps", type=int, default=300, help="steps of each timed run")
    parser.add_argument("--repeats", type=int, default=3, help="runs of each setting, interleaved; the least "
                                                                 "disturbed is kept")
    parser.add_argument("--quick", action="store_true", help="smoke run: 20 steps, small all-reduces, no committed run")
    args = parser.parse_args(argv)
    cli.guard_record_out(parser, args.out)  # before anything is computed
    torch.set_num_threads(1)
    steps = 20 if args.quick else args.steps
    report = {"env": environment("cpu", threads=1), "steps": steps, "batch_size": BATCH, "dtype": "float32"}
    print("all_reduce sizes ...", flush=True)
    report["all_reduce"] = measure_all_reduce(args.quick)
    report["predictions"] = predictions(report["all_reduce"]["gradient_bytes"])
    report["step1"] = step1()
    print("training runs ...", flush=True)
    report["runs"] = measure_runs(steps, 1 if args.quick else args.repeats)
    print("chapter 3, 1000 steps ...", flush=True)
    report["chapter3_run"] = chapter3_full(20 if args.quick else 1000)
    print("the two bugs ...", flush=True)
    report["bugs"] = bugs(20 if args.quick else 200)
    saving.write_json_atomic(args.out, report)
    if not args.quick:
        print("the chapter's committed run (torchrun, 1000 steps) ...", flush=True)
        committed_run(REPO_ROOT / "5_distributed" / "results.json", 1000)
    print(args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
