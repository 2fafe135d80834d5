"""A program the tests start as a fork of tests/forkserver.py's server sees what it would see
started by a real `python`: its arguments, path, folder, environment, umask, streams, and it
ends with the same status, output and signal."""

import os
import signal
import subprocess
import sys

import forkserver
import pytest

PROBE = """\
import os, signal, sys
print(repr(sys.argv), repr(sys.path[0]), __name__, repr(globals().get("__file__")), os.getcwd())
print(oct(os.umask(0)), os.environ.get("PROBE"), os.getsid(0) == os.getpid(), sys.stdin.read().strip())
print(sys.stdout.line_buffering, sys.stderr.line_buffering, sys.stdout.write_through, sys.stdout.encoding)
print(signal.getsignal(signal.SIGINT) is signal.default_int_handler, "torch" in sys.modules or "(fork)")
print("to stderr", file=sys.stderr)
how = sys.argv[-1]
if how == "raise":
    raise ValueError("the end")
if how == "exit":
    sys.exit("a message of its own")
if how == "interrupt":
    raise KeyboardInterrupt
sys.exit(int(how))
"""


@pytest.fixture(scope="module")
def probe(tmp_path_factory):
    folder = tmp_path_factory.mktemp("probe")
    (folder / "probe.py").write_text(PROBE)
    return folder


def start(probe, *argv, how: str, real: bool, new_session=False):
    env = {**os.environ, "PROBE": "here"}
    old = os.umask(0o027)
    try:
        proc = forkserver.Popen([sys.executable, *argv, how], cwd=probe, stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                env=forkserver.real_start(env) if real else env, start_new_session=new_session,
                                **forkserver.DEFAULT_SIGINT)
    finally:
        os.umask(old)
    stdout, stderr = proc.communicate("from stdin", timeout=60)
    return proc.returncode, stdout.replace("(fork)", "True"), stderr


@pytest.mark.parametrize("how", ["0", "3", "raise", "exit", "interrupt"])
@pytest.mark.parametrize("argv", [["probe.py"], ["-u", "probe.py"], ["-c", PROBE], ["-m", "probe"]],
                         ids=["script", "-u", "-c", "-m"])
def test_a_fork_is_seen_as_a_real_start(probe, argv, how):
    assert forkserver.forkable([sys.executable, *argv], None, forkserver.default_sigint, (), False, None, None,
                               None, None, None) is not None  # (this start is one the server forks)
    real = start(probe, *argv, how=how, real=True, new_session=how == "3")
    forked = start(probe, *argv, how=how, real=False, new_session=how == "3")
    assert forked == real
    assert real[0] == {"0": 0, "3": 3, "raise": 1, "exit": 1, "interrupt": -signal.SIGINT}[how]


def test_a_start_the_server_cannot_copy_is_a_real_one():
    args = [sys.executable, "probe.py"]
    plain = (args, None, None, (), False, None, None, None, None, None)
    assert forkserver.forkable(*plain) is not None
    assert forkserver.forkable(args, None, lambda: None, *plain[3:]) is None  # a preexec_fn of its own
    assert forkserver.forkable(*plain[:5], {**os.environ, "OMP_NUM_THREADS": "7"}, *plain[6:]) is None
    assert forkserver.forkable(*plain[:5], forkserver.real_start(), *plain[6:]) is None
    assert forkserver.forkable([sys.executable, "-X", "importtime", "probe.py"], *plain[1:]) is None
