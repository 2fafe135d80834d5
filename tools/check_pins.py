"""Check requirements.txt against the package index before changing a pin (needs the network).

    python tools/check_pins.py              # every pin has a wheel where users install it; triton pin = torch's
    python tools/check_pins.py --resolve    # also a full dependency resolution for this machine (~1 minute)

Why: the index's torch wheel for Linux requires one exact triton (`Requires-Dist:
triton==X; platform_system == "Linux"`). A different triton pin in requirements.txt makes
`pip install -r requirements.txt` unresolvable on every real Linux machine, yet it can install
fine on a machine whose torch came from a local CPU wheel without that requirement.

For each place a learner installs -- Linux x86_64 and macOS arm64, Python 3.11 and 3.12 -- this
asks pip for a dry run over the pins that apply there (`pip install --dry-run --no-deps
--report`, wheels only): pip reads each wheel's metadata from the index and downloads none.
From the Linux reports it reads torch's own triton requirement and compares it with ours.
Local pip configuration (extra indexes, find-links folders) is ignored on purpose: the
question is what a user with a plain pip gets. Standard library only.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REQUIREMENTS = Path(__file__).resolve().parent.parent / "requirements.txt"
# (name, pip --platform tags, marker environment). pip does not widen a --platform tag to the
# older manylinux tags a real machine accepts, so they are listed.
PLATFORMS = [
    ("Linux x86_64", ["manylinux_2_28_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64"],
     {"platform_system": "Linux", "sys_platform": "linux", "platform_machine": "x86_64", "os_name": "posix"}),
    ("macOS arm64", ["macosx_14_0_arm64"],
     {"platform_system": "Darwin", "sys_platform": "darwin", "platform_machine": "arm64", "os_name": "posix"}),
]
PYTHONS = ["3.11", "3.12"]


class PinError(Exception):
    """A pin that does not hold; the message is one line."""


def markers():
    """packaging's Marker and Requirement (pip carries a copy when packaging is not installed)."""
    try:
        from packaging.markers import Marker
        from packaging.requirements import Requirement
    except ImportError:
        from pip._vendor.packaging.markers import Marker
        from pip._vendor.packaging.requirements import Requirement
    return Marker, Requirement


def read_pins(path: Path = REQUIREMENTS) -> list:
    """requirements.txt as packaging Requirements, each an exact `name==version` pin."""
    _, Requirement = markers()
    pins = []
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        req = Requirement(line)
        if len(req.specifier) != 1 or next(iter(req.specifier)).operator != "==":
            raise PinError(f"requirements.txt: {line!r} is not an exact pin; write it as name==version")
        pins.append(req)
    return pins


def applies(req, environment: dict) -> bool:
    return req.marker is None or req.marker.evaluate(environment)


def pip_env() -> dict:
    """This environment without any pip configuration that adds or replaces package sources."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("PIP_FIND_LINKS", "PIP_EXTRA_INDEX_URL", "PIP_INDEX_URL", "PIP_NO_INDEX")}
    env["PIP_CONFIG_FILE"] = os.devnull
    return env


def dry_run(requirements: list[str], extra: list[str], index_url: str | None) -> dict:
    """pip's installation report for `requirements`, resolved but not installed or downloaded."""
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "report.json"
        cmd = [sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed", "--quiet",
               "--disable-pip-version-check", "--report", str(report), *extra, *requirements]
        if index_url:
            cmd += ["--index-url", index_url]
        proc = subprocess.run(cmd, capture_output=True, text=True, env=pip_env())
        if proc.returncode != 0:
            lines = [line for line in proc.stderr.splitlines() if line.startswith("ERROR")] or proc.stderr.splitlines()
            raise PinError(" ".join(lines[-2:]) or f"pip exited with {proc.returncode}")
        return json.loads(report.read_text())


def torch_triton_pin(torch_metadata: dict, environment: dict) -> str | None:
    """The exact triton version torch's metadata requires in `environment` (None if it requires none)."""
    _, Requirement = markers()
    for line in torch_metadata.get("requires_dist", []):
        req = Requirement(line)
        if req.name == "triton" and applies(req, {**environment, "extra": ""}):
            return next(iter(req.specifier)).version
    return None


def check_platform(pins: list, name: str, tags: list[str], environment: dict, python: str,
                   index_url: str | None) -> str:
    """One platform and Python: a wheel for every pin that applies there, and, where torch
    requires a triton, the same triton pinned. Returns the line to print."""
    ours = {req.name: req for req in pins}
    env = {**environment, "python_version": python, "python_full_version": f"{python}.0"}
    wanted = [str(req).split(";")[0] for req in pins if applies(req, env)]
    extra = ["--no-deps", "--only-binary=:all:", "--python-version", python,
             "--target", tempfile.gettempdir(), *(f"--platform={tag}" for tag in tags)]
    try:
        report = dry_run(wanted, extra, index_url)
    except PinError as err:
        raise PinError(f"{name}, Python {python}: {err}") from None
    found = {item["metadata"]["name"].lower(): item["metadata"] for item in report["install"]}
    needed = torch_triton_pin(found["torch"], env)
    pinned = ours.get("triton")
    if needed is not None:
        if pinned is None or not applies(pinned, env):
            raise PinError(f"{name}, Python {python}: torch {found['torch']['version']} requires "
                           f"triton=={needed} there, and requirements.txt installs no triton on it")
        ours_version = next(iter(pinned.specifier)).version
        if ours_version != needed:
            raise PinError(f"{name}, Python {python}: torch {found['torch']['version']} requires "
                           f"triton=={needed}, requirements.txt pins triton=={ours_version}; "
                           f"pin triton=={needed}")
    return (f"ok {name}, Python {python}: a wheel for each of {len(wanted)} pins"
            + (f"; torch requires triton=={needed}, pinned" if needed else "; no triton here"))


def check(index_url: str | None = None, resolve: bool = False) -> list[str]:
    """One line per platform checked; raises PinError where a pin does not hold. The
    platforms are asked at once: each is a few seconds of waiting on the index."""
    pins = read_pins()
    targets = [(name, tags, environment, python) for name, tags, environment in PLATFORMS for python in PYTHONS]
    with ThreadPoolExecutor(len(targets)) as pool:
        futures = [pool.submit(check_platform, pins, *target, index_url) for target in targets]
        lines = [future.result() for future in futures]
    if resolve:
        report = dry_run(["-r", str(REQUIREMENTS)], [], index_url)
        versions = {item["metadata"]["name"].lower(): item["metadata"]["version"] for item in report["install"]}
        lines.append(f"ok this machine (Python {sys.version.split()[0]}, {sys.platform}): the full resolution "
                     f"installs {len(versions)} packages, torch {versions['torch']}, triton {versions.get('triton')}")
    return lines


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--resolve", action="store_true",
                        help="also resolve every dependency for this machine, as `pip install -r` would")
    parser.add_argument("--index-url", default=None, help="ask this index instead of pip's default (PyPI)")
    args = parser.parse_args(argv)
    try:
        for line in check(args.index_url, args.resolve):
            print(line, flush=True)
    except PinError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print("requirements.txt: every pin holds")
    return 0


if __name__ == "__main__":
    sys.exit(main())
