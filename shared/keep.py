"""Named values: how a stage lets a reader see inside its step without anyone reaching in.

A stage's forward pass hands each quantity of the model through `keep(name, value)`, which
gives the value back unchanged, so the line reads as it would without it:

    q = keep("q", linear(x, params["layer0.attn_wq"]))

While a stage trains, nothing is kept. Inside `with keeping() as kept:`, each call appends a
`Kept` to `kept[name]`: the value, and the function and line of main.py that computed it.
A value that autograd tracks (a PyTorch tensor) is asked to keep its gradient too, so after
`loss.backward()` every kept value has one (`Value.grad`, `Tensor.grad`, `tensor.grad`).

The names are SPEC.md's ("Named values"), the same in every stage. What reads them -- the
one-step page (report/step_page.py), the diagrams, the tests -- runs a stage's own code and
reads what it kept; it never wraps a stage's functions, counts its calls or quotes its lines,
so a stage can rename or reshape its helpers without breaking them.
"""

import contextlib
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

_kept: dict[str, list["Kept"]] | None = None  # None: nothing is being kept (training)


@dataclass
class Kept:
    value: object  # what the stage computed: a list of Values, a Tensor, a torch tensor, an array
    function: str  # the function that kept it ("gpt", "CausalSelfAttention.forward")
    file: str  # its file's folder and name: "<chapter folder>/main.py"
    line: int  # its line in that file


def keep(name: str, value):
    """`value`, unchanged; inside `keeping()` it is also recorded under `name`."""
    if _kept is not None:
        caller = sys._getframe(1)
        path = Path(caller.f_code.co_filename)
        if getattr(value, "requires_grad", False) and not getattr(value, "is_leaf", True):
            value.retain_grad()  # a PyTorch tensor inside the graph: keep its gradient after backward()
        _kept.setdefault(name, []).append(
            Kept(value, caller.f_code.co_qualname, f"{path.parent.name}/{path.name}", caller.f_lineno))
    return value


@contextlib.contextmanager
def keeping() -> Iterator[dict[str, list[Kept]]]:
    """{name: [Kept, ...]}, in the order the values were computed, filled while the block runs."""
    global _kept
    outer, _kept = _kept, {}
    try:
        yield _kept
    finally:
        _kept = outer
