"""The exercises (exercises/): every stub fails its check, every worked solution passes it, and
plausible wrong answers -- each made from the solution by one typical slip -- are caught with a
message that names the slip. The checks compare with the same references the chapters are
tested against; chapter 4's run through Triton's interpreter here."""

import subprocess
import sys

import pytest

from conftest import REPO_ROOT

sys.path.insert(0, str(REPO_ROOT / "exercises"))
import check  # noqa: E402

EXERCISES = REPO_ROOT / "exercises"


@pytest.mark.parametrize("number", list(check.EXERCISES))
def test_the_stub_fails_and_the_solution_passes(number):
    name, _ = check.EXERCISES[number]
    passed, line = check.check(number, EXERCISES / name)
    assert not passed and line.startswith(f"not written yet: {number}"), line
    passed, line = check.check(number, EXERCISES / "solutions" / name)
    assert passed and line.startswith(f"ok: {number} -- "), line


# (exercise, text of the solution, the slip, what the message must name)
SLIPS = [
    ("1.1", "(1 - t * t,)", "(1 - x.data * x.data,)", "squares the input"),
    ("1.2", '"a": -7.0', '"a": -6.0', "only the path through u"),
    ("1.3", "m_hat = m / (1 - BETA1 ** (step + 1))", "m_hat = m", None),  # with v_hat below
    ("2.2", "return d_logits / real.sum()", "return d_logits", "not divided by the number of real positions"),
    ("2.3", "dk = dS.transpose(0, 1, 3, 2) @ q", "dk = dS @ q", "dS needs its transpose"),
    ("2.4", "np.arange(T)[None, :] < np.array(n)", "np.arange(T)[None, :] <= np.array(n)", "one position too many"),
    ("3.1", "/ math.sqrt(D)", "", "without the 1/sqrt(D) scale"),
    ("3.4", "PADDING = -100", "PADDING = 0", "targets padded with 0"),
    ("4.1", "/ C + eps", "/ BLOCK_C + eps", "the padding must not count"),
    ("4.3", "acc = tl.maximum(acc, 0.0)", "acc = acc", "without the ReLU"),
    ("4.4", "= 65", "= 87", "do not repeat per layer"),
]


@pytest.mark.parametrize("number, right, slip, named", SLIPS, ids=[s[0] for s in SLIPS])
def test_a_typical_slip_is_caught_and_named(number, right, slip, named, tmp_path):
    name, _ = check.EXERCISES[number]
    source = (EXERCISES / "solutions" / name).read_text()
    assert right in source
    wrong = source.replace(right, slip)
    if number == "1.3":  # Adam without bias correction: neither moment corrected
        wrong = wrong.replace("v_hat = v / (1 - BETA2 ** (step + 1))", "v_hat = v")
        named = "without bias correction"
    path = tmp_path / name.split("/")[1]
    path.write_text(wrong)
    passed, line = check.check(number, path)
    assert not passed and line.startswith(f"not yet: {number}") and named in line, line


def test_the_command_line_says_ok_or_the_first_mismatch(tmp_path):
    """What a reader runs: exit 0 and "ok" for a right answer, exit 1 and the mismatch for a wrong one."""
    cmd = [sys.executable, str(EXERCISES / "check.py"), "2.3"]
    proc = subprocess.run([*cmd, "--solution"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and proc.stdout.startswith("ok: 2.3"), proc.stdout + proc.stderr
    wrong = tmp_path / "attention_backward.py"
    wrong.write_text((EXERCISES / "solutions" / "ch2" / "attention_backward.py").read_text().replace(
        "dv = P.transpose(0, 1, 3, 2) @ g", "dv = P @ g"))
    proc = subprocess.run([*cmd, "--file", str(wrong)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1
    assert proc.stdout.startswith("not yet: 2.3 -- dv[") and "P needs its transpose" in proc.stdout, proc.stdout
    listing = subprocess.run([sys.executable, str(EXERCISES / "check.py")], capture_output=True, text=True,
                             timeout=300)
    assert listing.returncode == 0 and len(listing.stdout.splitlines()) == len(check.EXERCISES)
