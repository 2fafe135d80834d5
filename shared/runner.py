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
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from shared import cli, dataset, results
from shared.errors import UserError, stopped
from shared.tokenizer import Tokenizer, positions
from shared.weights import GPTConfig, init_run, param_shapes


@dataclass(frozen=True)
class Flags:
    """What a program's command line offers beyond SPEC.md's common flags, and what it runs on.

    dtypes: the number types it trains in, the default first (one: no --dtype flag).
    engine: "python" (scalar Values, stage 1), "numpy" (stage 2), "torch" (--device and
        --threads: PyTorch picks a CPU, CUDA or Apple GPU), or "triton" (a CUDA GPU, else
        Triton's CPU interpreter).
    compile: --compile (torch.compile).  cuda_graph: --no-cuda-graph.
    activations: whether a step keeps its activations in memory (the one-kernel step keeps
        them in registers); the memory estimate counts them.
    extra, check: a program's own flags (`extra(parser)`) and their checks (`check(args, parser)`).
    """

    dtypes: tuple[str, ...] = ("float64",)
    engine: str = "python"
    compile: bool = False
    cuda_graph: bool = False
    activations: bool = True
    extra: Callable | None = None
    check: Callable | None = None


def parse(stage_dir: Path, flags: Flags, argv: list[str] | None, description: str):
    parser = cli.build_parser(description, stage_dir)
    cli.add_stage_flags(parser, flags.dtypes, flags.engine, flags.compile, flags.cuda_graph)
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
    if flags.engine in ("python", "numpy"):
        return "cpu", "cpu", False
    import torch

    if flags.engine == "torch":
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
        data = dataset.resolve_data_path(args.data)
        check_not_the_data(args.out, data)
        docs = dataset.load_docs(data)
        self.tokenizer = Tokenizer.from_docs(docs)
        self.config = GPTConfig(self.tokenizer.vocab_size, args.n_layer, args.n_embd, args.n_head, args.block_size)
        self.device, device_name, self.interpreter = pick_device(flags, args)
        check_memory(flags, self.config, args.batch_size, args.dtype, self.device)
        self.docs, self.initial_weights, self.rng = init_run(docs, self.config, args.seed)
        self.steps, self.batch_size, self.dtype = args.steps, args.batch_size, args.dtype
        self.last_step = min(self.steps, max_steps or self.steps)  # tests may stop early in a long schedule
        lengths = [positions(self.tokenizer.encode_doc(doc), self.config.block_size) for doc in self.docs]
        self.doc_len = dataset.positions_per_step(lengths, self.last_step, self.batch_size)
        env = {"interpreter": self.interpreter}
        if flags.engine in ("torch", "triton"):
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
        """Call `step(batch)` on a batch of the run's size made of the shortest document, then
        one of the longest, timed apart from the steps: a compiler that specializes on shapes
        (the batch size, the padded length) meets them before the timed steps."""
        with self.timed(name):
            for doc in (min(self.docs, key=len), max(self.docs, key=len)):
                step([self.tokenizer.encode_doc(doc)] * self.batch_size)

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
        results.say(self.banner())
        if self.interpreter:
            results.say("no CUDA GPU: every kernel runs in Triton's CPU interpreter (NumPy emulation) -- "
                        "right numbers, interpreter speed; the timings below measure the interpreter")
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
        results.say(f"one launch for all {self.last_step} steps: the log follows when it returns")
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

    `train(run)` returns what `sample(trained, config, tokenizer, rng, temperature)` draws from.
    The trained run is on disk before sampling starts, so nothing after training can lose it."""
    run = start(stage_file, flags, argv)
    with run.record:  # Ctrl-C or SIGTERM: the steps done so far, marked partial
        trained = train(run)
    if len(run.losses) != run.last_step:
        raise RuntimeError(f"train() logged {len(run.losses)} of {run.last_step} steps")
    where = save(run, [])
    names = []
    try:
        for i in range(run.args.samples):
            names.append(sample(trained, run.config, run.tokenizer, run.rng, run.args.temperature))
            results.say(f"sample {i + 1:2d}: {names[-1]}")
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
    finished = save(run, names, summary=True)
    if results.stdout_closed:
        print(f"the log's reader closed it early (broken pipe); the run went on and is in {finished['path']}",
              file=sys.stderr, flush=True)
    return finished


def save(run: Run, names: list[str], summary: bool = False):
    """Write the results file; if that fails (a full disk, a vanished folder), write it to the
    temporary folder instead and say so in one line. Returns the path (with `summary`, the results)."""
    try:
        if summary:
            return {**run.record.finish(names), "path": str(Path(os.path.realpath(run.record.out)))}
        return results.write_json_atomic(run.record.out, run.record.results(names))
    except OSError as err:
        rescue = Path(tempfile.gettempdir()) / f"microgpt-{run.stage}-{os.getpid()}.json"
        try:
            results.write_json_atomic(rescue, run.record.results(names))
        except OSError:
            raise UserError(f"cannot write the results to {run.record.out} ({err.strerror}), nor to {rescue}; "
                            f"free some space and train again") from None
        raise UserError(f"cannot write the results to {run.record.out} ({err.strerror}); the trained run is "
                        f"saved in {rescue} instead") from None


def main(stage_file, flags: Flags, train: Callable, sample: Callable) -> None:
    """The program: train_and_sample from sys.argv, bad input as one line, then exit."""
    sys.exit(cli.run(lambda: train_and_sample(stage_file, flags, train, sample)))


# ---------------------------------------------------------------------------- checks before a run

def check_not_the_data(out: str, data: Path) -> None:
    """--out must not be the data file, under any name: the results would replace the names."""
    if Path(out).exists() and data.exists() and os.path.samefile(out, data):
        raise UserError(f"--out {out} is the data file {data}; writing the results there would replace the "
                        f"names; choose another --out path")


GIB = 2**30
BYTES_PER_VALUE = 250  # a stage-1 Value: the object, its float, its two tuples (measured with tracemalloc)


def memory_needed(flags: Flags, config: GPTConfig, batch_size: int, dtype: str) -> int:
    """A generous estimate of the bytes a training step holds at once, from the sizes alone.

    Every engine keeps the initial weights as Python floats (shared/weights.py). Stage 1 makes
    a Value for every multiply and add: per position about 24 C^2 per layer, 4 T C + 5 H T for
    attention, 2 V C for the logits. The array engines keep each position's activations and
    their gradients (about 40 C + 8 H T numbers per layer, 8 V for the logits) and the
    parameters, their gradients and Adam's two moments."""
    C, T, H, V, L = config.n_embd, config.block_size, config.n_head, config.vocab_size, config.n_layer
    params = sum(rows * cols for _, (rows, cols) in param_shapes(config))
    initial = params * 32  # a float object and its list slot
    positions = batch_size * T  # at most
    if flags.engine == "python":
        nodes = L * (24 * C * C + 4 * T * C + 5 * H * T + 8 * C) + 2 * V * C + 5 * V
        return initial + (params + positions * nodes) * BYTES_PER_VALUE
    itemsize = 8 if dtype == "float64" else 4
    per_position = L * (40 * C + 8 * H * T) + 8 * V if flags.activations else 0
    partials = 0  # stage 4 sums a large batch's weight gradients in parts: up to 1024 copies of one matrix
    if flags.engine == "triton" and flags.activations:
        partials = min(1024, -(-positions // 256)) * max(4 * C * C, V * C, (V + T) * C) * itemsize
    return initial + 8 * params * itemsize + 2 * positions * per_position * itemsize + partials


def memory_available(device) -> tuple[int | None, str]:
    """(bytes free, where) on the device a run allocates on: the GPU's free memory, else the
    host's available memory (None where the system does not say)."""
    if getattr(device, "type", "cpu") == "cuda":
        import torch

        return torch.cuda.mem_get_info(device)[0], "free on the GPU"
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024, "available on this machine"
    except OSError:
        pass
    return None, ""


def check_memory(flags: Flags, config: GPTConfig, batch_size: int, dtype: str, device) -> None:
    """Refuse, before allocating anything, a run that cannot fit (SPEC.md, Bad input)."""
    needed = memory_needed(flags, config, batch_size, dtype)
    free, where = memory_available(device)
    if free is not None and needed > free:
        raise UserError(f"this run needs about {needed / GIB:,.1f} GiB ({config.n_layer} layer(s) of width "
                        f"{config.n_embd}, {batch_size} document(s) per step, block size {config.block_size}) and "
                        f"{free / GIB:,.1f} GiB are {where}; use a smaller --batch-size, --n-embd, --n-layer or "
                        f"--block-size")


# ---------------------------------------------------------------------------- before a program runs

def one_line_on_load(exc_type, exc, tb):
    """An exception while a program is still loading its packages: a missing package (the system
    Python instead of the project's venv) or Ctrl-C during `import torch` is one line."""
    if issubclass(exc_type, KeyboardInterrupt):
        print("interrupted", file=sys.stderr, flush=True)
        os._exit(130)
    if issubclass(exc_type, ModuleNotFoundError) and (exc.name or "").split(".")[0] in PACKAGES:
        print(f"error: {Path(sys.argv[0]).name} needs {exc.name.split('.')[0]}, which {sys.executable} does not "
              f"have; run it with the project's Python, .venv/bin/python (README.md, Quick start), or "
              f"pip install -r requirements.txt into this one", file=sys.stderr, flush=True)
        return
    sys.__excepthook__(exc_type, exc, tb)


PACKAGES = ("numpy", "torch", "matplotlib")  # (Triton has its own message: 4_triton/kernels/__init__.py)
if Path(sys.argv[0]).name in ("main.py", "fused_step.py"):
    sys.excepthook = one_line_on_load
