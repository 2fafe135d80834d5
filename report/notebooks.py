"""Re-execute the comparison notebooks in place, writing their committed figures.

    python -m report.notebooks              # every chapter's compare.ipynb
    python -m report.notebooks 3_pytorch    # one chapter

Each notebook reads the committed results files, draws its plots into its own folder (the PNGs
the READMEs show) and is saved with its outputs, so it renders unexecuted. A reader's own
`last_run.json` is left out of what is committed (plotting.reader_run).
"""

import os
import sys

import nbformat
from nbclient import NotebookClient

from report.plotting import FIGURES_ENV, REPO_ROOT

CHAPTERS = ["1_pure_python", "2_numpy", "3_pytorch", "4_triton", "5_distributed"]


def main(argv: list[str] | None = None) -> int:
    from shared.cli import Parser

    parser = Parser(prog="python -m report.notebooks", description=__doc__.splitlines()[0])
    parser.add_argument("chapters", nargs="*", metavar="CHAPTER",
                        help=f"the chapters to execute (default: all of {', '.join(CHAPTERS)})")
    args = parser.parse_args(argv)
    for chapter in args.chapters:
        if chapter not in CHAPTERS:
            parser.error(f"no chapter {chapter!r}; choose from {', '.join(CHAPTERS)}")
    os.environ[FIGURES_ENV] = "1"
    os.environ.pop("MPLBACKEND", None)  # the kernel's inline backend: the plots are saved in the notebook too
    for chapter in args.chapters or CHAPTERS:
        path = REPO_ROOT / chapter / "compare.ipynb"
        nb = nbformat.read(path, as_version=4)
        NotebookClient(nb, timeout=1200, kernel_name="python3",
                       resources={"metadata": {"path": str(path.parent)}}).execute()
        nbformat.write(nb, path)
        print(path.relative_to(REPO_ROOT))
    return 0


if __name__ == "__main__":
    sys.exit(main())
