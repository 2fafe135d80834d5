"""The run: everything a training program does that is not its chapter's lesson.

A stage's main.py keeps its machinery -- autograd (or kernels), parameters, model,
optimizer, a training loop, sampling -- and hands the rest to this module:

    def train(run):                                  # the stage's loop, short as microgpt's
        params = make_params(run.initial_weights)
        for step, batch in run.batches():            # batch: the step's documents, tokenized
            with run.phase("forward"):
                loss = batch_loss(batch, params, run.config)
            ...
            run.log(loss.data)                       # times the step, prints the log line
        return params                                # what sample() draws names from

    FLAGS = runner.Flags(dtypes=("float64", "float32"))
    if __name__ == "__main__":
        runner.main(__file__, FLAGS, train, sample)

`main` parses the flags (shared/cli.py: the common ones and the ones `Flags` names), reads
the data, builds the tokenizer, the configuration and the initial weights
(shared/weights.py), picks the device, and calls `train(run)`. The run times every step
(and each phase, on a CPU, where a phase's time is real), prints the log line and collects
the results file. When training ends the results file is written at once, before sampling;
then `sample` draws the names and the file is written again with them. Bad input ends in one
line (shared/errors.py); Ctrl-C writes the steps done so far.

Tests and benchmarks call a stage's own `train` with a run from `start`, so no training
loop is written twice.
"""

import ast
import contextlib
import os
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from shared import cli, dataset, results
from shared.errors import UserError
from shared.tokenizer import Tokenizer, positions
from shared.weights import GPTConfig, init_run, param_shapes


@dataclass(frozen=True)
class Flags:
    """What a stage's command line offers beyond SPEC.md's common flags.

    dtypes: the number types it trains in, the default first (one: no --dtype flag).
    device: "cpu" (NumPy or plain Python), "torch" (--device and --threads: PyTorch picks a
        CPU, CUDA or Apple GPU), or "triton" (a CUDA GPU, else Triton's CPU interpreter).
    compile: --compile (torch.compile).  cuda_graph: --no-cuda-graph.
    extra, check: a program's own flags (`extra(parser)`) and their checks (`check(args, parser)`).
    """

    dtypes: tuple[str, ...] = ("float64",)
    device: str = "cpu"
    compile: bool = False
    cuda_graph: bool = False
    extra: Callable | None = None
    check: Callable | None = None


def parse(stage_dir: Path, flags: Flags, argv: list[str] | None, description: str):
    parser = cli.build_parser(description, stage_dir)
    cli.add_stage_flags(parser, flags.dtypes, flags.device, flags.compile, flags.cuda_graph)
    if flags.extra:
        flags.extra(parser)
    args = cli.parse_args(parser, argv)
    if len(flags.dtypes) == 1:
        args.dtype = flags.dtypes[0]
    if flags.check:
        flags.check(args, parser)
    return args


def pick_device(flags: Flags, args) -> tuple[object, str, bool]:
    """(device, its name for humans and results files, whether Triton's interpreter runs the kernels)."""
    if flags.device == "cpu":
        return "cpu", "cpu", False
    import torch

    if flags.device == "torch":
        device = torch_device(args.device)
        if device.type == "mps" and args.dtype == "float64":
            raise UserError("--dtype float64 is not supported on mps; use --dtype float32 or --device cpu")
        torch.set_num_threads(args.threads)
        return device, torch.cuda.get_device_name(device) if device.type == "cuda" else device.type, False
    # Triton: 4_triton/kernels/__init__.py chose compiled kernels or the interpreter when it loaded.
    interpreter = os.environ.get("TRITON_INTERPRET") == "1"
    if not interpreter and not torch.cuda.is_available():
        raise UserError("TRITON_INTERPRET=0 asks for compiled kernels, and this machine has no CUDA GPU; "
                        "unset it (or set TRITON_INTERPRET=1) to run through Triton's CPU interpreter")
    if args.dtype == "float64" and not interpreter:
        raise UserError("--dtype float64 runs only through the interpreter; use float32 on a GPU "
                        "or set TRITON_INTERPRET=1")
    if interpreter:
        return torch.device("cpu"), "cpu", True
    return torch.device("cuda"), torch.cuda.get_device_name(), False


def torch_device(name: str):
    import torch

    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise UserError(f"--device {name!r} is not a device name; use cpu, cuda, mps or auto") from None
    available = {"cpu": True, "cuda": torch.cuda.is_available(), "mps": torch.backends.mps.is_available()}
    if not available.get(device.type, False):
        raise UserError(f"--device {name} is not available on this machine; use --device cpu or auto")
    return device


class Run:
    """One training run: its data, configuration and initial weights, and its record.

    What a stage reads: `config`, `initial_weights` (SPEC.md's draw, {name: nested lists}),
    `steps` (the schedule's length), `batch_size`, `dtype` (a name: "float32"), `device`,
    `docs` (shuffled) and `tokenizer`, `rng` (the one random stream, continued by sampling)
    and `args` (every flag). What it calls: `batches()`, `phase()`, `log()`, and for
    one-off work `timed()`, `warm_up()`, `note()`.
    """

    def __init__(self, stage: str, args, flags: Flags, max_steps: int | None = None):
        self.stage, self.args = stage, args
        docs = dataset.load_docs(dataset.resolve_data_path(args.data))
        self.tokenizer = Tokenizer.from_docs(docs)
        self.config = GPTConfig(self.tokenizer.vocab_size, args.n_layer, args.n_embd, args.n_head, args.block_size)
        self.device, device_name, self.interpreter = pick_device(flags, args)
        self.docs, self.initial_weights, self.rng = init_run(docs, self.config, args.seed)
        self.steps, self.batch_size, self.dtype = args.steps, args.batch_size, args.dtype
        self.last_step = min(self.steps, max_steps or self.steps)  # tests may stop early in a long schedule
        lengths = [positions(self.tokenizer.encode_doc(doc), self.config.block_size) for doc in self.docs]
        self.doc_len = dataset.positions_per_step(lengths, self.last_step, self.batch_size)
        env = {"interpreter": self.interpreter}
        if flags.device != "cpu":
            import torch

            env["threads"] = torch.get_num_threads()
        if flags.compile:
            env["compile"] = args.compile
        self.env = results.environment(device_name, **env)
        self.num_params = sum(rows * cols for _, (rows, cols) in param_shapes(self.config))
        self.record = results.TrainingRun(
            stage, {**self.config.to_dict(), "steps": self.steps, "batch_size": self.batch_size,
                    "seed": args.seed, "dtype": self.dtype},
            self.num_params, args.out, self.env, show_eta=self.interpreter)
        self.description: list[str] = []
        self.started = False
        self.step_started = None
        self.phases: dict[str, float] = {}

    # ---------------------------------------------------------------- one-off work
    def note(self, **env) -> None:
        """Facts for the results file's `env` (and the banner): cuda_graph, kernels_per_step, ..."""
        self.env.update(env)

    def describe(self, text: str) -> None:
        """Words for the banner line, e.g. how the steps are launched."""
        self.description.append(text)

    @contextlib.contextmanager
    def timed(self, name: str):
        """Time one-off work before the steps (compiling, capturing a CUDA graph): env[f'{name}_s']."""
        started = time.perf_counter()
        yield
        self.sync()
        self.env[f"{name}_s"] = time.perf_counter() - started

    def warm_up(self, step: Callable[[list[list[int]]], object], name: str = "compile") -> None:
        """Call `step(batch)` on the shortest and the longest document, timed apart from the
        steps: a compiler that specializes on shapes meets both before the timed steps."""
        with self.timed(name):
            for doc in (min(self.docs, key=len), max(self.docs, key=len)):
                step([self.tokenizer.encode_doc(doc)])

    def sync(self) -> None:
        """Wait for the device: on a GPU, work is queued and Python runs ahead of it."""
        if getattr(self.device, "type", "cpu") == "cuda":
            import torch

            torch.cuda.synchronize()

    # ---------------------------------------------------------------- the steps
    def banner(self) -> str:
        c = self.config
        many = "s" if self.batch_size > 1 else ""
        line = (f"{self.stage}: {len(self.docs)} docs, vocab {c.vocab_size}, {self.num_params} parameters, "
                f"{self.steps} steps of {self.batch_size} document{many}, {self.dtype} on {self.env['device']}")
        extras = [f"torch {self.env['torch']}, {self.env['threads']} thread(s)"] if "threads" in self.env else []
        if self.env.get("compile_s") is not None:
            extras.append(f"compiled in {self.env['compile_s']:.1f} s")
        if self.env.get("kernels_per_step"):
            extras.append(f"{self.env['kernels_per_step']} kernels per step")
        if self.env.get("cuda_graph"):
            extras.append("replayed as one CUDA graph")
        return ", ".join([line, *extras, *self.description])

    def begin(self) -> None:
        if self.started:
            return
        self.started = True
        print(self.banner(), flush=True)
        if self.interpreter:
            print("no CUDA GPU: every kernel runs in Triton's CPU interpreter (NumPy emulation) -- "
                  "right numbers, interpreter speed; the timings below measure the interpreter", flush=True)
        self.record.restart_clock()

    def each_step(self) -> Iterator[int]:
        """The steps, 0-based, each timed from here to its `log`."""
        self.begin()
        for step in range(self.last_step):
            if self.step_started is not None:
                raise RuntimeError(f"step {step - 1} was not logged: call run.log(loss) once per step")
            self.phases = {}
            self.step_started = time.perf_counter()
            yield step

    def batches(self) -> Iterator[tuple[int, list[list[int]]]]:
        """(step, batch): the step's B documents (SPEC.md's order), as [BOS] + ids + [BOS] lists."""
        for step in self.each_step():
            docs = dataset.step_documents(self.docs, step, self.batch_size)
            yield step, [self.tokenizer.encode_doc(doc) for doc in docs]

    @contextlib.contextmanager
    def phase(self, name: str):
        """Time a part of the step (forward, backward, optimizer). Only on a CPU: on a GPU the
        host only queues the work, so a phase's wall time would measure the queueing."""
        started = time.perf_counter()
        yield
        if getattr(self.device, "type", self.device) == "cpu":
            self.phases[name] = self.phases.get(name, 0.0) + time.perf_counter() - started

    def log(self, loss, **series) -> None:
        """End the step: its loss (a number, or a one-element tensor), the log line, the record."""
        loss = float(loss.item() if hasattr(loss, "item") else loss)  # a device tensor: waits for the loss
        self.sync()  # ... and for the rest of the step
        seconds = time.perf_counter() - self.step_started
        step = len(self.record.losses)
        phases = {f"{name}_ms": s * 1e3 for name, s in self.phases.items()}
        self.record.record(loss, seconds, doc_len=self.doc_len[step], **phases, **series)
        self.step_started = None

    def log_launch(self, launch: Callable[[], list[float]]) -> None:
        """The whole run in one call: `launch()` trains every step and returns their losses.
        Each step is logged with an equal share of its time."""
        self.begin()
        print(f"one launch for all {self.last_step} steps: the log follows when it returns", flush=True)
        started = time.perf_counter()
        losses = launch()
        self.record.record_launch(losses, time.perf_counter() - started, doc_len=self.doc_len[:len(losses)])

    @property
    def losses(self) -> list[float]:
        return self.record.losses


def start(stage_file: str | os.PathLike, flags: Flags, argv: list[str] | None = None,
          max_steps: int | None = None) -> Run:
    """A run of the stage whose main.py (or other program) is `stage_file`, from its command line.
    `max_steps` stops a run early without changing its schedule (tests compare first steps)."""
    path = Path(stage_file).resolve()
    description = (ast.get_docstring(ast.parse(path.read_text())) or path.name).splitlines()[0]
    return Run(path.parent.name, parse(path.parent, flags, argv, description), flags, max_steps)


def train_and_sample(stage_file, flags: Flags, train: Callable, sample: Callable, argv=None) -> dict:
    """Train, write the results file, sample, write it again with the names; return the results.

    `train(run)` returns what `sample(trained, config, tokenizer, rng, temperature)` draws from."""
    run = start(stage_file, flags, argv)
    with run.record:  # Ctrl-C: the steps done so far, marked partial
        trained = train(run)
    if len(run.losses) != run.last_step:
        raise RuntimeError(f"train() logged {len(run.losses)} of {run.last_step} steps")
    run.record.write([])  # the trained run is on disk before sampling starts
    names = [sample(trained, run.config, run.tokenizer, run.rng, run.args.temperature)
             for _ in range(run.args.samples)]
    for i, name in enumerate(names, start=1):
        print(f"sample {i:2d}: {name}")
    return run.record.finish(names)


def main(stage_file, flags: Flags, train: Callable, sample: Callable) -> None:
    """The program: train_and_sample from sys.argv, bad input as one line, then exit."""
    sys.exit(cli.run(lambda: train_and_sample(stage_file, flags, train, sample)))
