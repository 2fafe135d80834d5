"""The Quick start's commands, timed on a fresh clone, for the top README.

    python tools/time_quick_start.py     # writes benchmarks/results/quick-start-<date>.json

Clones this repository's committed state into a temporary folder and runs there, one after
the other, what the Quick start tells a learner to run, timing each: making the venv and
`pip install -r requirements.txt` (from wherever this machine's pip is configured to fetch
packages, which the file records: a local mirror takes no download time, a home connection
does), the first training run (`python 1_pure_python/main.py`, all 1000 steps), and the test
suite (`python -m pytest`) twice: with empty Triton and Inductor caches, as on a first run
(cold), then again with the caches the first run filled (warm). The machine's load average
before and after is recorded: on a busy machine the times are longer than a learner's.
"""

import datetime
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))
from shared.environment import environment  # noqa: E402
from shared.saving import write_json_atomic  # noqa: E402

# The README's first command adds PyTorch's CPU-only index; a machine whose pip cannot reach it
# (this one's reads a local mirror that has the CPU build) times the install without it, and the
# file says which command was timed: MICROGPT_TIME_EXTRA_INDEX=0 leaves it out.
EXTRA_INDEX = ([] if os.environ.get("MICROGPT_TIME_EXTRA_INDEX") == "0"
               else ["--extra-index-url", "https://download.pytorch.org/whl/cpu"])


def timed(cmd: list[str], cwd: Path, env: dict | None = None) -> float:
    """Run a command to completion (its output to our stderr) and return its wall time; a
    failure stops the measurement, since a failing Quick start has no time worth recording."""
    print("$", " ".join(cmd), file=sys.stderr, flush=True)
    started = time.perf_counter()
    subprocess.run(cmd, cwd=cwd, env=env, check=True, stdout=sys.stderr)
    return time.perf_counter() - started


def main(argv=None) -> int:
    from shared.cli import Parser

    Parser(description=__doc__.splitlines()[0]).parse_args(argv)  # --help; nothing else to choose
    load_before = os.getloadavg()[0]
    commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True,
                            check=True).stdout.strip()
    pip_config = subprocess.run([sys.executable, "-m", "pip", "config", "list"], capture_output=True,
                                text=True).stdout.splitlines()
    with tempfile.TemporaryDirectory() as tmp:
        clone, caches = Path(tmp) / "clone", Path(tmp) / "caches"
        subprocess.run(["git", "clone", "--quiet", str(REPO_ROOT), str(clone)], check=True)
        env = {**os.environ, "TRITON_CACHE_DIR": str(caches / "triton"),
               "TORCHINDUCTOR_CACHE_DIR": str(caches / "inductor")}
        env.pop("VIRTUAL_ENV", None)
        env["PATH"] = os.pathsep.join(p for p in env["PATH"].split(os.pathsep) if ".venv" not in p)
        python = str(clone / ".venv" / "bin" / "python")
        install_s = timed(["python3", "-m", "venv", ".venv"], clone, env)
        install = [python, "-m", "pip", "install", "--quiet", "-r", "requirements.txt", *EXTRA_INDEX]
        install_s += timed(install, clone, env)
        first_run_s = timed([python, "1_pure_python/main.py", "--out", str(Path(tmp) / "first.json")], clone, env)
        first = json.loads((Path(tmp) / "first.json").read_text())
        tests_s = timed([python, "-m", "pytest", "-q"], clone, env)
        warm_tests_s = timed([python, "-m", "pytest", "-q"], clone, env)
    report = {"commit": commit, "install_command": " ".join(install[2:]), "install_s": install_s,
              "first_run_s": first_run_s,
              "first_run_training_s": first["total_s"], "tests_s": tests_s, "warm_tests_s": warm_tests_s,
              "load_average_before": round(load_before, 2), "load_average_after": round(os.getloadavg()[0], 2),
              "pip_config": pip_config, "date": datetime.date.today().isoformat(), "env": environment("cpu")}
    out = REPO_ROOT / "benchmarks" / "results" / f"quick-start-{report['date']}.json"
    write_json_atomic(out, report)
    print(f"install {install_s:.0f} s, first run {first_run_s:.0f} s, tests {tests_s:.0f} s cold, "
          f"{warm_tests_s:.0f} s warm -> {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
