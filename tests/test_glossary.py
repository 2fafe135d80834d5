"""Every glossary term is linked where a reader first meets it.

Chapters are read in order (1 to 5). A term's first use in that order must be its link (or
come after it, in the same chapter); a chapter that links a term uses it nowhere before that
link; and the chapter a term belongs to (its glossary section says which) links it if it
uses it. A "use" is the term in the chapter's prose or inline code, in any case for a lowercase
term, plural or singular; fenced code, generated tables and link targets are not prose.
"""

import re

import pytest

from conftest import REPO_ROOT

CHAPTERS = ["1_pure_python", "2_numpy", "3_pytorch", "4_triton", "5_distributed"]
ENTRY = re.compile(r'<a id="([^"]+)"></a>\*\*(.+?)\*\*')
# Words that name a glossary term only in some chapters: checked from that chapter on (before,
# a "program" is a Python program and a "stream" the residual stream).
FROM_CHAPTER = {"program": "4_triton", "stream": "4_triton", "threads": "3_pytorch", "device": "3_pytorch",
                "view": "2_numpy", "shape": "2_numpy", "launch": "3_pytorch"}


# Entries whose bold text is not how the chapters say them
NAMES = {"moments": ["first moment", "second moment"], "qkv": ["query"], "masked-load": ["masked load", "masked store"],
         "matmul": ["ᵀ"], "device": ["host", "device"], "fusion": ["fusion", "fused"],
         "threads": ["thread"], "gflops": ["GFLOP/s"],
         "sdpa": ["SDPA", "scaled dot-product attention", "scaled-dot-product attention"],
         "layernorm": ["LayerNorm", "layer-norm", "layer norm"]}


def entries() -> list[tuple[str, list[str], str | None]]:
    """(anchor, the names a reader would meet it by, its chapter) for every glossary entry."""
    out, chapter = [], None
    for line in (REPO_ROOT / "GLOSSARY.md").read_text().splitlines():
        if line.startswith("## "):
            found = re.search(r"\(chapter (\d)\)", line)
            chapter = CHAPTERS[int(found.group(1)) - 1] if found else None
        for anchor, bold in ENTRY.findall(line):
            out.append((anchor, NAMES.get(anchor) or names(bold), chapter))
    return out


def names(bold: str) -> list[str]:
    """'float32 / float64' -> both; 'SM (streaming multiprocessor)' -> 'SM' and the long form;
    'launch-, memory-, compute-bound' -> the three; '`@` and `ᵀ` (...)' -> the words inside."""
    if bold == "launch-, memory-, compute-bound":
        return ["launch-bound", "memory-bound", "compute-bound"]
    inside = re.findall(r"\(([^)]*)\)", bold)
    main = re.sub(r"\s*\([^)]*\)", "", bold).replace("`", "").strip()
    parts = [p.strip() for p in re.split(r" / |, | and (?=\S)", main) if p.strip()]
    parts += [p.strip() for text in inside for p in text.split(", ")
              if p.strip() and not p.startswith(("q,", "loss", "weight", "decay", "mask", "operator"))]
    return [p for p in parts if len(p) > 1 or not p.isascii()]


def prose(text: str) -> str:
    """The text a reader reads as prose, at the same offsets: fenced code, comments, generated
    blocks and link targets blanked out."""
    blank = lambda m: re.sub(r"[^\n]", " ", m.group())
    text = re.sub(r"<!-- BEGIN .*?<!-- END \w+ -->", blank, text, flags=re.S)
    text = re.sub(r"```.*?```", blank, text, flags=re.S)
    text = re.sub(r"<!--.*?-->", blank, text, flags=re.S)
    text = re.sub(r"(?m)^#.*$", blank, text)  # headings: not linked
    return re.sub(r"\]\([^)]*\)", blank, text)


def first_use(text: str, terms: list[str], longer: list[str]) -> int | None:
    """Offset of the first use of any of `terms`, not counting uses inside a longer term
    ('stream' inside 'residual stream')."""
    hidden = text
    for other in longer:
        hidden = re.sub(re.escape(other), lambda m: " " * len(m.group()), hidden, flags=re.I)
    hits = []
    for term in terms:
        flags = re.I if term.lower() == term else 0
        m = re.search(r"(?<![\w-])" + re.escape(term) + r"(?:s|es)?(?![\w-])", hidden, flags)
        if m:
            hits.append(m.start())
    return min(hits, default=None)


def problems() -> list[str]:
    glossary = entries()
    all_names = [n for _, ns, _ in glossary for n in ns]
    texts = {ch: (REPO_ROOT / ch / "README.md").read_text() for ch in CHAPTERS}
    found = []
    for anchor, terms, home in glossary:
        longer = [n for n in all_names if any(t.lower() in n.lower() and t.lower() != n.lower() for t in terms)]
        met = False
        for chapter in CHAPTERS:
            if anchor in FROM_CHAPTER and CHAPTERS.index(chapter) < CHAPTERS.index(FROM_CHAPTER[anchor]):
                continue
            raw = texts[chapter]
            use = first_use(prose(raw), terms, longer)
            link = raw.find(f"GLOSSARY.md#{anchor})")
            link_start = raw.rfind("[", 0, link) if link >= 0 else None
            where = lambda at, text=raw: text[:at].count("\n") + 1
            if use is None:
                continue
            if link_start is not None and use < link_start:
                found.append(f"{chapter}/README.md:{where(use)}: '{terms[0]}' is used before its glossary link "
                             f"(line {where(link_start)})")
            elif link_start is None and (not met or chapter == home):
                why = "a reader meets it here first" if not met else "its glossary section is this chapter's"
                found.append(f"{chapter}/README.md:{where(use)}: '{terms[0]}' needs a link to "
                             f"GLOSSARY.md#{anchor} at its first use ({why})")
            met = True
    return found


def test_every_glossary_term_is_linked_where_a_reader_first_meets_it():
    found = problems()
    assert not found, "\n".join(found)


@pytest.mark.parametrize("bold, expected", [
    ("float32 / float64", ["float32", "float64"]),
    ("SM (streaming multiprocessor)", ["SM", "streaming multiprocessor"]),
    ("launch-, memory-, compute-bound", ["launch-bound", "memory-bound", "compute-bound"]),
    ("wte, wpe, lm_head", ["wte", "wpe", "lm_head"]),
    ("bias and gain", ["bias", "gain"]),
])
def test_glossary_names_are_read_as_a_reader_would(bold, expected):
    assert names(bold) == expected


def test_the_check_finds_a_use_before_the_link():
    text = "the logits are here. Then [logits](../GLOSSARY.md#logits) explained."
    assert first_use(prose(text), ["logits"], []) == 4
    assert first_use(prose("```\nlogits\n```\nno use"), ["logits"], []) is None
    assert first_use(prose("the residual stream"), ["stream"], ["residual stream"]) is None


# Names of things a reader can look up by name, not terms this tutorial must explain
PROPER_NAMES = {"NumPy", "PyTorch", "NVIDIA", "README", "SPEC", "CI", "RTX", "KB", "MB", "GB", "OpenBLAS", "GitHub",
                "JSON", "PNG", "HTML", "AMD", "EPYC", "Intel", "Apple", "macOS", "Linux", "Windows", "Debian",
                "JavaScript", "Jupyter", "Chromium", "ReLUs", "CPUs", "GPUs", "SMs", "FLOPs", "IDs", "OK"}
# Terms reviewers found unexplained: each needs an entry, so the check above holds them to a link
REQUIRED = ["GPT", "Transformer", "block", "ε", "R²", "label smoothing", "Inductor", "AOTAutograd", "CUDA",
            "tensor core", "shared memory", "LayerNorm", "SDPA", "scaled dot-product attention"]
JARGON = re.compile(r"(?<![\w./#-])([A-Z][A-Za-z0-9]*[A-Z][A-Za-z0-9]*|[A-Z]²)(?![\w-])")  # CUDA, AOTAutograd, R²


def jargon(text: str, known: set[str]) -> list[tuple[str, int]]:
    """(word, line) of every acronym or CamelCase word in the prose that names no glossary term
    and no plain proper name: the words a reader cannot guess."""
    plain = re.sub(r"`[^`\n]*`", lambda m: " " * len(m.group()), prose(text))
    out = []
    for m in JARGON.finditer(plain):
        word = m.group(1)
        if word.lower() not in known and word not in PROPER_NAMES:
            out.append((word, plain[:m.start()].count("\n") + 1))
    return out


def test_the_glossary_holds_the_terms_reviewers_found_unexplained():
    """Why the check above once missed them: it checks the terms the glossary has, and these
    had no entry. Each now has one, so its first use must be its link."""
    known = {n for _, ns, _ in entries() for n in ns}
    assert not [term for term in REQUIRED if term not in known]


def test_no_chapter_uses_an_acronym_or_a_camelcase_word_the_glossary_lacks():
    known = {n.lower() for _, ns, _ in entries() for n in ns} | {
        word.lower() for _, ns, _ in entries() for n in ns for word in n.split()}  # 'KV' of 'KV cache'
    found = [f"{chapter}/README.md:{line}: {word}" for chapter in CHAPTERS
             for word, line in jargon((REPO_ROOT / chapter / "README.md").read_text(), known)]
    assert not found, "add each to GLOSSARY.md (or, for a plain name, to PROPER_NAMES):\n" + "\n".join(found)


def test_the_jargon_check_sees_an_unexplained_acronym():
    assert jargon("a kernel in CUDA, compiled by AOTAutograd, fit with R² and run on NumPy", {"cuda"}) == [
        ("AOTAutograd", 1), ("R²", 1)]
