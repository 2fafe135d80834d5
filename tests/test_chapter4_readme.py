"""Chapter 4's README teaches writing a kernel in code that runs: each worked example runs from
the chapter's folder through Triton's interpreter and prints exactly what the README shows
(conftest.run_worked_examples, as for chapters 1-3), each kernel it quotes is the kernel
file's text, each `file:line` it cites holds the code it names, and the sections the chapter 4
exercises point to exist."""

import ast
import re

from conftest import REPO_ROOT, run_worked_examples

CHAPTER = REPO_ROOT / "4_triton"
QUOTED = re.compile(r"<!-- quoted from (\S+): [^>]*-->\n```python\n(.*?)```", re.S)
# "`code` (`file:line`, `file:line` and `file:line`)": where the chapter's own kernels do what it says
CITED = re.compile(r"`([^`]+)` \(((?:`[\w/.]+\.py:\d+`(?:, | and )?)+)\)")


def definition(path, name: str) -> str:
    """The source text of the top-level function `name` in `path`, from the comment lines right
    above its decorators (a backward kernel's derivation) to its last line."""
    source = path.read_text()
    lines = source.splitlines(keepends=True)
    node = next(n for n in ast.parse(source).body if isinstance(n, ast.FunctionDef) and n.name == name)
    start = min([node.lineno] + [d.lineno for d in node.decorator_list]) - 1
    while start > 0 and lines[start - 1].startswith("#"):
        start -= 1
    return "".join(lines[start:node.end_lineno])


def test_the_first_kernels_print_what_the_readme_says():
    """The first kernel, the 2-D tile and rmsnorm's forward and backward against autograd, each
    run as the README shows it, print the README's output; the bounds checker's message too."""
    printed = run_worked_examples("4_triton")
    assert len(printed) == 4
    first, tile, rmsnorm, out_of_bounds = printed
    assert first.splitlines()[0] == "(3,) " + str([float(i * i) for i in range(10)])
    assert tile.splitlines()[1] == str([[float(j * s) for j in range(5 * i, 5 * i + 5)]
                                        for i, s in enumerate([1, 10, 100])])
    assert rmsnorm.splitlines()[-1] == "True True"  # forward and backward equal PyTorch's
    assert out_of_bounds == "program (2,) stored y_ptr at offset 10, past the end (10 elements) (and 1 more lane " \
                            "outside it): mask the store\n"


def test_the_quoted_kernels_are_the_files_text():
    readme = (CHAPTER / "README.md").read_text()
    quoted = QUOTED.findall(readme)
    assert {name for _, block in quoted for name in re.findall(r"^def (\w+)", block, re.M)} >= {
        "rmsnorm_fwd_kernel", "rmsnorm_bwd_kernel"}
    for path, block in quoted:
        (name,) = re.findall(r"^def (\w+)", block, re.M)
        now = definition(CHAPTER / path, name)
        assert block == now, f"4_triton/README.md quotes {path}'s {name} as it was; it is now:\n{now}"


def test_the_cited_lines_hold_the_code_the_readme_names():
    readme = (CHAPTER / "README.md").read_text()
    cited = CITED.findall(readme)
    assert len(cited) >= 4
    for code, places in cited:
        for path, line in re.findall(r"`([\w/.]+\.py):(\d+)`", places):
            text = (CHAPTER / path if (CHAPTER / path).exists() else REPO_ROOT / path).read_text().splitlines()
            assert code in text[int(line) - 1], f"4_triton/README.md: {path}:{line} no longer holds `{code}`"
