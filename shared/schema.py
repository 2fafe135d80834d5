"""Whether a file is a results file of this repository (SPEC.md's schema), and reading one.

Every reader -- the READMEs' tables, the plots, the benchmarks -- loads a results file
through `load_results`, so a missing, truncated or hand-edited one is one line naming the
file and what is wrong with it, never a traceback further on.
"""

import json
import math
import os

from shared.errors import UserError


def load_results(path: str | os.PathLike, check: bool = True) -> dict:
    """A results file (SPEC.md's schema); a missing, unreadable, truncated or malformed one is a
    UserError naming the file and what is wrong with it, never a traceback further on."""
    fix = f"restore it (git checkout -- {path}) or rerun the run that writes it"
    try:
        with open(path) as f:
            res = json.load(f)
    except OSError as err:
        raise UserError(f"cannot read results file {path} ({err.strerror}); {fix}") from None
    except RecursionError:
        raise UserError(f"results file {path} is nested too deeply to be a results file; {fix}") from None
    except ValueError as err:
        raise UserError(f"results file {path} is not complete JSON ({err}); {fix}") from None
    problem = validate(res) if check else None
    if problem:
        raise UserError(f"results file {path} is not a results file of this repository: {problem}; {fix}")
    return res


def validate(res) -> str | None:
    """What is wrong with a results file's content against SPEC.md's schema, or None: the keys,
    their types, and numbers that a run can make (finite losses, positive step times, one of each
    per step)."""
    if not isinstance(res, dict):
        return f"it holds {type(res).__name__}, not an object with the keys {', '.join(REQUIRED)}"
    missing = [key for key in REQUIRED if key not in res]
    if missing:
        return f"it has no {', '.join(missing)}"
    for key, kind in REQUIRED.items():
        if not isinstance(res[key], kind) or isinstance(res[key], bool):
            return f"its {key} is {type(res[key]).__name__}, not {_kind_name(kind)}"
    losses, step_ms = res["losses"], res["step_ms"]
    if not losses:
        return "it has no steps (its losses are empty)"
    if len(step_ms) != len(losses):
        return f"it has {len(losses)} losses and {len(step_ms)} step times"
    for name, values in (("losses", losses), ("step_ms", step_ms)):
        bad = next((v for v in values if isinstance(v, bool) or not isinstance(v, (int, float))
                    or not math.isfinite(v)), None)
        if bad is not None or (name == "step_ms" and min(values) <= 0):
            return f"its {name} hold {bad!r}" if bad is not None else "its step_ms hold a time of zero or less"
    if not math.isfinite(res["total_s"]) or res["total_s"] < 0:
        return f"its total_s is {res['total_s']!r}, not a time of zero or more"
    if res["num_params"] <= 0:
        return f"its num_params is {res['num_params']!r}, not a positive count"
    for key in ("steps", "batch_size"):
        value = res["config"].get(key, 1)
        if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
            return f"its config's {key} is {value!r}, not a positive integer"
    if not isinstance(res["env"].get("device"), str):
        return "its env names no device"
    if not all(isinstance(name, str) for name in res["samples"]):
        return "its samples are not all text"
    if "doc_len" in res and (not isinstance(res["doc_len"], list) or len(res["doc_len"]) != len(losses)):
        return "its doc_len is not one number per step"
    return None


REQUIRED = {"stage": str, "config": dict, "num_params": int, "losses": list, "step_ms": list,
            "total_s": (int, float), "samples": list, "env": dict}


def _kind_name(kind) -> str:
    names = {str: "text", dict: "an object", int: "an integer", list: "a list"}
    return names.get(kind, "a number")

