"""The run: what a training program does besides its lesson, as a small step protocol.

A stage's main.py keeps its machinery -- autograd (or kernels), parameters, model, optimizer,
a training loop, sampling -- and hands the rest to a `Run`:

    def train(run):                                  # the stage's loop, short as microgpt's
        params = make_params(run.initial_weights)
        for step, batch in run.batches():            # starts each step; batch: its documents, tokenized
            with run.phase("forward"):               # times a part of the step (on a CPU)
                loss = batch_loss(batch, params, run.config)
            ...
            run.end_step(loss.data)                  # ends the step: its time, its loss, the log line
        return params                                # what sample() draws names from

    FLAGS = runner.Flags(dtypes=("float64", "float32"))
    if __name__ == "__main__":
        runner.main(__file__, FLAGS, train, sample)

Everything a run needs is set up by its neighbours, each asking the program's `Flags` for
what only the program knows: the flags (shared/cli.py), the data (shared/dataset.py), the
initial weights (shared/weights.py), the device (shared/devices.py), whether it fits
(shared/memory.py), and the record of every step and the results file (shared/results.py;
the log line in shared/log.py, where it happened in shared/environment.py, the writing in
shared/saving.py).
`main` trains, writes the results file at once, before sampling, then samples and writes it
again with the names. Tests and benchmarks call a stage's own `train` with a run from
`start`, so they time and check the loop a reader runs.
"""

import contextlib
import os
import sys
import time
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path

from shared import cli, dataset, log, memory, results, saving
from shared.cli import Flags, unwritable_folder  # noqa: F401  (what a program declares: runner.Flags; a check)
from shared.devices import cpu, torch_device  # noqa: F401  (where it runs: runner.torch_device)
from shared.environment import environment
from shared.errors import UserError, stopped
from shared.memory import Memory  # noqa: F401  (how its memory grows: runner.Memory)
from shared.tokenizer import Tokenizer, positions
from shared.weights import GPTConfig, init_run, param_shapes


class Run:
    """One training run: what a stage reads, and the step protocol it follows.

    Reads: `config`, `initial_weights` (SPEC.md's draw, {name: nested lists}), `num_steps`
    (the schedule's length: the learning rate decays over it), `steps_to_train` (the steps this
    run trains: all of them, unless a test stops early), `batch_size`, `dtype` (its name,
    "float32": each engine has its own dtype objects), `device` (what the engine allocates on:
    "cpu", or a torch.device), `hardware` (that device's name, facts and how to wait for it:
    shared/devices.py), `docs` (shuffled), `tokenizer`, `rng` (the one random stream,
    continued by sampling) and `args` (every flag).

    The step protocol: `batches()` (each step's documents) or `steps()` (its index alone)
    starts each step, `phase(name)` times a part of it, `end_step(loss)` ends it (or
    `end_steps(losses)` several that ran as one). Before the steps: `timed(name)` for one-off
    work the program does before step 1, and `note(**facts)` for the results file and the
    banner.
    """

    def __init__(self, stage: str, args, flags: Flags, max_steps: int | None = None):
        self.stage, self.args = stage, args
        docs = read_documents(args)
        self.tokenizer = Tokenizer.from_docs(docs)
        self.config = GPTConfig(self.tokenizer.vocab_size, args.n_layer, args.n_embd, args.n_head, args.block_size)
        self.hardware = flags.device(args)
        self.device = self.hardware.device
        longest = max(positions(self.tokenizer.encode_doc(doc), args.block_size) for doc in docs)
        memory.check(flags.memory, self.config, args.batch_size, args.dtype, self.device, longest)
        self.docs, self.initial_weights, self.rng = init_run(docs, self.config, args.seed)
        self.num_steps, self.batch_size, self.dtype = args.steps, args.batch_size, args.dtype
        stops = [k for k in (max_steps, getattr(args, "stop_after", None)) if k]  # --stop-after K, a test's max_steps
        self.steps_to_train = min([self.num_steps, *stops])
        lengths = [positions(self.tokenizer.encode_doc(doc), self.config.block_size) for doc in self.docs]
        self.doc_len = dataset.positions_per_step(lengths, self.steps_to_train, self.batch_size)
        self.env = environment(self.hardware.name, **self.hardware.facts)
        self.num_params = sum(rows * cols for _, (rows, cols) in param_shapes(self.config))
        self.record = results.TrainingRun(
            stage, {**self.config.to_dict(), "steps": self.num_steps, "batch_size": self.batch_size,
                    "seed": args.seed, "dtype": self.dtype,
                    **({"stop_after": self.steps_to_train} if self.steps_to_train < self.num_steps else {})},
            self.num_params, args.out, self.env)
        self._noted: list[str] = []  # facts and words for the banner
        self._started = False
        self._step_started: float | None = None
        self._phases: dict[str, float] = {}

    # ---------------------------------------------------------------- before the steps
    def note(self, **facts) -> None:
        """Facts for the results file's `env` and the banner: note(setup_s=0.4, programs=4)."""
        self.env.update(facts)
        self._noted += [words(key, value) for key, value in facts.items()]

    @contextlib.contextmanager
    def timed(self, name: str, first: str | None = None):
        """Time one-off work before the steps (a set-up the program does once): env[f'{name}_s'].
        `first`: a line to print before it starts, for work long enough to look like a hang."""
        if first:
            log.say(first)
        started = time.perf_counter()
        yield
        self.hardware.sync()
        self._noted = [said for said in self._noted if said != words(name, True)]  # 'setup, setup 2.8 s': once
        self.note(**{f"{name}_s": round(time.perf_counter() - started, 3)})

    def banner(self) -> str:
        c = self.config
        many = "s" if self.batch_size > 1 else ""
        return ", ".join([f"{self.stage}: {len(self.docs)} docs, vocab {c.vocab_size}, {self.num_params} parameters, "
                          f"{self.num_steps} steps of {self.batch_size} document{many}"
                          + (f" (stopping after {self.steps_to_train})" if self.steps_to_train < self.num_steps else "")
                          + f", {self.dtype} on "
                          f"{self.hardware.name}",
                          *[words(key, value) for key, value in self.hardware.facts.items()], *self._noted])

    # ---------------------------------------------------------------- the steps
    def _begin(self) -> None:
        """Before the first step: the banner, and the run's clock starts."""
        if not self._started:
            self._started = True
            log.say(self.banner())
            if self.hardware.remark:
                log.say(self.hardware.remark)
            self.record.restart_clock()

    def steps(self) -> Iterator[int]:
        """The steps, 0-based; each starts here and ends at its `end_step` (or several at one `end_steps`)."""
        self._begin()
        while (step := len(self.record.losses)) < self.steps_to_train:
            self._start_step(step)
            yield step

    def batches(self) -> Iterator[tuple[int, list[list[int]]]]:
        """(step, batch): the step's B documents (SPEC.md's order), as [BOS] + ids + [BOS] lists."""
        for step in self.steps():
            docs = dataset.step_documents(self.docs, step, self.batch_size)
            yield step, [self.tokenizer.encode_doc(doc) for doc in docs]

    def _start_step(self, step: int) -> None:
        if self._step_started is not None:
            raise RuntimeError(f"step {step - 1} did not end: call run.end_step(loss) once per step")
        self._phases = {}
        self._step_started, self._step_cpu = time.perf_counter(), time.process_time()

    @contextlib.contextmanager
    def phase(self, name: str):
        """Time a part of the step (forward, backward, optimizer), where its wall time is real:
        on a CPU (on a GPU the host only queues the work)."""
        started = time.perf_counter()
        yield
        if self.hardware.measures_phases:
            self._phases[name] = self._phases.get(name, 0.0) + time.perf_counter() - started

    def end_step(self, loss, **series) -> None:
        """End the step: wait for the device, take the step's time, and record its loss (a number
        or a one-element tensor) with the log line; `series` are per-step extras (graph_nodes)."""
        loss = float(loss.item() if hasattr(loss, "item") else loss)  # a device tensor: waits for the loss
        self.hardware.sync()  # ... and for the rest of the step
        seconds = time.perf_counter() - self._step_started
        # this process's own CPU time too: on a busy machine the wall clock also counts the waits behind others
        cpu_ms = (time.process_time() - self._step_cpu) * 1e3
        step = len(self.record.losses)
        phases = {f"{name}_ms": s * 1e3 for name, s in self._phases.items()}
        self.record.record(loss, seconds, doc_len=self.doc_len[step], cpu_ms=cpu_ms, **phases, **series)
        self._step_started = None

    def end_steps(self, losses: list[float]) -> None:
        """End several steps at once: the step begun and the ones after it, all done by one piece of
        work that returned their `losses`; each is logged with an equal share of its time."""
        self.hardware.sync()
        seconds = time.perf_counter() - self._step_started
        step = len(self.record.losses)
        self.record.record_steps(losses, seconds, doc_len=self.doc_len[step:step + len(losses)])
        self._step_started = None

    @property
    def losses(self) -> list[float]:
        return self.record.losses


def words(key: str, value) -> str:
    """A fact for the banner: 'programs 4', 'interpreter', 'no interpreter', 'setup 0.4 s', 'sizes 8, 12 and 16'."""
    if key.endswith("_s") and isinstance(value, float):
        return f"{key[:-2].replace('_', ' ')} {value:.1f} s"
    if isinstance(value, bool):
        return key.replace("_", " ") if value else f"no {key.replace('_', ' ')}"
    if isinstance(value, list) and value:
        value = " and ".join(filter(None, [", ".join(map(str, value[:-1])), str(value[-1])]))
    return f"{key.replace('_', ' ')} {value}"


def read_documents(args) -> list[str]:
    """The data file's documents; --out must not be that file, under any name (SPEC.md)."""
    data = dataset.resolve_data_path(args.data)
    try:
        return check_and_read(data, args)
    except OSError as err:  # a name too long for the file system, a loop of symlinks, ...
        raise UserError(f"--data {cli.shorten(str(data))} cannot be read ({err.strerror}); pass --data with a "
                        f"path to names.txt") from None


def same_file(a: Path, b: Path) -> bool:
    """Whether two paths name one existing file (False where either cannot exist: a name too long)."""
    try:
        return a.exists() and b.exists() and os.path.samefile(a, b)
    except OSError:
        return False


def check_and_read(data: Path, args) -> list[str]:
    out = Path(args.out)
    for written, what in ((out, "its results"), (saving.beside(out), "its steps if it were stopped")):
        if same_file(written, data):
            raise UserError(f"--data {data} is where this run would write {what} ({written}); writing there would "
                            f"replace the names; choose another --out path")
    return dataset.load_docs(data)


def start(program_file: str | os.PathLike, flags: Flags, argv: list[str] | None = None,
          max_steps: int | None = None) -> Run:
    """A run of the program (a stage's main.py, or another) at `program_file`, from its command
    line. `max_steps` stops a run early without changing its schedule (tests compare first steps)."""
    path = Path(program_file).resolve()
    return Run(path.parent.name, cli.parse(flags, path.parent, first_line(path), argv), flags, max_steps)


def first_line(program: Path) -> str:
    """What --help says the program is: the first line of the docstring that opens its file."""
    line = program.read_text().partition("\n")[0]
    return line.removeprefix('"""').removesuffix('"""').strip() if line.startswith('"""') else program.name


def train_and_sample(program_file, flags: Flags, train: Callable, sample: Callable, argv=None) -> dict:
    """Train, write the results file, sample, write it again with the names; return the results.

    `train(run)` returns what `sample(trained, config, tokenizer, rng, temperature)` draws from.
    The trained run is on disk before sampling starts, so nothing after training can lose it."""
    run = start(program_file, flags, argv)
    with run.record:  # Ctrl-C, SIGTERM or an error: the steps done so far, marked partial
        trained = train(run)
    if len(run.losses) != run.steps_to_train:
        raise RuntimeError(f"train() logged {len(run.losses)} of {run.steps_to_train} steps")
    where = save(run, [])
    names = []
    if run.args.samples and run.steps_to_train < cli.UNTRAINED_BELOW:
        log.say(f"(after {run.steps_to_train} steps the model has barely left its random start: expect mostly "
                f"gibberish; SPEC.md's run is {cli.SPEC_STEPS} steps)")
    try:
        for i in range(run.args.samples):
            names.append(sample(trained, run.config, run.tokenizer, run.rng, run.args.temperature))
            log.say(f"sample {i + 1:2d}: {names[-1]}")
    except KeyboardInterrupt as stop:
        save(run, names)
        raise stopped(type(stop), f"while sampling; the trained run is in {where}, with {len(names)} of "
                                  f"{run.args.samples} samples") from None
    except Exception as err:  # noqa: BLE001  (whatever sampling hit, the trained run is kept)
        save(run, names)
        frame = traceback.extract_tb(err.__traceback__)[-1]
        at = f"{Path(frame.filename).name}:{frame.lineno}"
        raise UserError(f"sampling failed ({type(err).__name__}: {err}, at {at}); the trained run is in {where} "
                        f"with {len(names)} samples") from None
    where = save(run, names)
    finished = {**run.record.finish(names, where), "path": str(where)}
    if log.stdout_closed:
        cli.say_last(f"the log was lost: {log.stdout_closed}; the run went on and is in {finished['path']}")
    return finished


def save(run: Run, names: list[str]) -> Path:
    """Write the results file, or rescue it to the temporary folder and say so in one line."""
    where, err = saving.write_or_rescue(run.record.out, run.record.results(names), run.stage)
    if err is not None:
        raise UserError(f"cannot write the results to {run.record.out} ({err.strerror}); the trained run is "
                        f"saved in {where} instead")
    return where


def main(program_file, flags: Flags, train: Callable, sample: Callable) -> None:
    """The program: train_and_sample from sys.argv, bad input as one line, then exit."""
    sys.exit(cli.run(lambda: train_and_sample(program_file, flags, train, sample)))
