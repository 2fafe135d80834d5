"""The programs the tests start, started from a Python that has already imported torch.

Most tests run a program as a reader does -- `python 3_pytorch/main.py ...` -- and read what
it prints, writes and returns. Each such start imports torch again: 1.5 to 2 s of CPU, and half
a second more to tear it down at the end, about a quarter of the suite. Here each test process
starts one server that imports torch once (and nothing of the repository); a program the tests
start is then a fork of that server, which runs the program from its first line as `python
program.py` would, with the test's arguments, environment, working folder, standard streams,
umask and session, its own pid, the signals it is sent and its exit status
(exercises/checker/sandbox.py starts the learners' answers the same way).

What a fork cannot give is the interpreter's own start: the PYTHON* variables and the flags it
reads then, and the variables torch and its libraries read when they load. So a start is forked
only where none of those differ from the server's, with no flag but -u, -c or -m, and where the
test asks nothing of the child before it runs (a `preexec_fn`, `pass_fds`, a user or group)
except SIGINT's default (`DEFAULT_SIGINT`); every other start is a real one. Two differences
remain, on purpose: a fork has a process group of its own where a real start shares the test's
(a program that signals its group reaches neither the tests nor the server), and at its end it
skips the tearing down of the interpreter's modules (`run`). The tests of how a program starts
(tests/test_entry_points.py, a torch that cannot load, Ctrl-C while it loads, a Python without
the packages) start a real one (`real_start`), tests/test_forkserver.py compares a fork with a
real start, and MICROGPT_TESTS_FORK=0 turns forking off.

    python tests/forkserver.py FD     # the server, on the socket FD (conftest.py starts it)
"""

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys

SWITCH = "MICROGPT_TESTS_FORK"
# What a Python start or torch's import reads from the environment: a start whose environment
# differs from the server's in any of these is a real one
# (not TORCHINDUCTOR_ and TORCHDYNAMO_: read when a compile first needs them, in the fork)
READ_AT_START = ("PYTHON", "OMP_", "KMP_", "GOMP_", "MKL_", "OPENBLAS_", "TORCH_", "LD_", "CUDA", "MALLOC")


def default_sigint() -> None:
    """preexec_fn: SIGINT back to its default in the child, so Python turns it into
    KeyboardInterrupt even where the tests run with SIGINT ignored (`pytest &`)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


DEFAULT_SIGINT = dict(preexec_fn=default_sigint)


def real_start(env=None) -> dict:
    """The environment of a start that must be a real one: a test of how a program starts."""
    return {**(os.environ if env is None else env), SWITCH: "0"}


def startup_environment(env) -> dict:
    return {k: v for k, v in env.items() if k.startswith(READ_AT_START)}


# --------------------------------------------------------------------------- the tests' side

class Server:
    """The server of this test process, started at its first use."""

    def __init__(self):
        self.socket = None
        self.proc = None
        self.environment = None

    def start(self) -> None:
        mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        self.proc = subprocess.Popen([sys.executable, __file__, str(theirs.fileno())], pass_fds=[theirs.fileno()],
                                     stdin=subprocess.DEVNULL, start_new_session=True)
        theirs.close()
        self.socket, self.environment = mine, startup_environment(os.environ)

    def fork(self, request: dict, fds: list[int]) -> tuple[int, socket.socket]:
        """(pid, the socket its wait status comes on) of a fork running `request`."""
        if self.proc is None:
            self.start()
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        payload = json.dumps(request).encode()
        socket.send_fds(self.socket, [len(payload).to_bytes(8, "little") + payload], [theirs.fileno(), *fds])
        theirs.close()
        pid = int.from_bytes(_read_exactly(ours, 8), "little", signed=True)
        if pid < 0:
            raise OSError(-pid, os.strerror(-pid))
        return pid, ours

    def close(self) -> None:
        if self.proc is not None:
            self.socket.close()  # the server ends when its socket closes
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            self.proc = None


SERVER = Server()


def _read_exactly(sock: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        part = sock.recv(n - len(data))
        if not part:
            raise ConnectionError("the fork server ended")
        data += part
    return data


def forkable(args, executable, preexec_fn, pass_fds, shell, env, gid, gids, uid, process_group):
    """The request for a fork where a start can be one, else None."""
    if os.environ.get(SWITCH) == "0" or shell or executable is not None or pass_fds:
        return None
    if preexec_fn not in (None, default_sigint) or (gid, gids, uid) != (None, None, None) or process_group not in (
            None, -1):
        return None
    if not isinstance(args, (list, tuple)) or len(args) < 2 or str(args[0]) != sys.executable:
        return None
    args = [os.fsdecode(a) for a in args]
    unbuffered = args[1] == "-u"
    rest = args[2:] if unbuffered else args[1:]
    if not rest:
        return None
    if rest[0] == "-c" and len(rest) >= 2:
        program = {"code": rest[1], "argv": ["-c", *rest[2:]]}
    elif rest[0] == "-m" and len(rest) >= 2:
        program = {"module": rest[1], "argv": ["-m", *rest[2:]]}
    elif rest[0].startswith("-") or not rest[0].endswith(".py"):
        return None
    else:
        program = {"path": rest[0], "argv": rest}
    env = dict(os.environ if env is None else {os.fsdecode(k): os.fsdecode(v) for k, v in env.items()})
    if env.get(SWITCH) == "0":
        return None
    if SERVER.environment is not None and startup_environment(env) != SERVER.environment:
        return None
    if SERVER.environment is None and startup_environment(env) != startup_environment(os.environ):
        return None
    sigint = "default" if preexec_fn is default_sigint else (
        "ignore" if signal.getsignal(signal.SIGINT) == signal.SIG_IGN else "default")
    unbuffered = unbuffered or bool(env.get("PYTHONUNBUFFERED"))
    return {**program, "env": env, "unbuffered": unbuffered, "sigint": sigint}


class Popen(subprocess.Popen):
    """subprocess.Popen, whose child is a fork of the server where it can be (see above)."""

    _status_socket = None

    def _execute_child(self, args, executable, preexec_fn, close_fds, pass_fds, cwd, env, startupinfo,
                       creationflags, shell, p2cread, p2cwrite, c2pread, c2pwrite, errread, errwrite,
                       restore_signals, gid, gids, uid, umask, start_new_session, process_group=None):
        request = forkable(args, executable, preexec_fn, pass_fds, shell, env, gid, gids, uid, process_group)
        if request is None:
            extra = () if sys.version_info < (3, 11) else (process_group,)
            return super()._execute_child(args, executable, preexec_fn, close_fds, pass_fds, cwd, env, startupinfo,
                                          creationflags, shell, p2cread, p2cwrite, c2pread, c2pwrite, errread,
                                          errwrite, restore_signals, gid, gids, uid, umask, start_new_session,
                                          *extra)
        if umask < 0:
            umask = os.umask(0o022)
            os.umask(umask)
        request.update(cwd=os.fsdecode(cwd) if cwd is not None else os.getcwd(), umask=umask,
                       new_session=bool(start_new_session))
        fds = [p2cread if p2cread != -1 else 0, c2pwrite if c2pwrite != -1 else 1, errwrite if errwrite != -1 else 2]
        try:
            self.pid, self._status_socket = SERVER.fork(request, fds)
            self._child_created = True
        finally:
            self._close_pipe_fds(p2cread, p2cwrite, c2pread, c2pwrite, errread, errwrite)

    def _internal_poll(self, _deadstate=None, **_):
        if self._status_socket is None or self.returncode is not None:
            return super()._internal_poll(_deadstate)
        if not self._waitpid_lock.acquire(False):
            return None
        try:
            pid, status = self._try_wait(os.WNOHANG)
            if pid == self.pid:
                self._handle_exitstatus(status)
        except OSError:  # (the server gone: what a lost child reads as)
            if _deadstate is not None:
                self.returncode = _deadstate
        finally:
            self._waitpid_lock.release()
        return self.returncode

    def _try_wait(self, wait_flags):
        if self._status_socket is None:
            return super()._try_wait(wait_flags)
        self._status_socket.setblocking(not wait_flags & os.WNOHANG)
        try:
            status = _read_exactly(self._status_socket, 8)
        except BlockingIOError:
            return 0, 0
        self._status_socket.close()
        self._status_socket = None
        return self.pid, int.from_bytes(status, "little", signed=True)


# --------------------------------------------------------------------------- the server

def serve(control: socket.socket):
    """Fork a child for each request; send each its pid and, when it ends, its wait status.
    Returns in a child (its request), or None when the tests' side closed the socket."""
    import select

    children: dict[int, tuple[int, socket.socket]] = {}  # pidfd: (pid, status socket)
    while True:
        ready, _, _ = select.select([control, *children], [], [])
        for fd in ready:
            if fd in children:
                pid, status_socket = children.pop(fd)
                _, status = os.waitpid(pid, 0)
                os.close(fd)
                with status_socket, contextlib.suppress(OSError):  # (a test that no longer waits for it)
                    status_socket.sendall(status.to_bytes(8, "little", signed=True))
        if control not in ready:
            continue
        try:
            message, fds, _, _ = socket.recv_fds(control, 1 << 20, 4)  # (the descriptors come with the first bytes)
        except ConnectionError:
            message = b""
        if not message:
            return None
        size, message = int.from_bytes(message[:8], "little"), message[8:]
        while len(message) < size:
            message += _read_exactly(control, size - len(message))
        status_socket, fds = socket.socket(fileno=fds[0]), fds[1:]
        request = json.loads(message)
        settled, child_settled = os.pipe()
        try:
            pid = os.fork()
        except OSError as err:
            with status_socket, contextlib.suppress(OSError):
                status_socket.sendall((-err.errno).to_bytes(8, "little", signed=True))
            continue
        if pid == 0:
            # its session, or else a process group of its own, before its pid is known: a signal sent
            # to the program's group (jupyter's to its kernel) then never reaches the server
            os.setsid() if request["new_session"] else os.setpgid(0, 0)
            os.close(child_settled)
            request["fds"] = fds
            return request
        os.close(child_settled)
        os.read(settled, 1)  # (end of file: the child has settled)
        os.close(settled)
        for fd in fds:
            os.close(fd)
        with contextlib.suppress(OSError):
            status_socket.sendall(pid.to_bytes(8, "little", signed=True))
        children[os.pidfd_open(pid)] = (pid, status_socket)


def become(request: dict) -> None:
    """In the fork: set up as `python [-u] PROGRAM ARGS` would be, and run the program."""
    import io
    import types

    os.umask(request["umask"])
    os.chdir(request["cwd"])
    for target, fd in enumerate(request["fds"]):
        os.dup2(fd, target)
    os.closerange(3, os.sysconf("SC_OPEN_MAX") if hasattr(os, "sysconf") else 1024)
    os.environ.clear()
    os.environ.update(request["env"])
    signal.signal(signal.SIGINT, signal.default_int_handler if request["sigint"] == "default" else signal.SIG_IGN)

    def stream(fd: int, mode: str, name: str):  # as Python makes its standard streams at its start
        raw = io.FileIO(fd, mode, closefd=False)
        unbuffered = request["unbuffered"] and mode == "w"  # (-u or PYTHONUNBUFFERED)
        buffered = raw if unbuffered else (io.BufferedWriter if mode == "w" else io.BufferedReader)(raw)
        text = io.TextIOWrapper(buffered, encoding=ENCODING, errors="backslashreplace" if fd == 2 else "strict",
                                line_buffering=mode == "w" and not unbuffered and (fd == 2 or raw.isatty()),
                                write_through=unbuffered)
        setattr(sys, name, text)
        setattr(sys, f"__{name}__", text)

    stream(0, "r", "stdin")
    stream(1, "w", "stdout")
    stream(2, "w", "stderr")
    main = types.ModuleType("__main__")
    main.__dict__["__builtins__"] = __builtins__
    sys.modules["__main__"] = main
    sys.argv = request["argv"]
    if "module" in request:  # what `python -m` calls (it sets sys.argv[0] to the module's file)
        import runpy

        sys.path[0] = os.getcwd()

        def program():
            runpy._run_module_as_main(request["module"])
    elif "code" in request:
        sys.path[0] = ""
        code = compile(request["code"], "<string>", "exec")
    else:
        path = os.path.abspath(request["path"])
        sys.path[0] = os.path.dirname(os.path.realpath(path))
        main.__file__ = path
        with open(path, "rb") as source:
            code = compile(source.read(), path, "exec")
    if "module" not in request:
        def program():
            exec(code, main.__dict__)

    os._exit(run(program))


def run(program) -> int:
    """Run the program and end as Python ends one: the exit status of SystemExit, a traceback
    and 1 for an exception, KeyboardInterrupt as death by SIGINT; then its threads, its atexit
    functions and a last flush of its streams (a failed one is status 120). What is left out is
    only the tearing down of the interpreter's modules (half a second with torch loaded): the
    process then ends at once, as it would after it."""
    import atexit
    import threading

    interrupted, status = False, 0
    try:
        program()
    except SystemExit as stop:
        if stop.code is None or isinstance(stop.code, int):
            status = stop.code or 0
        else:
            print(stop.code, file=sys.stderr)
            status = 1
    except BaseException as error:  # (what the interpreter does with anything uncaught)
        interrupted, status = isinstance(error, KeyboardInterrupt), 1
        error.__traceback__ = error.__traceback__.tb_next.tb_next  # (from the program's first frame)
        sys.excepthook(type(error), error, error.__traceback__)
    threading._shutdown()
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception as error:
            with contextlib.suppress(Exception):
                print(f"Exception ignored in: {stream!r}\n{type(error).__name__}: {error}", file=sys.stderr)
            status = status or 120
    if interrupted:  # (as CPython ends on an uncaught KeyboardInterrupt)
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGINT)
    return status & 0xFF


if __name__ == "__main__":
    import gc

    import torch  # noqa: F401  (what every fork starts with)

    gc.freeze()  # what is loaded now stays out of every fork's garbage collections
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # (a Ctrl-C meant for a test's program; each fork sets its own)

    ENCODING = sys.stdout.encoding if sys.stdout else "utf-8"  # (the locale's, as a start would choose)
    _request = serve(socket.socket(fileno=int(sys.argv[1])))
    if _request is not None:
        become(_request)
