"""The names dataset: where to find it, how to fetch it, how to read it.

The file is found in this order, first hit wins:

1. `--data PATH` on the command line;
2. the environment variable `MICROGPT_DATA`;
3. the cache `data/names.txt` at the top of this repository;
4. a download of makemore's names.txt into that cache, checked against its SHA-256.

A document is one non-empty line with surrounding whitespace stripped (SPEC).
"""

import hashlib
import os
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

from shared.errors import UserError

REPO_ROOT = Path(__file__).resolve().parent.parent
CACHE_PATH = REPO_ROOT / "data" / "names.txt"
ENV_VAR = "MICROGPT_DATA"
NAMES_URL = "https://raw.githubusercontent.com/karpathy/makemore/988aa59/names.txt"
NAMES_SHA256 = "0a30b5557f192f32ab962680889aac5f6fda0f4cecf40a6d0b5694f58ea8cc4d"
DOWNLOAD_TIMEOUT_S = 30


def resolve_data_path(path: str | os.PathLike | None = None, *, download: bool = True) -> Path:
    """The data file to train on, fetching it into the cache if nothing else is given."""
    if path is not None:
        return Path(path)
    if os.environ.get(ENV_VAR):
        return Path(os.environ[ENV_VAR])
    if CACHE_PATH.exists():
        return CACHE_PATH
    if download:
        try:
            return download_names(CACHE_PATH)
        except UserError as err:
            raise UserError(
                f"{err} -- or give the file yourself: --data PATH, {ENV_VAR}=PATH, "
                f"or save it as {CACHE_PATH}"
            ) from None
    raise UserError(
        f"no names.txt found: pass --data PATH, set {ENV_VAR}=PATH, or save it as {CACHE_PATH}"
    )


def download_names(dest: Path, url: str | None = None, sha256: str | None = None,
                   timeout: float = DOWNLOAD_TIMEOUT_S) -> Path:
    """Download `url` (default: makemore's names.txt) to `dest`, atomically, only if its
    SHA-256 matches."""
    url, sha256 = url or NAMES_URL, sha256 or NAMES_SHA256
    print(f"downloading {url} -> {dest}", flush=True)
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            payload = response.read()
    except (urllib.error.URLError, OSError) as err:
        reason = getattr(err, "reason", err)
        raise UserError(f"could not download names.txt from {url} ({reason})") from None
    digest = hashlib.sha256(payload).hexdigest()
    if digest != sha256:
        raise UserError(
            f"downloaded names.txt from {url} has SHA-256 {digest[:12]}..., expected "
            f"{sha256[:12]}...; nothing was saved, try again or download it by hand"
        )
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=dest.name, suffix=".part")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(payload)
        os.replace(tmp, dest)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return dest


def load_docs(path: str | os.PathLike) -> list[str]:
    """The documents of `path`: its non-empty lines, stripped, in file order."""
    path = Path(path)
    if not path.exists():
        raise UserError(f"data file {path} does not exist; pass --data with a path to names.txt")
    if path.is_dir():
        raise UserError(f"data path {path} is a directory; pass --data with a path to names.txt")
    try:
        raw = path.read_bytes()
    except OSError as err:
        raise UserError(f"cannot read data file {path} ({err.strerror}); check its permissions") from None
    docs = []
    for lineno, line in enumerate(raw.split(b"\n"), start=1):
        try:
            text = line.decode("utf-8")
        except UnicodeDecodeError:
            raise UserError(
                f"{path} line {lineno} is not valid UTF-8 text; fix or remove that line"
            ) from None
        if text.strip():
            docs.append(text.strip())
    if not docs:
        raise UserError(f"data file {path} has no non-empty lines; give a file with one name per line")
    return docs
