"""A chapter's diff against the one before, section by section.

    python tools/diff_sections.py 1_pure_python 2_numpy      # each section's unified diff
    python tools/diff_sections.py 2_numpy 3_pytorch --stat   # lines added and removed per section

Every main.py has the same sections under the same headers (autograd, parameters, model,
optimizer, training, sampling, command line; README.md says so and tests/test_repo.py holds
it). A plain `diff -u` of two chapters that rewrite most of a section pairs lines across
section borders; this tool diffs each section only against the same section of the other
chapter, so what a chapter changes in its model is read apart from what it changes in its
optimizer. The lines before the first section (the docstring, the imports, the constants)
are the section "preamble".
"""

import argparse
import difflib
import re
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
HEADER = re.compile(r"^# -{88}\n# ([^:\n]+)[^\n]*\n# -{88}\n", re.M)


def sections(path: Path) -> dict[str, list[str]]:
    """{section name: its lines}, in file order; 'preamble' before the first header."""
    text = path.read_text()
    found = list(HEADER.finditer(text))
    out = {"preamble": text[:found[0].start() if found else len(text)].splitlines(keepends=True)}
    for match, after in zip(found, [*found[1:], None]):
        out[match.group(1).strip().lower()] = text[match.start():after.start() if after else len(text)].splitlines(
            keepends=True)
    return out


def diff(old: str, new: str, stat: bool = False) -> str:
    a, b = sections(REPO_ROOT / old / "main.py"), sections(REPO_ROOT / new / "main.py")
    out = []
    for name in dict.fromkeys([*a, *b]):
        lines = list(difflib.unified_diff(a.get(name, []), b.get(name, []), f"{old}/main.py ({name})",
                                          f"{new}/main.py ({name})", n=2))
        added = sum(line.startswith("+") and not line.startswith("+++") for line in lines)
        removed = sum(line.startswith("-") and not line.startswith("---") for line in lines)
        if stat:
            out.append(f"{name:14s} +{added:<4d} -{removed}")
        else:
            out.append(f"=== {name}: +{added} -{removed} lines\n" + "".join(lines))
    return "\n".join(out)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("old", help="the earlier chapter's folder, e.g. 1_pure_python")
    parser.add_argument("new", help="the later chapter's folder, e.g. 2_numpy")
    parser.add_argument("--stat", action="store_true", help="only the lines added and removed per section")
    args = parser.parse_args(argv)
    for folder in (args.old, args.new):
        if not (REPO_ROOT / folder / "main.py").is_file():
            parser.error(f"no chapter {folder!r}: there is no {folder}/main.py; the chapters are "
                         f"{', '.join(p.parent.name for p in sorted(REPO_ROOT.glob('[1-4]_*/main.py')))}")
    print(diff(args.old, args.new, args.stat))
    return 0


if __name__ == "__main__":
    sys.exit(main())
