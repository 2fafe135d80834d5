"""The names dataset: where to find it and how to read it.

makemore's names.txt (32,033 names) is committed in this repository as `data/names.txt`,
so a fresh clone trains with no network. The file is found in this order, first hit wins:

1. `--data PATH` on the command line;
2. the environment variable `MICROGPT_DATA`;
3. `data/names.txt` at the top of this repository.

A document is one non-empty line with surrounding whitespace stripped (SPEC.md, "Data"); a
UTF-8 byte-order mark at the start of the file is dropped. The file must be a regular file
of at most 256 MiB.
"""

import os
from pathlib import Path

from shared.errors import UserError

REPO_ROOT = Path(__file__).resolve().parent.parent
NAMES_PATH = REPO_ROOT / "data" / "names.txt"
ENV_VAR = "MICROGPT_DATA"
MAX_DATA_BYTES = 256 * 2**20  # a larger data file is refused, before it is read
# SHA-256 of makemore's names.txt; a test holds the committed copy to it.
NAMES_SHA256 = "0a30b5557f192f32ab962680889aac5f6fda0f4cecf40a6d0b5694f58ea8cc4d"


def resolve_data_path(path: str | os.PathLike | None = None) -> Path:
    """The data file to train on: `path`, else $MICROGPT_DATA, else the committed names.txt."""
    if path is not None:
        return Path(path)
    if os.environ.get(ENV_VAR):
        return Path(os.environ[ENV_VAR])
    if not NAMES_PATH.exists():
        raise UserError(f"{NAMES_PATH} is missing from this checkout; restore it with "
                        f"`git checkout -- data/names.txt`, or pass --data PATH or set {ENV_VAR}=PATH")
    return NAMES_PATH


def load_docs(path: str | os.PathLike) -> list[str]:
    """The documents of `path`: its non-empty lines, stripped, in file order."""
    try:
        return read_docs(Path(path))
    except OSError as err:  # a name too long for the file system, a loop of symlinks, ...
        shown = str(path) if len(str(path)) <= 80 else f"{str(path)[:40]}...{str(path)[-40:]}"
        raise UserError(f"data file {shown} cannot be read ({err.strerror}); pass --data with a path to "
                        f"names.txt") from None


def read_docs(path: Path) -> list[str]:
    if not path.exists():
        raise UserError(f"data file {path} does not exist; pass --data with a path to names.txt")
    if path.is_dir():
        raise UserError(f"data path {path} is a directory; pass --data with a path to names.txt")
    if not path.is_file() and not path.is_fifo():  # a pipe (`--data <(head names.txt)`) is read once, below
        raise UserError(f"data path {path} is not a regular file; pass --data with a path to a text file of names")
    too_big = (f"data file {path} is over the {MAX_DATA_BYTES // 2**20} MiB this tutorial reads (names.txt is "
               f"0.2 MiB); give a smaller file")
    if path.is_file() and path.stat().st_size > MAX_DATA_BYTES:
        raise UserError(too_big)
    try:
        with open(path, "rb") as f:
            raw = f.read(MAX_DATA_BYTES + 1)  # at most one byte over the cap: a pipe has no size to ask first
    except OSError as err:
        raise UserError(f"cannot read data file {path} ({err.strerror}); check its permissions") from None
    if len(raw) > MAX_DATA_BYTES:
        raise UserError(too_big)
    raw = raw.removeprefix(b"\xef\xbb\xbf")  # a UTF-8 byte-order mark is not a character of the first name
    docs = []
    for lineno, line in enumerate(raw.splitlines(), start=1):  # \n, \r\n, or an old Mac's \r alone
        try:
            text = line.decode("utf-8")
        except UnicodeDecodeError:
            raise UserError(
                f"{path} line {lineno} is not valid UTF-8 text; fix or remove that line"
            ) from None
        if text.strip():
            docs.append(text.strip())
    if not docs:
        raise UserError(f"data file {path} has no non-empty lines; give a file with one name per line")
    return docs


def step_documents(docs: list[str], step: int, batch_size: int = 1) -> list[str]:
    """The documents step `step` (0-based) trains on: positions step*B .. step*B + B - 1 of the
    shuffled list, wrapping around at its end (SPEC.md, "Training"). B = 1 is microgpt's run."""
    return [docs[(step * batch_size + j) % len(docs)] for j in range(batch_size)]


class StepPositions:
    """The target positions each of `num_steps` steps trains, summed over its batch, when document
    i of the shuffled list has lengths[i] of them: step s takes documents (s*B + j) mod
    len(lengths). Counted when asked, from prefix sums over the endlessly repeated list, so
    neither a step's batch nor a list as long as the run (--steps 10**12) is ever built."""

    def __init__(self, lengths: list[int], num_steps: int, batch_size: int = 1):
        self.total, self.prefix = sum(lengths), [0]
        for n in lengths:
            self.prefix.append(self.prefix[-1] + n)
        self.num_docs, self.num_steps, self.batch_size = len(lengths), num_steps, batch_size

    def first(self, k: int) -> int:  # the positions of the first k documents of the repeated list
        laps, rest = divmod(k, self.num_docs)
        return laps * self.total + self.prefix[rest]

    def __len__(self) -> int:
        return self.num_steps

    def __getitem__(self, step):
        if isinstance(step, slice):
            return [self[s] for s in range(*step.indices(self.num_steps))]
        if not 0 <= step < self.num_steps:
            raise IndexError(step)
        return self.first((step + 1) * self.batch_size) - self.first(step * self.batch_size)

    def __eq__(self, other) -> bool:
        return list(self) == list(other)


def positions_per_step(lengths: list[int], num_steps: int, batch_size: int = 1) -> StepPositions:
    """StepPositions: step s's target positions, as a sequence that computes each when asked."""
    return StepPositions(lengths, num_steps, batch_size)
