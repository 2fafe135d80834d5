"""The judge's side of a learner's code: `Learner` stands for the answer's process
(checker/answer.py) -- load the file there, call its functions on these inputs, run backward --
and hands back plain data only (checker/wire.py), turned here into arrays, numbers, `Tensor`s
and Value-graph `Node`s; `Prediction` reads a predicted number from a file's text without
running it. Then the cases, and shrinking a failing one to the smallest that fails the same way.
"""

import ast
import contextlib
import dataclasses
import fractions
import itertools
import re
import sys
from pathlib import Path

import numpy as np

from . import wire
from .verdict import Mismatch, NotWritten, UsedReference, Verdict


class Crashed(Verdict):
    """The learner's code raised where an answer was due."""


class Ended(Verdict):
    """The answer's process ended or ran out of time: nothing more can be asked of it."""


class Tensor:
    """A torch tensor the answer returned, as data: its numbers (`array`), dtype ('torch.int64'),
    whether it requires grad, its handle in the answer's process, and, in chapter 4, which of its
    elements a kernel stored (`stored`, booleans; None elsewhere)."""

    def __init__(self, array: np.ndarray, dtype: str, requires_grad: bool, handle: str, stored=None):
        self.array, self.dtype, self.requires_grad, self.handle, self.stored = array, dtype, requires_grad, handle, \
            stored

    @property
    def shape(self) -> tuple:
        return tuple(self.array.shape)

    @property
    def ndim(self) -> int:
        return self.array.ndim


class Node:
    """A node of a Value graph the answer returned: data, children (Nodes), local_grads, or the
    judge's own input Value it stands for. A field the answer filled with something else is
    an `Other`."""

    type_name = "Value"

    def __init__(self):
        self.data = self.children = self.local_grads = None
        self.input = None


class Other:
    """Something the answer returned that is not plain data: its type's name and a short repr."""

    def __init__(self, type_name: str, text: str):
        self.type_name, self.text = type_name, text

    def __repr__(self):
        return self.text


class Remote:
    """A function (or class) of the learner's module, by name; calling it goes through `Learner.call`."""

    def __init__(self, name: str, info: dict):
        self.__name__, self.info = name, info

    @property
    def apply(self):
        return Remote(self.__name__ + ".apply", {})


@dataclasses.dataclass
class Rank:
    """What one rank of `Learner.ranks` did: its result, what it wrote into its arguments
    ({index: value}), and the bytes of each message it sent (dist.send or dist.isend), in order."""

    result: object
    updated: dict
    sent: list[int]


class Learner:
    """The learner's file, loaded in the answer's process with the references swapped out.

    Set, before `load`: `forbidden` ((owner, attribute, what it is) for each reference the answer
    may not call: the owner a module or class, named to the answer's process), `forbidden_ops`
    ({name of a PyTorch function, or a prefix and *: what it is}, refused when the answer calls
    it), `kernel`
    (chapter 4: the launcher allocates, the kernel computes), `programs` (the answer may start
    processes: refused otherwise), `ranks_used` (chapter 5: the answer runs on forked ranks, its
    sends counted) and `crash_slips` ({text in an error message: the slip it means}).
    """

    def __init__(self, path: Path, process):
        self.path = Path(path).resolve()
        self.process = process
        self.forbidden = []
        self.forbidden_ops: dict[str, str] = {}
        self.kernel = False
        self.programs = False  # whether the answer may start programs (a chapter whose answers start processes)
        self.ranks_used = False  # chapter 5: the answer runs on ranks (`ranks`), its sends counted
        self.crash_slips: dict[str, str] = {}
        self.launches: list[tuple[str, int]] = []  # (kernel, programs) of the last call, in chapter 4
        self.updated: dict[int, object] = {}  # {argument's index: what the last call left in it}, when it wrote one
        self._handles = itertools.count()

    def load(self) -> None:
        """Run the learner's file as a module in the answer's process."""
        if not self.path.is_file():
            raise Crashed(f"there is no file {self.path}")
        reply = self._ask({"verb": "load", "path": str(self.path), "kernel": self.kernel, "programs": self.programs,
                           "ranks": self.ranks_used,
                           "record": bool(self.forbidden_ops),
                           "forbidden": [[_owner_name(owner), attribute, what] for owner, attribute, what in
                                         self.forbidden]})
        with _reading():
            self._facts(reply)

    def info(self, name: str) -> dict:
        """What `name` is in the learner's module: {'exists': False}, or its type, whether it is
        a class (an autograd Function), and its value when it is plain data."""
        info = self._ask({"verb": "attribute", "name": name})
        if not isinstance(info, dict):
            raise Crashed(NOT_A_REPLY)
        return info

    def has(self, name: str) -> bool:
        return bool(self.info(name).get("exists"))

    def attribute(self, name: str) -> Remote:
        """The module's `name`, or Mismatch saying it is missing."""
        info = self.info(name)
        if not info.get("exists"):
            raise Mismatch(f"your file has no `{name}`: keep the stub's name (git diff shows what changed)")
        return Remote(name, info)

    def value(self, name: str, default=None):
        """The module's `name` when it is plain data (a number, a string), else `default`."""
        info = self.info(name)
        return info.get("value", default) if info.get("exists") else default

    def call(self, function: Remote, *args, **kwargs):
        """function(*args, **kwargs) in the answer's process; its result, as data. Arrays and
        tensors the answer wrote into are written back into the judge's `args`."""
        inputs: list = []
        reply = self._ask({"verb": "call", "function": function.__name__,
                           "args": [self._encode(a, inputs) for a in args],
                           "kwargs": {k: self._encode(v, inputs) for k, v in kwargs.items()}})
        with _reading():
            self._facts(reply)
            nodes = _nodes(reply.get("nodes", []), inputs)
            self.updated = {}
            for index, value in reply.get("updated", {}).items():
                if type(index) is int and 0 <= index < len(args):
                    self.updated[index] = _decode(value, nodes)
                    _write_back(args[index], self.updated[index])
            return _decode(reply.get("result"), nodes)

    def ranks(self, function: Remote, args_per_rank: list[list], timeout: float = 10) -> list["Rank"] | None:
        """function(*args_per_rank[r]) on each rank r of a gloo process group of len(args_per_rank)
        processes, forked in the answer's process (chapter 5): per rank, a Rank. None if the ranks
        had not all finished after `timeout` seconds: they wait for each other."""
        inputs: list = []
        reply = self._ask({"verb": "ranks", "function": function.__name__, "timeout": timeout,
                           "args": [[self._encode(a, inputs) for a in args] for args in args_per_rank]})
        with _reading():
            if reply.get("stuck"):
                return None
            ranks = []
            for args, got in zip(args_per_rank, reply["ranks"], strict=True):
                updated = {}
                for index, value in got.get("updated", {}).items():
                    if type(index) is int and 0 <= index < len(args):
                        updated[index] = _decode(value, [])
                        _write_back(args[index], updated[index])
                ranks.append(Rank(_decode(got.get("result"), []), updated, [int(b) for b in got["sent"]]))
            return ranks

    def backward(self, tensor: Tensor, grad, inputs: list) -> list:
        """Run backward from the answer's `tensor` (a result of `call`) with `grad` there; the
        .grad of each of the judge's `inputs` (tensors passed to that call), as arrays or None."""
        reply = self._ask({"verb": "backward", "tensor": tensor.handle, "grad": _array(grad),
                           "inputs": [self._handle_of(t) for t in inputs]})
        with _reading():
            self._facts(reply)
            grads = [None if g is None else _decode(g, []) for g in reply["grads"]]
            if len(grads) != len(inputs):
                raise ValueError(len(grads))
            return grads

    # ------------------------------------------------------------------ the conversation

    def _ask(self, request: dict):
        reply = self.process.request(request)
        if not isinstance(reply, dict) or ("ok" not in reply and "error" not in reply):
            raise Crashed(NOT_A_REPLY)
        if "error" in reply:
            raise self._verdict(reply["error"])
        return reply["ok"]

    def _verdict(self, error) -> Verdict:
        if not isinstance(error, dict) or not isinstance(error.get("message"), str):
            return Crashed("the answer's process replied with an error that says nothing")
        message, kind = error["message"], error.get("kind")
        if kind == "not written":
            return NotWritten(message)
        if kind == "used":
            return UsedReference(message)
        if kind == "mismatch":
            return Mismatch(message)
        text = error.get("text") if isinstance(error.get("text"), str) else ""
        slip = next((what for pattern, what in self.crash_slips.items() if pattern in text), None)
        return Crashed(message + (f" -- {slip}" if slip else ""))

    def _facts(self, reply: dict) -> None:
        for name in reply.get("ops", []):
            for forbidden, what in self.forbidden_ops.items():
                if isinstance(name, str) and (name == forbidden or forbidden.endswith("*") and name.lstrip(
                        "_").startswith(forbidden[:-1].lstrip("_"))):
                    raise UsedReference(f"your code used {what} ({name}): write it yourself")
        self.launches = [(str(k), int(p)) for k, p in reply.get("launches", [])]

    def _handle_of(self, tensor) -> str:
        handle = getattr(tensor, "_answer_handle", None)
        if handle is None:
            raise ValueError("a tensor that was never sent to the answer's process")
        return handle

    def _encode(self, value, inputs: list):
        """The judge's inputs as data: arrays, numbers, lists, chapter 1 Values (leaves, by
        their place in `inputs`), torch tensors (with a handle, for backward)."""
        if isinstance(value, (list, tuple)):
            items = [self._encode(v, inputs) for v in value]
            return items if isinstance(value, list) else tuple(items)
        if all(hasattr(value, a) for a in ("data", "grad", "_children", "_local_grads")):  # chapter 1's Value
            inputs.append(value)
            return wire.Tag("value", data=float(value.data), input=len(inputs) - 1)
        torch = sys.modules.get("torch")
        if torch is not None and isinstance(value, torch.Tensor):
            handle = f"j{next(self._handles)}"
            try:
                value._answer_handle = handle
            except AttributeError:
                pass
            return wire.Tag("tensor", array=value.detach().cpu().numpy().copy(), dtype=str(value.dtype),
                            requires_grad=bool(value.requires_grad), handle=handle)
        if isinstance(value, np.generic):
            return value.item()
        return value


NOT_A_REPLY = "your code's process sent the check a reply that does not read as one (an answer returns its result)"


@contextlib.contextmanager
def _reading():
    """What the answer's process sent is data of the right shape, or Crashed: a reply forged
    from inside the answer's process is the answer's failure, not the checker's."""
    try:
        yield
    except (TypeError, ValueError, KeyError, AttributeError, IndexError):
        raise Crashed(NOT_A_REPLY) from None


def _owner_name(owner) -> str:
    """How the answer's process finds `owner`: 'sys.modules', 'module', or 'module:Class'."""
    if owner is sys.modules:
        return "sys.modules"
    if isinstance(owner, type):
        return f"{owner.__module__}:{owner.__qualname__}"
    return owner.__name__


def _array(value) -> np.ndarray:
    if hasattr(value, "detach"):
        return value.detach().cpu().numpy().copy()
    return np.asarray(value)


def _nodes(records: list, inputs: list) -> list:
    """The graph's records as Nodes (their children linked), or Mismatch if they do not read."""
    nodes = [Node() for _ in records]
    for node, record in zip(nodes, records):
        if not isinstance(record, dict):
            raise Crashed("the answer's process sent a graph that does not read")
        if isinstance(record.get("input"), int) and 0 <= record["input"] < len(inputs):
            node.input = inputs[record["input"]]
            continue
        node.data = _decode(record.get("data"), [])
        children = record.get("children")
        node.children = [nodes[i] for i in children] if isinstance(children, list) and all(
            type(i) is int and 0 <= i < len(nodes) for i in children) else _decode(children, [])
        node.local_grads = _decode(record.get("local_grads"), [])
    return nodes


def _decode(value, nodes: list):
    """Tags as the judge's types (Tensor, Node, Other); everything else is plain data already."""
    if isinstance(value, wire.Tag):
        if value.kind == "tensor" and isinstance(value.get("array"), np.ndarray):
            stored = value.get("stored")
            return Tensor(value["array"], str(value.get("dtype")), bool(value.get("requires_grad")),
                          str(value.get("handle")), stored if isinstance(stored, np.ndarray) else None)
        if value.kind == "node" and type(value.get("i")) is int and 0 <= value["i"] < len(nodes):
            return nodes[value["i"]]
        return Other(str(value.get("type", "object")), str(value.get("text", "")))
    if isinstance(value, list):
        return [_decode(v, nodes) for v in value]
    if isinstance(value, tuple):
        return tuple(_decode(v, nodes) for v in value)
    return value


def _write_back(target, value) -> None:
    """An argument the answer wrote into, updated in the judge's copy (same shape, its dtype)."""
    array = value.array if isinstance(value, Tensor) else value
    if not isinstance(array, np.ndarray):
        return
    if isinstance(target, np.ndarray) and target.shape == array.shape:
        target[...] = array
    elif hasattr(target, "copy_") and tuple(target.shape) == array.shape and not target.requires_grad:
        import torch

        target.copy_(torch.from_numpy(array.copy()))


class Prediction:
    """A prediction's file, read as text: its number is never run, so nothing the file does
    (a counter called at import, a float whose == is always true) reaches the check. A number
    may be written as arithmetic on numbers (6 * 5 * 100), Fraction(a, b), or a name given one
    earlier in the file."""

    def __init__(self, path: Path):
        self.path = Path(path).resolve()
        self.assignments: dict[str, ast.expr] = {}

    def load(self) -> None:
        if not self.path.is_file():
            raise Crashed(f"there is no file {self.path}")
        try:
            tree = ast.parse(self.path.read_bytes(), filename=str(self.path))
        except SyntaxError as err:
            raise Crashed(f"your file has a syntax error at line {err.lineno}: {err.msg}") from None
        except (ValueError, UnicodeDecodeError) as err:
            raise Crashed(f"your file cannot be read as Python ({err})") from None
        for statement in tree.body:
            targets = statement.targets if isinstance(statement, ast.Assign) else \
                [statement.target] if isinstance(statement, ast.AnnAssign) and statement.value else []
            for target in targets:
                if isinstance(target, ast.Name):
                    self.assignments[target.id] = statement.value

    def attribute(self, name: str):
        if name not in self.assignments:
            raise Mismatch(f"your file has no `{name} = ...`: keep the stub's name (git diff shows what changed)")
        return self._evaluate(name, self.assignments[name], set())

    def _evaluate(self, name: str, node: ast.expr, seen: set):
        def refuse(what: str):
            raise Mismatch(f"{name}: {what} -- the check reads your number from the file's text and does not run "
                           f"your code, so write it as a number, or arithmetic on numbers (6 * 5 * (2 * 3072 + 432)): "
                           f"predict first, then count")

        def value(node):
            if isinstance(node, ast.Constant):
                if node.value is None or (isinstance(node.value, (int, float)) and not isinstance(node.value, bool)):
                    return node.value
                refuse(f"{node.value!r} is not a number")
            if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
                operand = number(node.operand)
                return -operand if isinstance(node.op, ast.USub) else operand
            if isinstance(node, ast.BinOp) and type(node.op) in OPERATIONS:
                left, right = number(node.left), number(node.right)
                if isinstance(node.op, ast.Pow) and abs(right) > 64:
                    refuse(f"a power of {right} is larger than any count here")
                try:
                    result = OPERATIONS[type(node.op)](left, right)
                except (ZeroDivisionError, OverflowError) as err:
                    refuse(f"{ast.unparse(node)} cannot be computed ({err})")
                if isinstance(result, complex) or abs(result) > 1e300:
                    refuse(f"{ast.unparse(node)} is not a count")
                return result
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in ("Fraction", "int",
                                                                                                   "float") \
                    and not node.keywords and 1 <= len(node.args) <= (2 if node.func.id == "Fraction" else 1):
                parts = [number(a) for a in node.args]
                return {"Fraction": fractions.Fraction, "int": int, "float": float}[node.func.id](*parts)
            if isinstance(node, ast.Name):
                if node.id in seen or node.id not in self.assignments:
                    refuse(f"`{node.id}` is not a number written in this file")
                return self._evaluate(name, self.assignments[node.id], seen | {node.id})
            if isinstance(node, ast.Dict) and all(isinstance(k, ast.Constant) for k in node.keys):
                return {k.value: value(v) for k, v in zip(node.keys, node.values)}
            shown = ast.unparse(node)
            refuse(f"`{shown if len(shown) <= 60 else shown[:57] + '...'}` is not a number written in the file"
                   + (" (it is a call)" if isinstance(node, ast.Call) else ""))

        def number(node):
            result = value(node)
            if isinstance(result, (dict, type(None))):
                refuse(f"`{ast.unparse(node)}` is not a number")
            return result

        return value(node)


OPERATIONS = {ast.Add: lambda a, b: a + b, ast.Sub: lambda a, b: a - b, ast.Mult: lambda a, b: a * b,
              ast.Div: lambda a, b: fractions.Fraction(a) / b if isinstance(a, int) and isinstance(b, int) else a / b,
              ast.FloorDiv: lambda a, b: a // b, ast.Mod: lambda a, b: a % b, ast.Pow: lambda a, b: a ** b}


# --------------------------------------------------------------------------- cases


class Case(dict):
    """One input of a check: its sizes (ints) and its random seed."""

    @property
    def size(self) -> int:
        if "names" in self:  # a batch of names: its letters
            return sum(map(len, self["names"])) * 100 + self.get("block_size", 0)
        return int(np.prod([v for k, v in self.items() if k != "seed" and isinstance(v, int)] or [1]))

    def label(self) -> str:
        sizes = ", ".join(f"{k}={v}" for k, v in self.items() if k != "seed")
        return sizes + (f" (seed {self['seed']})" if "seed" in self else "")


def random_cases(seed: int, count: int, ranges: dict) -> list[Case]:
    """`count` cases with each size drawn from its (low, high) range, reproducibly."""
    rng = np.random.default_rng(seed)
    return [Case({k: int(rng.integers(lo, hi + 1)) for k, (lo, hi) in ranges.items()}, seed=1000 + i)
            for i in range(count)]


def smaller(case: Case, minimum: dict) -> list[Case]:
    """Cases one shrinking move away from `case`: one size set to its minimum, halved, or less by one."""
    out = []
    for key, low in minimum.items():
        value = case[key]
        for candidate in dict.fromkeys((low, value // 2, value - 1)):
            if low <= candidate < value:
                out.append(Case({**case, key: candidate}))
    return out


COUNTS = re.compile(r"(; )?[\d,]+ of [\d,]+ numbers differ|\(and [\d,]+ more lanes? outside it\)")


def kind(failure: Exception) -> tuple[str, str, str]:
    """What a failure is about, without its numbers: 'dL/dx' of 'dL/dx[0, 2]: expected ...', and
    the slip it names, if any (a smaller case must show the same slip, not another); counts
    ('3 of 17 numbers differ') are left out, since a smaller case has fewer."""
    text = COUNTS.sub("", str(failure))
    return type(failure).__name__, re.split(r"[\[:(]", text, maxsplit=1)[0], text.partition(" -- ")[2]


def over_cases(run, cases: list[Case], minimum: dict | None = None, valid=lambda case: True,
               budget: int = 24) -> None:
    """Run `run(case)` on every case, smallest first. On the first failure, shrink it -- try
    smaller sizes (`minimum` gives each size's floor) while it still fails the same way -- and
    raise the failure of the smallest failing case found, naming that case."""
    for case in sorted(cases, key=lambda c: c.size):
        try:
            run(case)
        except (Mismatch, Crashed) as failure:
            first = case
            tries = itertools.count()
            improved = True
            while improved and minimum:
                improved = False
                for candidate in smaller(case, minimum):
                    if not valid(candidate) or next(tries) >= budget:
                        continue
                    try:
                        run(candidate)
                    except (Mismatch, Crashed) as smaller_failure:
                        if kind(smaller_failure) == kind(failure):
                            case, failure, improved = candidate, smaller_failure, True
                            break
            shrunk = f", shrunk from {first.label()}" if case is not first else ""
            failure.args = (f"on {case.label()}{shrunk}: {failure}",)
            raise failure
