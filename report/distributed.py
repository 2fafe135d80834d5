"""Chapter 5's generated README blocks, from benchmarks/distributed.py's results file.

    <!-- BEGIN distributed benchmarks/results/distributed-cpu-DATE.json#runs -->

The part after `#` says which: `step1` (step 1 taken apart over two ranks), `bugs` (two classic
mistakes against the right run), `allreduce` (one all_reduce's time and bytes by size, alpha
and beta), `collectives` (the bytes each collective sends), `runs` (where a step's time goes,
per mode and rank), `memory` (Adam's bytes per rank) and `predictions` (the alpha-beta ring at
8, 64 and 1,024 GPUs: a prediction, with its sources).
"""

import math
import statistics

from shared.results import SETTLING_STEPS
from shared.schema import load_results

PHASES = ("forward_ms", "backward_ms", "communication_ms", "optimizer_ms")


def distributed_block(path: str) -> str:
    from report.readmes import REPO_ROOT

    file, _, part = path.partition("#")
    report = load_results(REPO_ROOT / file, check=False)
    return {"step1": step1, "bugs": bugs, "allreduce": all_reduce, "collectives": collectives, "runs": runs,
            "memory": memory, "predictions": predictions}[part](report, file)


def step1(r: dict, file: str) -> str:
    s = r["step1"]
    lines = [f"| step 1, 2 ranks (`{file}`) | names | target positions | mean loss of its share | weight | "
             f"weighted loss |", "|---|---|---|---|---|---|"]
    for rank in s["ranks"]:
        lines.append(f"| rank {rank['rank']} | {', '.join(rank['names'])} | {rank['positions']} | "
                     f"{rank['mean_loss']:.6f} | {rank['positions']}/{s['positions']} = {rank['weight']:.6f} | "
                     f"{rank['weighted_loss']:.6f} |")
    lines.append(f"| the sum over ranks | | {s['positions']} | | 1 | **{s['sum_of_weighted']:.6f}** |")
    lines.append(f"\nChapter 3's loss of the six names in one batch: **{s['batch_loss']:.6f}**. The plain mean of the "
                 f"two ranks' means: {s['mean_of_means']:.6f}, off by {abs(s['mean_of_means'] - s['batch_loss']):.1e}.")
    return "\n".join(lines) + "\n"


def bugs(r: dict, file: str) -> str:
    b = r["bugs"]
    right = b["losses"]["right"]
    worst = {name: max(abs(x - y) for x, y in zip(losses, right)) for name, losses in b["losses"].items()
             if name != "right"}
    step = {name: next(i for i, (x, y) in enumerate(zip(losses, right)) if abs(x - y) > 0) + 1
            for name, losses in b["losses"].items() if name != "right"}
    return (f"Over {b['steps']} steps ({b['dtype']}, {b['world']} ranks, B = {b['batch_size']}; `{file}`), the mean "
            f"of the ranks' means moves the losses by up to **{worst['mean of means']:.3f}** (from step "
            f"{step['mean of means']} on); DDP's average taken for the sum, by up to "
            f"**{worst['averaged gradients']:.1e}** (from step {step['averaged gradients']} on).\n")


def all_reduce(r: dict, file: str) -> str:
    a = r["all_reduce"]
    lines = [f"| one all_reduce, {a['world']} processes (`{file}`) | median µs, rank 0 / rank 1 | bytes each sent | "
             f"sent / buffer |", "|---|---|---|---|"]
    for row in a["rows"]:
        mark = " (the gradient)" if row["bytes"] == a["gradient_bytes"] else ""
        lines.append(f"| {size(row['bytes'])}{mark} | {row['median_us'][0]:,.0f} / {row['median_us'][1]:,.0f} | "
                     f"{row['sent_bytes'][0]:,.0f} | {row['sent_bytes'][0] / row['bytes']:.2f} |")
    gradient = next(row for row in a["rows"] if row["bytes"] == a["gradient_bytes"])
    transfer_us = 2 * (a["world"] - 1) / a["world"] * a["gradient_bytes"] / (a["beta_GB_s"] * 1e9) * 1e6
    lines.append(f"\nα = **{a['alpha_us']:,.0f} µs** (the 4-byte all_reduce), β = **{a['beta_GB_s']:.2f} GB/s** (from "
                 f"the {size(a['rows'][-1]['bytes'])} one). For the {a['gradient_bytes']:,}-byte gradient the model "
                 f"says α + n/β = {a['alpha_us']:,.0f} + {transfer_us:.0f} µs: "
                 f"{a['alpha_us'] / (a['alpha_us'] + transfer_us):.0%} latency; measured: "
                 f"{max(gradient['median_us']):,.0f} µs.")
    return "\n".join(lines) + "\n"


def collectives(r: dict, file: str) -> str:
    a = r["all_reduce"]
    sent = a["collective_bytes"][0]
    n = a["gradient_bytes"]
    ring = {"all_reduce": 2 * (a["world"] - 1) / a["world"], "reduce_scatter": (a["world"] - 1) / a["world"],
            "all_gather": (a["world"] - 1) / a["world"]}
    lines = [f"| one collective of the {n:,}-byte gradient, gloo, {a['world']} processes (`{file}`) | bytes rank 0 "
             f"sent | a ring sends |", "|---|---|---|"]
    for name, factor in ring.items():
        lines.append(f"| `{name}` | {sent[name]:,.0f} | {factor * n:,.0f} |")
    return "\n".join(lines) + "\n"


def median(values: list[float]) -> float:
    return statistics.median(values[SETTLING_STEPS:] or values)


def runs(r: dict, file: str) -> str:
    lines = [f"| {r['steps']} steps, B = {r['batch_size']}, {r['dtype']} (`{file}`) | rank | median ms per step | "
             f"forward | backward | communication | optimizer | bytes sent per step |", "|---" * 8 + "|"]
    for run in r["runs"]:
        processes = f"{run['world']} process{'es' * (run['world'] > 1)}"
        label = "chapter 3" if run["mode"] == "chapter 3" else f"{processes}, `--mode {run['mode']}`"
        for rank, times in enumerate(run["ranks"]):
            phases = " | ".join(f"{median(times[p]):.2f}" if times.get(p) else "–" for p in PHASES)
            sent = f"{times['bytes_per_step']:,.0f}" if "bytes_per_step" in times else "–"
            lines.append(f"| {label if rank == 0 else ''} | {rank} | {median(times['step_ms']):.2f} | {phases} | "
                         f"{sent} |")
    slowest = {(run["world"], run["mode"]): max(median(t["step_ms"]) for t in run["ranks"]) for run in r["runs"]}
    one, two = slowest[(1, "chapter 3")], slowest[(2, "hand")]
    lines.append(f"\nTwo processes by hand take **{two / one:.1f}x** as long per step as chapter 3's one process "
                 f"({two:.2f} ms, the slower rank's median, against {one:.2f} ms).")
    env = r["env"]
    lines.append(f"\nMeasured on {env['cpu']} ({env['cpu_count']} cores, one thread per process), {env['date'][:10]}; "
                 f"each setting the least disturbed of {len(r['runs'][0]['repeat_median_ms'])} interleaved runs.")
    return "\n".join(lines) + "\n"


def memory(r: dict, file: str) -> str:
    lines = [f"| Adam's state per rank, {r['dtype']} (`{file}`) | rank 0 | rank 1 |", "|---|---|---|"]
    for run in r["runs"]:
        if run["world"] == 2:
            cells = " | ".join(f"{times['adam_state_bytes']:,} bytes" for times in run["ranks"])
            lines.append(f"| `--mode {run['mode']}` | {cells} |")
    return "\n".join(lines) + "\n"


def predictions(r: dict, file: str) -> str:
    p = r["predictions"]
    lines = [f"| **PREDICTION** (`{file}`): a ring all-reduce of | GPUs | machines | ring steps | latency µs | "
             f"transfer µs | latency's share |", "|---|---|---|---|---|---|---|"]
    for row in p["rows"]:
        what = f"{size(row['bytes'])} ({'this model' if row['bytes'] < 1e6 else 'GPT-2 small'})"
        lines.append(f"| {what} | {row['world']:,} | {row['nodes']} | {row['ring_steps']:,} | "
                     f"{row['latency_us']:,.1f} | {row['transfer_us']:,.1f} | {row['latency_share']:.0%} |")
    nccl, links = p["nccl_latency"], p["links"]
    lines.append(f"\nInputs: latency {nccl['base_us']} µs + {nccl['hop_nvlink_us']} µs per ring step inside a machine, "
                 f"{nccl['hop_network_us']} µs per step between machines ({nccl['source']}); bandwidth "
                 f"{links['nvlink_GB_s']:.0f} GB/s each way inside a machine of {links['gpus_per_node']} GPUs, "
                 f"{links['network_GB_s']:.0f} GB/s between machines ({links['source']}).")
    return "\n".join(lines) + "\n"


def ring_prediction(world: int, nbytes: float, nccl: dict, links: dict) -> dict:
    """PREDICTION: a ring all-reduce of `nbytes` over `world` GPUs, links["gpus_per_node"] to a
    machine: NCCL's latency for a ring (a base, and one per step of the ring, the steps that leave a
    machine at the network's, as NCCL counts them), and the bandwidth of the slowest link it crosses."""
    nodes = math.ceil(world / links["gpus_per_node"])
    steps = 2 * (world - 1)  # reduce-scatter, then all-gather: N - 1 steps each
    network_steps = 2 * nodes if nodes > 1 else 0  # (NCCL's nInterSteps)
    latency_us = nccl["base_us"] + (steps - network_steps) * nccl["hop_nvlink_us"] + \
        network_steps * nccl["hop_network_us"]
    link = links["nvlink_GB_s"] if nodes == 1 else links["network_GB_s"]
    sent = 2 * (world - 1) / world * nbytes  # each GPU sends (and receives) this much
    transfer_us = sent / (link * 1e9) * 1e6
    return {"world": world, "nodes": nodes, "ring_steps": steps, "bytes": nbytes, "sent_bytes_per_gpu": sent,
            "latency_us": latency_us, "transfer_us": transfer_us, "link_GB_s": link,
            "latency_share": latency_us / (latency_us + transfer_us)}


def size(nbytes: float) -> str:
    for unit, scale in (("MB", 2**20), ("KB", 2**10)):
        if nbytes >= scale:
            value = nbytes / scale
            return f"{value:,.0f} {unit}" if value == int(value) or value >= 100 else f"{value:.1f} {unit}"
    return f"{nbytes:,.0f} B"
