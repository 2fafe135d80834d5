"""Exercise 3.3, a worked solution: read from the committed profile, as the check does.

In the committed profile the costliest op is not a matmul: the check prints which it is and
how long it takes. The answer below is read from the file, so it stays right when the profile
is rerun."""

import json
from pathlib import Path

_profile = json.loads((Path(__file__).resolve().parents[3] / "3_pytorch" / "profile_cpu.json").read_text())
MOST_EXPENSIVE_OP = max(_profile["ops_per_step"].items(), key=lambda kv: kv[1]["self_us"])[0]
