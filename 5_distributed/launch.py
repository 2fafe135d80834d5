"""Chapter 5's launcher: what torchrun does, in a page, and a stopped rank in one line.

A rank learns its place from its environment: RANK (0 .. N-1), WORLD_SIZE (N), and where rank
0 listens (MASTER_ADDR:MASTER_PORT). There rank 0 opens a small key-value store (a TCPStore);
every rank connects to it and posts its own address -- the rendezvous -- and then gloo (or
NCCL) opens a connection between every pair of ranks. `torchrun --standalone --nproc-per-node
N` sets these variables (and LOCAL_RANK, ...), starts N copies of the program and watches
them; `launch` below does the same, so main.py runs alike under either, and without either
as a world of one (no port at all: the store is in memory).

What this file adds to torchrun is the one-line rule of the other chapters (SPEC.md, "Bad
input"): bad input is refused before any process starts, and when a rank stops -- killed,
crashed, out of memory -- the others notice (at once if its connections close, else after
--timeout seconds), rank 0 keeps the finished steps (marked partial, written whole) and one
line says what happened; torchrun prints its own report of every process instead.

    python 5_distributed/main.py --nproc-per-node 2 --batch-size 6      (main.py's --nproc-per-node: launch)
"""

import contextlib
import datetime
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from shared import cli, runner
from shared.errors import Terminated, UserError

GRACE_S = 5  # seconds between SIGTERM and SIGKILL for a rank that does not stop
LOST = ("Connection closed by peer", "Connection reset by peer", "Broken pipe", "Timed out", "timed out",
        "Timeout", "timeout")  # what gloo and the store say when a rank is gone


def main(program_file, flags, train, sample) -> None:
    """The program: a rank of a launched world (torchrun's or launch's), a world of one, or the
    launcher of --nproc-per-node ranks. Bad input and a lost rank end it with one line."""
    sys.exit(cli.run(lambda: start(program_file, flags, train, sample)))


def start(program_file, flags, train, sample) -> None:
    if "RANK" not in os.environ:  # not launched: this process is the world, or it starts one
        args = cli.parse(flags, Path(program_file).parent, runner.first_line(Path(program_file)))
        if (args.nproc_per_node or 1) > 1:
            raise SystemExit(launch(program_file, args, sys.argv[1:]))
    if int(os.environ.get("RANK", 0)) == 0:  # rank 0 prints the log and writes the results file
        runner.train_and_sample(program_file, flags, in_process_group(train), sample)
        return
    run = runner.start(program_file, flags)  # the same run: flags, data, initial weights
    with open(os.devnull, "w") as quiet, contextlib.redirect_stdout(quiet):  # rank 0's log is the log
        in_process_group(train)(run)


def in_process_group(train):
    """`train`, run inside a process group: gloo on a CPU, NCCL on CUDA GPUs; from the
    environment's rendezvous when launched, else a world of one. A rank whose peer is gone
    stops with one line (a UserError: rank 0's runner keeps the finished steps)."""
    import torch
    import torch.distributed as dist

    def train_in_group(run):
        if dist.is_initialized():  # (the tests' and the benchmark's forked ranks made one already)
            return train(run)
        backend = "nccl" if run.device.type == "cuda" else "gloo"
        if run.device.type not in ("cpu", "cuda"):
            raise UserError(f"--device {run.device.type}: torch.distributed has no backend for it; use --device cpu")
        timeout = datetime.timedelta(seconds=run.args.timeout)
        if "RANK" in os.environ:
            if backend == "nccl":
                torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)))  # one GPU per rank of this machine
            join(lambda: dist.init_process_group(backend, timeout=timeout))  # env://: RANK, WORLD_SIZE, MASTER_*
        else:
            dist.init_process_group(backend, store=dist.HashStore(), rank=0, world_size=1, timeout=timeout)
        try:
            return train(run)
        except RuntimeError as err:
            if not any(word in str(err) for word in LOST):
                raise
            rank, world = dist.get_rank(), dist.get_world_size()
            why = "its connection closed" if "onnection" in str(err) or "pipe" in str(err) else \
                f"no answer within --timeout {run.args.timeout:g} s"
            raise UserError(f"rank {rank} of {world}: lost another rank during step {len(run.losses) + 1} "
                            f"({why}); this rank stopped too") from None
        finally:
            dist.destroy_process_group()

    return train_in_group


def join(init) -> None:
    """The rendezvous, with its failures in one line: a port taken, a rank that never came."""
    try:
        init()
    except RuntimeError as err:
        where = f"{os.environ.get('MASTER_ADDR')}:{os.environ.get('MASTER_PORT')}"
        if "EADDRINUSE" in str(err) or "address already in use" in str(err).lower():
            raise UserError(f"the rendezvous port {where} is in use by another program; choose another "
                            f"(--master-port, or torchrun's --master-port) or let a free one be picked") from None
        if any(word in str(err) for word in LOST):
            raise UserError(f"rank {os.environ['RANK']}: the other ranks did not all arrive at {where} within "
                            f"--timeout; was every rank started?") from None
        raise


# ----------------------------------------------------------------------------------------
# The launcher: N copies of the program, and a watch over them
# ----------------------------------------------------------------------------------------

def free_port() -> int:
    """A TCP port nobody listens on now (the system picks it); rank 0 listens on it soon after."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def port_in_use(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return True
    return False


def launch(program_file, args, argv: list[str]) -> int:
    """Start --nproc-per-node copies of the program here, as `torchrun --standalone` does: the same
    command line, and RANK, WORLD_SIZE, MASTER_ADDR and MASTER_PORT in each one's environment.
    Rank 0's output is the program's; the others' errors are kept aside and shown only if rank 0
    cannot say what happened. Returns the exit status: rank 0's, or the first failed rank's."""
    n = args.nproc_per_node
    if args.master_port and port_in_use(args.master_port):
        raise UserError(f"--master-port {args.master_port} is in use by another program on this machine; choose "
                        f"another port, or leave --master-port out and a free one is picked")
    port = args.master_port or free_port()
    env = {**os.environ, "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), "WORLD_SIZE": str(n),
           "LOCAL_WORLD_SIZE": str(n)}
    with tempfile.TemporaryDirectory(prefix="microgpt-ranks-") as logs:
        errors = [Path(logs) / f"rank{rank}.txt" for rank in range(n)]
        ranks = []
        for rank in range(n):
            with open(errors[rank], "w") as err:
                ranks.append(subprocess.Popen(
                    [sys.executable, program_file, *argv], env={**env, "RANK": str(rank), "LOCAL_RANK": str(rank)},
                    stdout=None if rank == 0 else subprocess.DEVNULL, stderr=None if rank == 0 else err))
        first = watch(ranks, args.timeout)
        return report(ranks, first, [path.read_text(errors="replace") for path in errors])


def watch(ranks: list[subprocess.Popen], timeout: float) -> int | None:
    """Wait for every rank. When one fails, the others have `timeout` seconds to notice and stop
    (a collective with a rank gone fails at once if its connections closed, else after --timeout),
    then they are stopped: SIGTERM, and SIGKILL after GRACE_S. Ctrl-C reaches every rank from the
    terminal; a SIGTERM to this process is passed on, and the ranks get the same time to finish.
    Returns the first rank that failed, if any."""
    first, deadline, stopped = None, None, False
    while True:
        try:
            if all(rank.poll() is not None for rank in ranks):
                break
            if first is None:
                first = next((r for r, rank in enumerate(ranks) if rank.returncode not in (None, 0)), None)
                if first is not None:
                    deadline = time.monotonic() + timeout
            if deadline is not None and time.monotonic() > deadline and not stopped:
                stopped = True  # the ranks left get SIGTERM, and SIGKILL after GRACE_S
                signal_all(ranks, signal.SIGTERM)
                deadline = time.monotonic() + GRACE_S
            elif stopped and time.monotonic() > deadline:
                signal_all(ranks, signal.SIGKILL)
            time.sleep(0.02)
        except KeyboardInterrupt as stop:  # (a signal at any point of the loop)
            if isinstance(stop, Terminated):
                signal_all(ranks, signal.SIGTERM)
            deadline = deadline or time.monotonic() + timeout + GRACE_S
    return first if first is not None else next((r for r, rank in enumerate(ranks) if rank.returncode), None)


def signal_all(ranks: list[subprocess.Popen], signum: int) -> None:
    for rank in ranks:
        if rank.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                rank.send_signal(signum)


def report(ranks: list[subprocess.Popen], first: int | None, stderr: list[str]) -> int:
    """One line where rank 0 did not say it (it was killed), tracebacks of any rank (a bug is a
    bug), and the exit status."""
    for rank, text in enumerate(stderr):
        if "Traceback (most recent call last)" in text:
            print(f"rank {rank}:\n{text}", file=sys.stderr, end="", flush=True)
        elif first is None and text:  # a run that went well: what the others warned about
            print(text, file=sys.stderr, end="", flush=True)
    if first is None:
        return 0
    zero = ranks[0].returncode
    if zero > 0:  # rank 0 stopped on its own and said why in its one line
        return zero
    code = ranks[first].returncode
    said = [line for line in stderr[first].splitlines() if line.startswith("error: ")]
    how = f"stopped: {said[-1].removeprefix('error: ')}" if said else (
        f"was killed by {signal.Signals(-code).name}" if code < 0 else f"stopped with exit status {code}")
    rank0 = "" if first == 0 else " rank 0 finished;" if zero == 0 else " rank 0 stopped too;"
    cli.say_last(f"error: rank {first} of {len(ranks)} {how};{rank0} the other ranks were stopped (what rank 0 "
                 f"wrote before is whole: its writes are atomic)")
    return 128 - code if code < 0 else code


# ----------------------------------------------------------------------------------------
# For tests and benchmarks: ranks forked from this process
# ----------------------------------------------------------------------------------------

class RankEnded(RuntimeError):
    """A forked rank's process ended before it sent what its work returned (os._exit, a signal)."""

    def __init__(self, rank: int, world: int, exitcode: int):
        how = f"killed by {signal.Signals(-exitcode).name}" if exitcode < 0 else f"exit status {exitcode}"
        super().__init__(f"rank {rank} of {world} ended ({how}) before it had finished")
        self.rank, self.how = rank, how


def in_forked_ranks(world: int, work, timeout: float = 120) -> list:
    """[work(rank) for every rank], each computed in its own process, forked from this one, the
    processes joined in one gloo process group (127.0.0.1, a free port). Forked, a rank starts in
    milliseconds with what this process has loaded (torch, the chapters), where a new one spends
    seconds importing torch. What work returns comes back through a pipe; an error in any rank
    raises here with its traceback, a rank whose process ended without a word raises RankEnded
    (the others would wait for it until the timeout). No process is left behind."""
    import multiprocessing
    import queue as queues

    context = multiprocessing.get_context("fork")
    results, port = context.Queue(), free_port()
    ranks = [context.Process(target=forked_rank, args=(work, rank, world, port, results, timeout), daemon=True)
             for rank in range(world)]
    for rank in ranks:
        rank.start()
    got: dict[int, object] = {}
    try:
        deadline = time.monotonic() + timeout
        while len(got) < world:
            try:
                rank, ok, value = results.get(timeout=min(0.5, max(0.1, deadline - time.monotonic())))
            except queues.Empty:
                ended = [(r, p.exitcode) for r, p in enumerate(ranks) if r not in got and p.exitcode is not None]
                if ended and results.empty():  # (what a rank put is in the pipe before its process ends)
                    raise RankEnded(ended[0][0], world, ended[0][1]) from None
                if time.monotonic() < deadline:
                    continue
                raise TimeoutError(f"{world - len(got)} of {world} forked ranks sent nothing in {timeout} s") from None
            if not ok:
                raise RuntimeError(f"rank {rank} of {world} failed:\n{value}")
            got[rank] = value
    finally:
        for rank in ranks:
            rank.join(5)
            if rank.is_alive():
                rank.kill()
                rank.join()
    return [got[rank] for rank in range(world)]


def forked_rank(work, rank: int, world: int, port: int, results, timeout: float) -> None:
    import traceback

    import torch.distributed as dist

    os.environ.update(RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank), LOCAL_WORLD_SIZE=str(world),
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    try:
        dist.init_process_group("gloo", timeout=datetime.timedelta(seconds=timeout))
        try:
            value = work(rank)
        finally:
            dist.destroy_process_group()
        results.put((rank, True, value))
    except BaseException:  # noqa: BLE001  (whatever it was, the parent says it)
        results.put((rank, False, traceback.format_exc()))
