"""How much disk the project's virtual environment takes, measured, for the top README.

    python tools/install_size.py                 # measures .venv; writes benchmarks/results/install-size.json

Sums the bytes of every file under the venv and of each installed package's files (from its
RECORD), and records which torch build it is (+cpu, or one that pulls NVIDIA's CUDA wheels).
"""

import importlib.metadata
import platform
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))
from shared.environment import environment  # noqa: E402
from shared.saving import write_json_atomic  # noqa: E402


def folder_bytes(folder: Path) -> int:
    return sum(entry.stat().st_size for entry in folder.rglob("*") if entry.is_file() and not entry.is_symlink())


def package_bytes() -> dict[str, int]:
    sizes = {}
    for dist in importlib.metadata.distributions():
        files = dist.files or []
        sizes[dist.metadata["Name"].lower()] = sum(
            (Path(dist.locate_file(f)).stat().st_size if Path(dist.locate_file(f)).is_file() else 0) for f in files)
    return sizes


def main(argv: list[str] | None = None) -> int:
    from shared.cli import Parser

    Parser(description=__doc__.splitlines()[0]).parse_args(argv)  # --help; nothing else to choose
    venv = Path(sys.prefix)
    if venv == Path(sys.base_prefix):
        raise SystemExit("run this with the venv's Python: .venv/bin/python tools/install_size.py")
    sizes = package_bytes()
    report = {
        "venv_bytes": folder_bytes(venv), "packages_bytes": dict(sorted(sizes.items(), key=lambda kv: -kv[1])),
        "torch": importlib.metadata.version("torch"),
        "nvidia_packages": sorted(n for n in sizes if n.startswith("nvidia")),
        "platform": platform.platform(), "env": environment("cpu"),
    }
    out = REPO_ROOT / "benchmarks" / "results" / "install-size.json"
    write_json_atomic(out, report)
    print(f"{report['venv_bytes'] / 1e9:.2f} GB in {venv} -> {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
