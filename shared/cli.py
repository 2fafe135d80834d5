"""The command line every stage's main.py shares (SPEC.md: same flags, same checks).

    python N_stage/main.py [--steps 1000] [--batch-size 1] [--seed 42] [--data PATH] [--out PATH]
                           [--samples 20] [--temperature 0.5]
                           [--n-layer 1] [--n-embd 16] [--n-head 4] [--block-size 16]

A program adds its own flags by declaring them in its `Flags`, with the other things only
it knows and the runner asks for: its dtypes, where it runs (shared/devices.py), how its
memory grows (shared/memory.py), and the sizes it can hold.

Usage mistakes exit with argparse's status 2; other bad input raises `UserError`, which
`run` turns into one line on stderr and status 1. Ctrl-C exits with 130.
"""

import argparse
import os
import signal
import stat
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from shared import devices
from shared.errors import HungUp, Terminated, UserError
from shared.memory import Memory


@dataclass(frozen=True)
class Flags:
    """What a program's command line offers beyond SPEC.md's common flags, and what it runs on.

    dtypes: the number types it trains in, the default first (one: no --dtype flag).
    device: picks the device from the flags (shared/devices.py: `cpu`, or `torch_device`, which
        adds --device and --threads; a program may name its own).
    memory: how a step's memory grows with its sizes, for the check before a run.
    extra, check: the program's own flags (`extra(parser)`) and their checks, with the sizes its
        kernels can hold (`check(args)`: what is wrong, in one line, or None; a usage error).
    """

    dtypes: tuple[str, ...] = ("float64",)
    device: Callable = devices.cpu
    memory: Memory = field(default_factory=Memory)
    extra: Callable | None = None
    check: Callable | None = None


class Parser(argparse.ArgumentParser):
    """argparse, but a usage mistake is one line (the full usage stays in --help)."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


MIN_TEMPERATURE = 0.001  # logits / temperature must stay finite in float32
RUN_FILE = "last_run.json"  # a reader's own run; the committed results*.json are benchmark sittings
MAX_THREADS = 1024  # far past any machine's cores, and within what torch.set_num_threads takes
SPEC_STEPS = 1000  # SPEC.md's run; a much shorter one samples before the model has learned names
UNTRAINED_BELOW = 200  # steps under which main.py says its samples will be gibberish


def build_parser(description: str, stage_dir: Path) -> argparse.ArgumentParser:
    """The common flags; a stage adds its own (--device, --dtype, ...) to the result.

    Without --out a run writes `<stage>/last_run.json` (ignored by git), never the committed
    results files the READMEs and tests read."""
    parser = Parser(
        description=description, formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    parser.add_argument("--steps", type=int, default=SPEC_STEPS,
                        help="training steps, and the learning-rate schedule's length")
    parser.add_argument("--stop-after", type=int, default=None, metavar="K",
                        help="train only the first K steps of the --steps schedule: the same K steps the whole run "
                             "begins with (a short --steps K run decays its rate over K steps instead)")
    parser.add_argument("--batch-size", type=int, default=1,
                        help="documents per step; step i trains on documents i*B .. i*B+B-1 of the shuffled list")
    parser.add_argument("--seed", type=int, default=42, help="seed of the one random stream")
    parser.add_argument("--data", type=str, default=None,
                        help="names file (default: $MICROGPT_DATA, then the committed data/names.txt)")
    parser.add_argument("--out", type=str, default=str(stage_dir / RUN_FILE), help="results JSON to write")
    parser.add_argument("--samples", type=int, default=20, help="names to sample after training")
    parser.add_argument("--temperature", type=float, default=0.5, help="sampling temperature")
    parser.add_argument("--n-layer", type=int, default=1, help="transformer blocks")
    parser.add_argument("--n-embd", type=int, default=16, help="embedding width C")
    parser.add_argument("--n-head", type=int, default=4, help="attention heads H (must divide n_embd)")
    parser.add_argument("--block-size", type=int, default=16, help="longest context in tokens")
    return parser


def add_program_flags(parser: argparse.ArgumentParser, flags: Flags) -> None:
    """The flags a program's `Flags` adds to the common ones: --dtype when it offers more than
    one (the first is the default; each is the dtype of its arrays and the arithmetic); its
    device's flags; and its own."""
    if len(flags.dtypes) > 1:
        parser.add_argument("--dtype", choices=list(flags.dtypes), default=flags.dtypes[0],
                            help="the number type of the weights, activations and arithmetic; float64 gives the "
                                 "reference run's numbers to float64 rounding")
    if flags.device is devices.torch_device:
        parser.add_argument("--device", default="auto", help="cpu, cuda, mps, or auto (cuda > mps > cpu)")
        parser.add_argument("--threads", type=int, default=1,
                            help="CPU threads; with tensors this small, more threads only add overhead")
    if flags.extra:
        flags.extra(parser)


def parse(flags: Flags, stage_dir: Path, description: str, argv: list[str] | None = None) -> argparse.Namespace:
    """The common flags and the program's, parsed and checked (a usage error exits with 2)."""
    parser = build_parser(description, stage_dir)
    add_program_flags(parser, flags)
    args = parse_args(parser, argv)
    if len(flags.dtypes) == 1:
        args.dtype = flags.dtypes[0]
    problem = flags.check(args) if flags.check else None
    if problem:
        parser.error(problem)
    return args


def parse_args(parser: argparse.ArgumentParser, argv: list[str] | None = None) -> argparse.Namespace:
    """Parse and validate; a bad value ends the program with a usage line and status 2."""
    args = parser.parse_args(argv)
    for flag in ("steps", "batch_size", "n_layer", "n_embd", "n_head", "block_size", "threads"):
        if getattr(args, flag, 1) <= 0:
            parser.error(f"--{flag.replace('_', '-')} must be positive, got {getattr(args, flag)}")
    if getattr(args, "stop_after", None) is not None and not 1 <= args.stop_after <= args.steps:
        parser.error(f"--stop-after must be from 1 to --steps ({args.steps}), got {args.stop_after}")
    if getattr(args, "threads", 1) > MAX_THREADS:
        parser.error(f"--threads must be at most {MAX_THREADS}, got {args.threads} (this machine has "
                     f"{os.cpu_count()} cores; with tensors this small, 1 is fastest)")
    if args.samples < 0:
        parser.error(f"--samples must be zero or more, got {args.samples}")
    if args.seed < 0:
        parser.error(f"--seed must be zero or more, got {args.seed} (random.Random({args.seed}) would repeat "
                     f"--seed {-args.seed}'s run)")
    if not args.temperature >= MIN_TEMPERATURE:
        parser.error(f"--temperature must be at least {MIN_TEMPERATURE}, got {args.temperature} (at "
                     f"{MIN_TEMPERATURE} sampling already picks the likeliest character almost always)")
    if args.n_embd % args.n_head:
        parser.error(
            f"--n-embd {args.n_embd} is not divisible by --n-head {args.n_head}; "
            f"pick sizes with n_embd % n_head == 0 (e.g. --n-embd 16 --n-head 4)"
        )
    check_writable(args.out)
    return args


def check_writable(path: str) -> None:
    """Fail before training, not after it, if the results file cannot be written.

    --out must name a regular file or a new one. A symlink is written through: the file it
    points to gets the results, and the link stays. A device, a pipe or a directory is refused."""
    try:
        check_out_path(path)
    except OSError as err:  # a name too long for the file system, a loop of symlinks, ...
        raise UserError(f"--out {shorten(path)} cannot be used ({err.strerror}); choose a shorter or "
                        f"another path") from None


def unwritable_folder(path: str) -> str | None:
    """Why a program could not write files into the folder `path` (it is a file, cannot be made,
    or takes no file: no permission, a full disk), or None if it can."""
    folder = Path(path)
    if folder.exists() and not folder.is_dir():
        return f"{path} is a file, not a folder"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=folder, prefix=".write-check-")
        try:
            os.write(fd, b"x")  # (an empty file fits on a full disk; a byte does not)
        finally:
            os.close(fd)
            os.unlink(probe)
    except OSError as err:
        return f"{path} cannot be written ({err.strerror})"
    return None


def guard_record_out(parser: argparse.ArgumentParser, path: str) -> None:
    """A tool's --out for a JSON record, checked before it computes anything: the training programs'
    checks (a folder, a missing or unwritable folder, a read-only file), and an existing file
    must already be a JSON record (not the names, not a source file): else a usage error."""
    try:
        check_writable(path)
        if Path(path).is_file():
            import json

            try:
                record = json.loads(Path(path).read_text(encoding="utf-8"))
            except (ValueError, UnicodeDecodeError):
                record = None
            if not isinstance(record, dict):
                raise UserError(f"--out {path} exists and is not a JSON record; writing there would replace it: "
                                f"choose a new path")
    except UserError as err:
        parser.error(str(err))


def shorten(path: str, keep: int = 80) -> str:
    """A path for a one-line message: a very long one with its middle left out."""
    return path if len(path) <= keep else f"{path[:keep // 2]}...{path[-keep // 2:]}"


def check_out_path(path: str) -> None:
    if path.endswith(("/", os.sep)):
        raise UserError(f"--out {path} names a directory; give a file path such as {Path(path) / 'results.json'}")
    out = Path(os.path.realpath(path))  # through a symlink, to the file it points to
    if out.is_dir():
        raise UserError(f"--out {path} is a directory; give a file path such as {Path(path) / 'results.json'}")
    if out.exists() and not out.is_file():
        raise UserError(f"--out {path} is not a regular file ({file_kind(out)}); give a path for a results file, "
                        f"such as results.json")
    if out.is_file() and not out.stat().st_mode & stat.S_IWUSR:  # (a rename would replace it all the same)
        raise UserError(f"--out {path} is read-only (mode {stat.S_IMODE(out.stat().st_mode):o}): its owner kept it "
                        f"from being changed; make it writable (chmod u+w) or choose another path")
    parent = out.parent
    if not parent.is_dir():
        raise UserError(f"--out directory {Path(path).parent} does not exist; create it or choose another path")
    try:
        fd, probe = tempfile.mkstemp(dir=parent, prefix=".write-check-")
    except OSError as err:
        raise UserError(f"cannot write to --out directory {parent} ({err.strerror}); choose another path") from None
    os.close(fd)
    os.unlink(probe)


def file_kind(path: Path) -> str:
    mode = path.stat().st_mode
    for test, kind in ((stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
                       (stat.S_ISFIFO, "a pipe"), (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return kind
    return "not a regular file"


def on_sigterm(signum, frame):
    raise Terminated()


def on_sighup(signum, frame):
    raise HungUp()


def stop_on_signals() -> None:
    """SIGTERM and SIGHUP stop a program the way Ctrl-C does: what it finished is kept. A SIGHUP
    that was ignored when the program started (`nohup`) stays ignored."""
    signal.signal(signal.SIGTERM, on_sigterm)
    if hasattr(signal, "SIGHUP") and signal.getsignal(signal.SIGHUP) is not signal.SIG_IGN:  # (no SIGHUP on Windows)
        signal.signal(signal.SIGHUP, on_sighup)


def say_last(line: str) -> None:
    """A program's last line, on stderr; a terminal that is gone (it hung up) takes nothing, and
    that is no reason for a traceback."""
    try:
        print(line, file=sys.stderr, flush=True)
    except OSError:
        pass


def run(main: Callable[[], object]) -> int:
    """Call `main`, turning bad input into one line on stderr and a non-zero status; Ctrl-C
    exits with 130; SIGTERM and SIGHUP, taken like Ctrl-C, with 143 and 129. Once `main` has
    ended, a further Ctrl-C leaves at once, quietly: what it did is on disk, and a Ctrl-C inside a
    library's exit handlers (torch has some) would only print "Exception ignored ..." there."""
    stop_on_signals()
    try:
        main()
    except UserError as err:
        say_last(f"error: {err}")
        return 1
    except Terminated as err:
        say_last(str(err) or type(err).word)
        return type(err).status
    except KeyboardInterrupt as err:
        say_last(str(err) or "interrupted")
        return 130
    finally:
        signal.signal(signal.SIGINT, leave_quietly)
    return 0


def leave_quietly(signum, frame):
    """Ctrl-C once the program has ended, inside a library's exit handlers: leave now, saying nothing more."""
    os._exit(130)
