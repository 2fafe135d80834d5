"""How a check says what is wrong: the verdicts, and `compare`, which finds the first number
that differs and prints it with enough digits to see the difference, the difference itself
and the tolerance it broke.

NumPy is imported here, not torch: chapters 1 and 2 are checked without loading PyTorch.
"""

import math
from fractions import Fraction

import numpy as np


class Verdict(Exception):
    """The check's answer when it is not "ok": one message for the learner."""


class NotWritten(Verdict):
    """The stub is untouched (it still raises NotImplementedError, or its number is None)."""


class Mismatch(Verdict):
    """A wrong answer. `picture` holds the arrays to draw (pictures.py), when a picture helps."""

    def __init__(self, message: str, picture: dict | None = None):
        super().__init__(message)
        self.picture = picture


class UsedReference(Verdict):
    """The answer called the chapter's own version of what it was asked to write."""


def plain(value) -> np.ndarray:
    """An answer as a float64 array, or Mismatch saying why it cannot be read as numbers."""
    if value is None:
        raise Mismatch("your function returned None (a missing `return`?)")
    if isinstance(getattr(value, "array", None), np.ndarray):  # a tensor the answer returned (harness.Tensor)
        value = value.array
    elif hasattr(value, "detach"):  # a torch tensor of the judge's
        value = value.detach().cpu().double().numpy()
    elif isinstance(value, (list, tuple)) and any(isinstance(getattr(v, "array", None), np.ndarray) for v in value):
        value = [(v.array.reshape(()) if v.array.size == 1 else v.array)  # one number each (0-d tensors)
                 if isinstance(getattr(v, "array", None), np.ndarray) else v for v in value]
    try:
        array = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise Mismatch(f"expected numbers, got {describe_type(value)}") from None
    return array


def describe_type(value) -> str:
    """'a list of 3 Value', 'a tuple', 'an int' -- for messages about what came back."""
    name = _type_name(value)
    if isinstance(value, (list, tuple)) and value:
        return f"a {name} of {len(value)} {_type_name(value[0])}"
    return f"{'an' if name[0] in 'aeiou' else 'a'} {name}"


def _type_name(value) -> str:
    """The answer's type: an object that was not plain data says its own (harness.Other, Node)."""
    return getattr(value, "type_name", None) or type(value).__name__


def number(x: float, other: float | None = None) -> str:
    """x with enough significant digits to tell it from `other` (6 at least, 17 at most)."""
    if x == 0:
        return "0"
    if not math.isfinite(x):
        return str(x)
    for digits in range(6, 18):
        text = f"{x:.{digits}g}"
        if other is None or not math.isfinite(other) or text != f"{other:.{digits}g}":
            return text
    return repr(x)


def tolerance_text(atol: float, rtol: float) -> str:
    if atol == 0 and rtol == 0:
        return "exactly equal"
    if rtol == 0:
        return f"|yours - expected| <= {atol:g}"
    return f"|yours - expected| <= {atol:g} + {rtol:g}·|expected|"


def without_noise(expected: np.ndarray) -> np.ndarray:
    """The reference with its rounding noise set to exact zero: an entry far below the array's
    own scale (16 float64 epsilons of its largest entry) is a zero that floating point missed,
    e.g. a gradient that cancels exactly in the math."""
    finite = np.abs(expected[np.isfinite(expected)])
    if finite.size == 0:
        return expected
    noise = 16 * np.finfo(np.float64).eps * float(finite.max())
    cleaned = expected.copy()
    cleaned[np.abs(cleaned) <= noise] = 0.0
    return cleaned


def compare(name: str, got, expected, atol: float, rtol: float = 0.0, slips: dict | None = None,
            unfilled: str | None = None) -> None:
    """Raise Mismatch naming the first element of `got` outside the tolerance of `expected`.

    `slips` maps a known wrong answer's description to its value: when yours equals one (to
    the same tolerance), the message names it. `unfilled` explains a NaN where a number was
    due (a kernel check fills new buffers with NaN, so a NaN there is a place never stored); when
    the answer's tensor says which elements a kernel stored (`got.stored`), only those no kernel
    stored get that explanation, and a NaN a kernel did store gets its own.
    """
    stored = getattr(got, "stored", None)
    got_array = plain(got)
    expected = plain(expected)
    slip = matching_slip(got_array, slips or {}, atol, rtol)
    if got_array.shape != expected.shape:
        message = f"{name}: shape {shape_text(got_array.shape)}, expected {shape_text(expected.shape)}"
        raise Mismatch(message + (f" -- this is {slip}" if slip else ""))
    close = np.isclose(got_array, expected, rtol=rtol, atol=atol, equal_nan=True)
    if close.all():
        return
    bad = np.argwhere(~close)
    index = tuple(int(i) for i in bad[0])
    where = f"{name}[{', '.join(map(str, index))}]" if index else name
    cleaned = without_noise(expected)
    e, g = float(cleaned[index]), float(got_array[index])
    counted = f"; {len(bad)} of {got_array.size} numbers differ" if len(bad) > 1 else ""
    never_stored = unfilled and (stored is None or (stored.shape == got_array.shape and not stored[index]))
    if math.isnan(g) and never_stored and not slip:
        message = f"{where}: expected {number(e)}, got nan{counted} -- {unfilled}"
        counted = ""
    elif math.isnan(g):
        why = ("a kernel stored it: 0/0, inf - inf, an overflowing exp, or a masked load without other= (its "
               "masked-off lanes are undefined on a GPU, so the check makes them NaN)") if stored is not None else \
            "a NaN comes from 0/0, inf - inf or an overflowing exp"
        message = f"{where}: expected {number(e)}, got nan ({why})"
    else:
        message = (f"{where}: expected {number(e, g)}, got {number(g, e)} (difference {g - e:+.3g}; "
                   f"tolerance {tolerance_text(atol, rtol)})")
    message += counted
    if slip:
        message += f" -- this is {slip}"
    picture = {"name": name, "got": got_array, "expected": cleaned, "bad": ~close, "index": index}
    raise Mismatch(message, picture=picture if got_array.size > 1 else None)


def matching_slip(got: np.ndarray, slips: dict, atol: float, rtol: float) -> str | None:
    """The description of the known wrong answer that `got` equals, if any; where two give the
    same numbers on this case, both (the first as the likelier)."""
    matches = []
    for what, value in slips.items():
        try:
            value = np.asarray(value, dtype=np.float64)
        except (TypeError, ValueError):
            continue
        if value.shape == got.shape and np.allclose(got, value, rtol=rtol, atol=atol, equal_nan=True):
            matches.append(what)
    if not matches:
        return None
    return matches[0] + "".join(f"; or, the same numbers on this case, {what}" for what in matches[1:])


def shape_text(shape: tuple) -> str:
    return "(" + ", ".join(map(str, shape)) + ("," if len(shape) == 1 else "") + ")"


def require_dtype(name: str, value, kind: str, why: str) -> None:
    """Raise Mismatch unless `value`'s dtype is of `kind`: 'bool', 'integer' or 'float'."""
    dtype = getattr(value, "dtype", None)
    if dtype is None:
        raise Mismatch(f"{name}: expected an array, got {describe_type(value)}")
    text = str(dtype)
    is_kind = {"bool": text in ("bool", "torch.bool"),
               "integer": ("int" in text and "uint" not in text) or text in ("torch.long", "torch.int"),
               "float": "float" in text}[kind]
    if not is_kind:
        raise Mismatch(f"{name}: dtype {text}, expected {'an integer' if kind == 'integer' else 'a ' + kind} "
                       f"dtype: {why}")


def require_prediction(name: str, guess) -> None:
    """Raise NotWritten while the stub's None stands, Mismatch for anything but a number: before
    the machine counts the answer (a count through the interpreter takes seconds)."""
    if guess is None:
        raise NotWritten(f"{name} is still None: write your prediction")
    if isinstance(guess, bool) or not isinstance(guess, (int, float, Fraction)) or not math.isfinite(guess):
        raise Mismatch(f"{name}: expected a number, got {describe_type(guess)} {guess!r}")


def judge_prediction(name: str, guess, answer: float, slips: dict, pointer: str) -> None:
    """For a prediction: raise Mismatch saying too high or too low, and the slip when the guess is
    a known one, with where to look -- never the answer itself (`check.py N --reveal` shows it)."""
    require_prediction(name, guess)
    if guess == answer:
        return
    direction = "too high" if guess > answer else "too low"
    message = f"{name} = {number(float(guess))} is {direction}"
    for value, what in slips.items():  # {a known wrong guess: what it means}
        if guess == value:
            message += f" -- {what}"
            break
    raise Mismatch(f"{message}. {pointer}")
