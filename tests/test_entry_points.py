"""Every program a reader or a GPU sitting runs works the same outside pytest: started from
another folder, in a clean shell (no TRITON_INTERPRET, nothing of the test process), each
chooses where Triton runs for itself (4_triton/kernels/backend.py) and exits 0.

The tests' own process keeps its Triton choice to itself (conftest.py), so every test that
starts a program already runs it this way; this file covers the programs no other test starts.
"""

import os
import subprocess
import sys

import pytest

from conftest import REPO_ROOT

ENTRY_POINTS = {  # name: (arguments after the interpreter, what the output must hold)
    "1_pure_python/main.py": (["1_pure_python/main.py", "--steps", "1", "--samples", "1"], "loss 3.3660"),
    "2_numpy/main.py": (["2_numpy/main.py", "--steps", "1", "--samples", "1"], "loss 3.3660"),
    "3_pytorch/main.py": (["3_pytorch/main.py", "--steps", "1", "--samples", "1"], "loss 3.3660"),
    "4_triton/main.py": (["4_triton/main.py", "--steps", "1", "--samples", "1"], "loss 3.3660"),
    "4_triton/fused_step.py": (["4_triton/fused_step.py", "--steps", "1", "--samples", "1"], "loss 3.3660"),
    "gpu_profile --rehearse": (["benchmarks/gpu_profile.py", "--rehearse", "--out", "{tmp}/profile.json"],
                               "ops per step"),
    "python -m report --check": (["-m", "report", "--check"], ""),
    "python -m report.diagrams": (["-m", "report.diagrams", "--out", "{tmp}"], ""),
    "tools/diff_sections.py": (["tools/diff_sections.py", "3_pytorch", "4_triton", "--stat"], "training"),
    "exercises/check.py --doctor": (["exercises/check.py", "--doctor"], "ready"),
}


@pytest.mark.parametrize("name", list(ENTRY_POINTS))
def test_an_entry_point_runs_in_a_clean_shell_from_another_folder(name, tmp_path):
    argv, expected = ENTRY_POINTS[name]
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    module = argv[0] == "-m"
    args = argv if module else [str(REPO_ROOT / argv[0]), *argv[1:]]
    env = {key: os.environ[key] for key in ("PATH", "HOME", "LANG") if key in os.environ}
    if module:  # `python -m` finds the repository's packages from the folder it is run in
        cwd = REPO_ROOT
    else:
        cwd = tmp_path
        args += ["--out", str(tmp_path / "r.json")] if argv[0].endswith(("main.py", "fused_step.py")) else []
    proc = subprocess.run([sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-1500:] + proc.stderr[-3000:]
    assert expected in proc.stdout, proc.stdout[-1500:]
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
