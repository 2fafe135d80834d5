"""Stage 5: N processes train chapter 3's model exactly as one process does.

Real processes throughout: ranks forked from this process in one gloo process group
(5_distributed/launch.py's in_forked_ranks, 127.0.0.1 and a free port), which run the chapter's
own `train` for many settings each, and the program itself launched by torchrun and by its
own launcher. In float64, over 20 steps of SPEC.md's 1000-step schedule, at N = 1, 2 and 3 and
B = 6 and 5 (shares of unequal size), every mode's losses and trained weights equal chapter
3's to 1e-12, and every rank holds the same weights, bit for bit, after every step
(--check-weights); k micro-batches (--accumulate) equal one batch k times larger. The matrix of
settings runs on the first 3,000 names (each run of `train` tokenizes its data; chapter 3's
reference runs on the same file); the launched programs run on all of names.txt.
"""

import json
import os
import signal
import socket
import subprocess
import sys

import numpy as np
import pytest
import torch

from conftest import REPO_ROOT, load_stage, train_stage
from shared import runner

stage5 = load_stage("5_distributed")  # (puts 5_distributed/ on the path: launch is its module)
import launch  # noqa: E402

pytestmark = pytest.mark.xdist_group("stage5")  # one process makes the module's runs, once
STEPS = 20
FLOAT64 = ("--device", "cpu", "--dtype", "float64")
WRONG = ("mean of means", "averaged gradients")  # two classic bugs, reproduced below


def flat(model) -> np.ndarray:
    return torch.cat([p.detach().flatten() for p in model.parameters()]).numpy().copy()


@pytest.fixture(scope="module")
def names(tmp_path_factory, names_docs):
    path = tmp_path_factory.mktemp("stage5") / "names.txt"
    path.write_text("\n".join(names_docs[:3000]) + "\n")
    return path


_chapter3: dict = {}


def chapter3(data, batch_size: int, *argv: str) -> tuple[list[float], np.ndarray]:
    """(losses, trained weights) of chapter 3's own train, float64, the first STEPS steps."""
    key = (str(data), batch_size, argv)
    if key not in _chapter3:
        run, model = train_stage("3_pytorch", *FLOAT64, "--batch-size", str(batch_size), "--data", str(data), *argv,
                                 max_steps=STEPS)
        _chapter3[key] = (list(run.losses), flat(model))
    return _chapter3[key]


def train_setting(data, mode: str, batch_size: int, accumulate: int = 1, wrong: str | None = None) -> dict:
    """One run of chapter 5's own train in this rank (a rank of in_forked_ranks), with every step's
    weights checked across the ranks; `wrong` trains with one of the classic bugs instead."""
    import contextlib
    import io

    argv = [*FLOAT64, "--steps", "1000", "--samples", "0", "--data", str(data), "--batch-size", str(batch_size),
            "--mode", mode, "--accumulate", str(accumulate), "--check-weights"]
    run = runner.start(stage5.__file__, stage5.FLAGS, argv, max_steps=STEPS)
    right = stage5.forward_backward
    world = torch.distributed.get_world_size()
    if wrong == "mean of means":  # each rank's mean loss, averaged over the ranks: every share weighs 1/N
        stage5.forward_backward = lambda model, i, t, weight, scale, phase: right(model, i, t, 1 / world, scale, phase)
    if wrong == "averaged gradients":  # DDP's average taken as the sum: the loss not scaled by N
        stage5.forward_backward = lambda model, i, t, weight, scale, phase: right(model, i, t, weight, 1, phase)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            model = stage5.train(run)
    finally:
        stage5.forward_backward = right
    return {"losses": list(run.losses), "weights": flat(model), "adam_state_bytes": run.env["adam_state_bytes"]}


EVERY_N = [(mode, batch_size) for mode in ("hand", "ddp", "zero") for batch_size in (6, 5)]
SETTINGS = {
    1: EVERY_N,
    2: [*EVERY_N, *((mode, 10, 2) for mode in stage5.MODES), ("hand", 6, 1, WRONG[0]), ("ddp", 6, 1, WRONG[1])],
    3: [*EVERY_N, ("zero-torch", 5), ("fsdp", 5), *((mode, 10, 2) for mode in ("hand", "ddp", "zero"))],
}


_runs: dict = {}


def runs(world: int, data) -> list[dict]:
    """{setting: what train_setting returned} for each rank of a world of `world` processes, every
    setting of SETTINGS[world] run in one process group, one after another."""
    if world not in _runs:
        _runs[world] = launch.in_forked_ranks(
            world, lambda rank: {setting: train_setting(data, *setting) for setting in SETTINGS[world]}, timeout=300)
    return _runs[world]


@pytest.mark.parametrize("world", [1, 2, 3])
def test_n_processes_train_as_one_in_every_mode(world, names):
    """Every setting without a bug: the losses and the trained weights of every rank equal chapter
    3's at the same global batch, to 1e-12; the ranks' weights are one set, bit for bit."""
    ranks = runs(world, names)
    for setting in SETTINGS[world]:
        if len(setting) == 4:
            continue
        mode, batch_size, *accumulate = setting
        losses, weights = chapter3(names, batch_size)
        for rank, got in enumerate(ranks):
            np.testing.assert_allclose(got[setting]["losses"], losses, rtol=0, atol=1e-12, err_msg=f"{setting}")
            np.testing.assert_allclose(got[setting]["weights"], weights, rtol=0, atol=1e-12, err_msg=f"{setting}")
            assert np.array_equal(got[setting]["weights"], ranks[0][setting]["weights"]), (setting, rank)


@pytest.mark.parametrize("world", [2, 3])
def test_k_micro_batches_are_one_batch_k_times_larger(world, names):
    """--batch-size 10 --accumulate 2: two micro-batches of 5 (shares 2 and 3 at N = 2; 1, 2 and 2
    at N = 3), one communication; equal to one batch of 10 in chapter 3 (in every mode run here:
    DDP's no_sync and FSDP's set_requires_gradient_sync keep the micro-steps local)."""
    losses, weights = chapter3(names, 10)
    accumulated = [s for s in SETTINGS[world] if len(s) == 3 and s[2] == 2]
    assert {"hand", "ddp", "zero"} <= {mode for mode, *_ in accumulated}
    for setting in accumulated:
        got = runs(world, names)[0][setting]
        np.testing.assert_allclose(got["losses"], losses, rtol=0, atol=1e-12, err_msg=f"{setting}")
        np.testing.assert_allclose(got["weights"], weights, rtol=0, atol=1e-12, err_msg=f"{setting}")


def rank_means(names_path, batch_size: int, world: int) -> list[float]:
    """Each rank's mean loss over its share of step 1's batch, computed by chapter 3's model in this
    process (the initial weights): what a rank's unweighted loss is."""
    chapter3_module = load_stage("3_pytorch")
    run = runner.start(chapter3_module.__file__, chapter3_module.FLAGS,
                       [*FLOAT64, "--samples", "0", "--data", str(names_path), "--batch-size", str(batch_size)])
    model = chapter3_module.load_weights(chapter3_module.GPT(run.config).double(), run.initial_weights)
    batch = [run.tokenizer.encode_doc(doc) for doc in run.docs[:batch_size]]
    means = []
    for rank in range(world):
        mine = stage5.share(batch, rank, world)
        means.append(model(*chapter3_module.batch_tensors(mine, run.config.block_size, "cpu"))[1].item())
    return means


def test_the_mean_of_the_ranks_means_is_the_classic_wrong_loss(names):
    """The bug: each rank takes the mean of its share's losses and the ranks average them (or DDP
    averages the gradients of such means). With shares of unequal length -- 6 names over 2 ranks
    never hold the same number of letters -- that is not the batch's mean: step 1's loss is the
    plain average of the two ranks' means, and the run drifts away from chapter 3 by more than a
    loss curve hides. The fix (each share weighted by its target positions over the step's)
    equals chapter 3 to 1e-12. A second bug, DDP's average of gradients taken for their sum (the
    loss not scaled by N), scales every gradient by 1/N, which Adam all but undoes (it divides by
    the gradients' own size): it moves the losses by less than 1e-3, invisible on a curve, and
    only the exact comparison catches it."""
    losses, _ = chapter3(names, 6)
    ranks = runs(2, names)
    wrong = ranks[0][("hand", 6, 1, WRONG[0])]["losses"]
    assert wrong[0] == pytest.approx(sum(rank_means(names, 6, 2)) / 2, abs=1e-12)
    assert abs(wrong[0] - losses[0]) > 1e-3 and max(abs(a - b) for a, b in zip(wrong, losses)) > 1e-2
    np.testing.assert_allclose(ranks[0][("hand", 6)]["losses"], losses, rtol=0, atol=1e-12)  # the fix
    averaged = ranks[0][("ddp", 6, 1, WRONG[1])]["losses"]
    assert averaged[0] == pytest.approx(losses[0], abs=1e-12)  # the loss is right; its gradient is half
    assert 1e-12 < max(abs(a - b) for a, b in zip(averaged, losses)) < 1e-3


def test_zero_keeps_one_nth_of_adam_on_each_rank(names):
    """Adam's two moments, counted: P numbers each on every rank by hand and under DDP; ceil(P/N)
    each under ZeRO (its step count too: one shard, one count, where chapter 3's Adam keeps one per
    matrix); measured as the bytes in each rank's optimizer state."""
    P, itemsize, matrices = 4192, 8, 7
    for world in (2, 3):
        for rank in runs(world, names):
            assert rank[("hand", 6)]["adam_state_bytes"] == 2 * P * itemsize + matrices * 4  # (a float32 step count)
            assert rank[("zero", 6)]["adam_state_bytes"] == 2 * -(-P // world) * itemsize + 4


def test_a_rank_takes_a_nearly_equal_share():
    assert [stage5.share(list(range(6)), r, 4) for r in range(4)] == [[0], [1, 2], [3], [4, 5]]
    assert [len(stage5.share(list(range(5)), r, 3)) for r in range(3)] == [1, 2, 2]
    assert sum((stage5.share(list(range(7)), r, 3) for r in range(3)), []) == list(range(7))


# ---------------------------------------------------------------------------- the program, launched


def program(*argv, launcher=(), env=None) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, *launcher, str(REPO_ROOT / "5_distributed" / "main.py"), *argv],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


TORCHRUN = ("-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2")


@pytest.fixture(scope="module")
def launched(tmp_path_factory):
    """The issue's command under torchrun (2 processes, B = 6), and the program's own launcher with 3
    processes at B = 5 in ZeRO mode, started together; each writes into a folder of its own."""
    folders = {name: tmp_path_factory.mktemp(name) for name in ("torchrun", "launcher")}
    common = ("--dtype", "float64", "--steps", "20", "--samples", "0")
    procs = {"torchrun": program(*common, "--batch-size", "6", "--out", str(folders["torchrun"] / "r.json"),
                                 launcher=TORCHRUN),
             "launcher": program(*common, "--batch-size", "5", "--mode", "zero", "--nproc-per-node", "3",
                                 "--out", str(folders["launcher"] / "r.json"))}
    done = {name: (*proc.communicate(timeout=240), proc.returncode) for name, proc in procs.items()}
    return {name: (folders[name], *done[name]) for name in procs}


@pytest.mark.parametrize("how, batch_size", [("torchrun", 6), ("launcher", 5)])
def test_the_launched_program_prints_chapter_3s_losses(how, batch_size, launched, names_path):
    """`torchrun --standalone --nproc-per-node 2 5_distributed/main.py --dtype float64 --steps 20
    --batch-size 6` (and the launcher's 3 processes at B = 5): rank 0 alone prints the log and
    writes the one results file, whose losses are chapter 3's to 1e-12; the log says them."""
    folder, stdout, stderr, status = launched[how]
    assert status == 0, stderr
    results = json.loads((folder / "r.json").read_text())
    assert [p.name for p in folder.iterdir()] == ["r.json"]
    run, _ = train_stage("3_pytorch", *FLOAT64, "--steps", "20", "--batch-size", str(batch_size),
                         "--data", str(names_path))
    np.testing.assert_allclose(results["losses"], run.losses, rtol=0, atol=1e-12)
    logged = [line for line in stdout.splitlines() if line.startswith("step ")]
    assert [float(line.split("loss ")[1].split()[0]) for line in logged] == [round(x, 4) for x in run.losses]
    assert results["env"]["world_size"] == (2 if how == "torchrun" else 3)


def one_line(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in stderr, stderr
    return lines[0]


def test_bad_input_is_one_line_and_nothing_starts(tmp_path):
    """More processes than documents in a batch (or a micro-batch), --nproc-per-node 0, a port in
    use: one line each, a non-zero status, no results file."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        cases = {
            "--nproc-per-node must be at least 1, got 0": (2, ["--nproc-per-node", "0"]),
            "7 processes share a batch of 6 documents": (2, ["--nproc-per-node", "7", "--batch-size", "6"]),
            "share micro-batches of 3 documents": (2, ["--nproc-per-node", "4", "--batch-size", "6",
                                                       "--accumulate", "2"]),
            f"--master-port {port} is in use by another program": (1, ["--nproc-per-node", "2", "--batch-size", "6",
                                                                       "--master-port", str(port)]),
        }
        procs = {words: program(*argv, "--steps", "3", "--out", str(tmp_path / f"{i}.json"))
                 for i, (words, (_, argv)) in enumerate(cases.items())}
        for words, proc in procs.items():
            _, stderr = proc.communicate(timeout=120)
            assert proc.returncode == cases[words][0] and words in one_line(stderr), stderr
    assert list(tmp_path.iterdir()) == []


def children(pid: int) -> dict[int, int]:
    """{rank: pid} of the processes the launcher started."""
    ranks = {}
    for child in open(f"/proc/{pid}/task/{pid}/children").read().split():
        environ = open(f"/proc/{child}/environ", "rb").read().split(b"\0")
        rank = next(int(v.split(b"=")[1]) for v in environ if v.startswith(b"RANK="))
        ranks[rank] = int(child)
    return ranks


def running(pid: int) -> bool:
    """Whether the process is there and not a zombie waiting to be reaped."""
    try:
        return open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


@pytest.fixture(scope="module")
def killed_runs(tmp_path_factory, names) -> dict:
    """Two launches of 2 ranks at once; in one, rank 1 gets SIGKILL after step 5, in the other rank
    0. {killed rank: (results path, stderr, status, the ranks' pids)}."""
    procs, outs = {}, {}
    for killed in (1, 0):
        outs[killed] = tmp_path_factory.mktemp(f"killed{killed}") / "r.json"
        procs[killed] = subprocess.Popen(
            [sys.executable, "-u", str(REPO_ROOT / "5_distributed" / "main.py"), *FLOAT64, "--nproc-per-node", "2",
             "--batch-size", "6", "--steps", "5000", "--samples", "0", "--data", str(names), "--out",
             str(outs[killed])], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    done = {}
    try:
        for killed, proc in procs.items():
            for line in proc.stdout:
                if line.startswith("step    5 "):
                    break
            ranks = children(proc.pid)
            os.kill(ranks[killed], signal.SIGKILL)
            done[killed] = ranks
        for killed, proc in procs.items():
            _, stderr = proc.communicate(timeout=120)
            done[killed] = (outs[killed], stderr, proc.returncode, done[killed])
    finally:
        for proc in procs.values():
            proc.kill()
    return done


@pytest.mark.parametrize("killed", [1, 0])
def test_a_killed_rank_stops_the_others_with_one_line(killed, killed_runs, names):
    """SIGKILL to rank `killed` after step 5: the others stop (their connections to it close), in
    one line; rank 1 killed, rank 0 writes the finished steps, marked partial, and they are
    chapter 3's; rank 0 killed, the launcher says so and nothing is written. No rank is left."""
    out, stderr, status, ranks = killed_runs[killed]
    line = one_line(stderr)
    assert not [pid for pid in ranks.values() if running(pid)]
    if killed == 0:
        assert status == 128 + signal.SIGKILL and line.startswith("error: rank 0 of 2 was killed by SIGKILL")
        assert not out.exists()
        return
    assert status == 1 and line.startswith("error: rank 0 of 2: lost another rank during step ")
    results = json.loads(out.read_text())
    assert results["partial"] is True and len(results["losses"]) >= 5 and "partial results in" in line
    reference, _ = train_stage("3_pytorch", *FLOAT64, "--steps", "5000", "--batch-size", "6", "--data", str(names),
                               max_steps=len(results["losses"]))
    np.testing.assert_allclose(results["losses"], reference.losses, rtol=0, atol=1e-12)


# ---------------------------------------------------------------------------- the program reads as a chapter


def test_the_program_holds_its_lesson_and_chapter_3s_model():
    """As every chapter's main.py (tests/test_repo.py): the same seven sections, at most 10 lines of
    plumbing, no prints, timers or error handling of its own; its last line hands train and
    sample to launch.main, which hands them to the runner on rank 0. Its model is chapter 3's
    module itself, loaded as the tests load it (SPEC.md, "Every main.py")."""
    import test_repo

    source = (REPO_ROOT / "5_distributed" / "main.py").read_text()
    assert test_repo.section_titles(REPO_ROOT / "5_distributed" / "main.py") == test_repo.section_titles(
        REPO_ROOT / "3_pytorch" / "main.py")
    assert not test_repo.PLUMBING.findall(source)
    assert len(test_repo.plumbing_lines(source)) <= 10
    assert "launch.main(__file__, FLAGS, train, sample)" in source
    assert stage5.chapter3 is load_stage("3_pytorch") and stage5.sample is stage5.chapter3.sample
    assert "runner.train_and_sample(program_file, flags, in_process_group(train), sample)" in (
        REPO_ROOT / "5_distributed" / "launch.py").read_text()


def test_the_chapters_worked_example_prints_what_it_shows():
    """The README's ring all-reduce on lists: its output is the block under it; each of 3 ranks
    sends 2(N - 1)/N = 4/3 of its 6 numbers."""
    from conftest import run_worked_examples

    (printed,) = run_worked_examples("5_distributed")
    assert printed.endswith("numbers each rank sent: [8, 8, 8] of a buffer of 6\n")


def test_the_committed_run_is_the_chapters_run():
    """5_distributed/results.json is rank 0's file of the README's first command (torchrun, 2
    processes, 6 names a step, 1000 steps, float32): complete, and starting at chapter 3's step-1
    loss for those names (float32 rounding apart)."""
    from shared import schema

    res = json.loads((REPO_ROOT / "5_distributed" / "results.json").read_text())
    assert schema.validate(res) is None and "partial" not in res
    assert res["config"]["batch_size"] == 6 and res["config"]["steps"] == len(res["losses"]) == 1000
    assert res["env"]["world_size"] == 2 and res["env"]["mode"] == "hand" and len(res["samples"]) == 20
    run, _ = train_stage("3_pytorch", *FLOAT64, "--batch-size", "6", max_steps=1)
    assert res["losses"][0] == pytest.approx(run.losses[0], abs=1e-6)
