"""A benchmark's record, written again as it grows, by the runs' rule for unfinished records.

A sitting that measures row after row (benchmarks/gpu_batches.py) writes what it has after
each row, so a sitting stopped halfway keeps its rows; shared/saving.py says where an
unfinished record may go.
"""

import os
import sys
from pathlib import Path

from shared.saving import partial_path, write_or_rescue


class Progress:
    """A record written again as it grows (a benchmark sitting, row by row), by the stages' rule:
    while unfinished it goes to `out`, unless `out` held a complete record when the writer
    started, which is never replaced by an unfinished one: then it goes beside, to
    `<name>.partial.json`. The finished record goes to `out`, and the partial beside is removed."""

    def __init__(self, out: str | os.PathLike, name: str):
        self.out, self.name = Path(out), name
        self.unfinished = partial_path(self.out)

    def write(self, obj: dict, complete: bool) -> Path:
        """Write `obj` (with `"complete"` set) where it belongs; rescued to the temporary folder,
        and said so, if that fails."""
        obj = {**obj, "complete": complete}
        where, err = write_or_rescue(self.out if complete else self.unfinished, obj, self.name)
        if err is not None:
            print(f"could not write {self.out if complete else self.unfinished} ({err.strerror}); "
                  f"saved in {where} instead", file=sys.stderr, flush=True)
        elif complete and self.unfinished != self.out:
            self.unfinished.unlink(missing_ok=True)
        return where

