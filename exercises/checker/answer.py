"""The answer's process: where a learner's code runs, apart from the checker that judges it.

The checker (the judge: check.py's own process) never imports an answer. It starts one process
that has loaded NumPy, PyTorch, Triton and the chapters (`zygote_main`), and for each check that
process forks an answer's process (`answer_main`): a new session, a memory limit, its prints to a
file. The judge sends it requests -- load the file, call this function on these inputs, run
backward -- and it sends back plain data (checker/wire.py): arrays, numbers, a Value graph's
nodes, what a launch wrote, which kernels ran, which PyTorch functions were called. It holds no
reference, no expected value and no verdict: the judge computes those, from what comes back.

What an answer may not use is made unavailable here, not merely asked for:
- the chapter's own version of the answer, and what the check names (F.scaled_dot_product_attention,
  torch.optim.Adam, all of torch in chapter 2), are swapped for stand-ins that refuse;
- the files of the worked solutions, the checker, and the chapters (a second copy of a chapter,
  loaded by path, would not be swapped) cannot be opened, nor can a program be started: an audit
  hook (sys.addaudithook) refuses them, and an audit hook cannot be removed;
- the PyTorch functions an answer calls are recorded and sent back, so the judge refuses, say,
  torch.ops.aten._scaled_dot_product_attention_math in 3.1;
- a chapter 4 launcher may allocate and reshape but not compute with PyTorch, nor read a
  tensor's numbers on the host (Tensor.numpy, np.asarray, tolist, item), and every element a
  kernel stores is recorded, so the judge can tell a place never stored from one that holds NaN.

An answer set on fooling the check can still do so from inside its own process (it could
patch this module); what it cannot do is reach the judge's references or write its verdict.
"""

import contextlib
import io
import itertools
import json
import linecache
import numbers
import os
import re
import signal
import socket
import sys
import traceback
from pathlib import Path

from . import wire

EXERCISES = Path(__file__).resolve().parent.parent
REPO_ROOT = EXERCISES.parent
MEMORY_LIMIT_GIB = 4
PRINT_LIMIT_BYTES = 64 * 2**20  # past this the process is stopped (SIGXFSZ): the judge says so
MAX_NODES = 200_000  # of a Value graph sent back
SHARED = ("bounds.py", "__pycache__/bounds.")  # the chapters' bounds checks, which an answer's Triton may load
FAILED = 70  # the exit status of an answer's process whose own code (not the answer's) failed
STUB_MARK = re.compile(r"\bwrite \w+")  # a kernel stub's tl.static_assert(False, "write add_kernel")


# --------------------------------------------------------------------------- the zygote


def zygote_main(sock_fd: int, stages: list[str]) -> int:
    """Load what the answers need, then fork one answer's process per request of the judge,
    until the judge closes its end. Requests are one JSON line each: {"fork": true} with two
    file descriptors (the answer's socket, its output file), or {"wait": pid, "timeout": s}, the
    answer's exit status once it has ended (None if it has not within the timeout)."""
    import gc
    import time

    sock = socket.socket(fileno=sock_fd)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the judge's to handle
    _die_with_parent()
    preload(stages)
    gc.collect()
    gc.freeze()  # what is loaded stays out of the answers' collections: forked pages stay shared, forks stay fast
    ended: dict[int, int] = {}

    def reap(pid: int = -1) -> None:
        while True:
            try:
                found, status = os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                return
            if found == 0:
                return
            ended[found] = os.waitstatus_to_exitcode(status)

    pending = b""
    while True:
        try:
            data, fds, _, _ = socket.recv_fds(sock, 4096, 2)
        except OSError:
            return 0
        if not data:
            return 0
        pending += data
        while b"\n" in pending:
            line, pending = pending.split(b"\n", 1)
            request = json.loads(line)
            reap()
            if request.get("fork"):
                control_fd, output_fd = fds
                fds = []
                pid = os.fork()
                if pid == 0:
                    try:
                        sock.close()
                        answer_main(control_fd, output_fd)
                    except BaseException as err:  # noqa: BLE001  (the checker's own failure: said, and exit 70)
                        print(f"the answer's process failed: {type(err).__name__}: {err}", file=sys.stderr)
                    finally:
                        os._exit(FAILED)
                os.close(control_fd)
                os.close(output_fd)
                reply = {"pid": pid}
            else:
                pid, deadline = request["wait"], time.monotonic() + request.get("timeout", 60)
                while pid not in ended and time.monotonic() < deadline:
                    time.sleep(0.005)
                    reap(pid)
                reply = {"status": ended.pop(pid, None)}
            sock.sendall(json.dumps(reply).encode() + b"\n")


def preload(stages: list[str]) -> None:
    """The chapters the answers use, loaded once here: each answer's process starts with them."""
    sys.path[:0] = [p for p in (str(EXERCISES), str(REPO_ROOT)) if p not in sys.path]
    import chapters  # noqa: F401  (the repository on the path; Triton in its interpreter, bounds-checked)
    from tools.stages import load

    for stage in stages:
        load(stage)
        package = REPO_ROOT / stage / "kernels"
        if package.is_dir():  # chapter 4's kernels, every module: an answer may import any of them
            import importlib

            for module in sorted(package.glob("*.py")):
                importlib.import_module("kernels" if module.stem == "__init__" else f"kernels.{module.stem}")
    if "torch" in sys.modules:
        global BACKWARD
        import torch.overrides  # noqa: F401
        import torch.utils._python_dispatch  # noqa: F401

        from torch.autograd.variable import Variable

        def backward(tensor, grad):  # autograd's engine itself: the answer's swaps and modes do not reach it
            Variable._execution_engine.run_backward((tensor,), (grad,), False, False, (), allow_unreachable=True,
                                                    accumulate_grad=True)

        BACKWARD = backward
        with _only_allocations(), _recording(set()):  # their first op imports torch._dynamo: a second and more
            sys.modules["torch"].zeros(1).fill_(1.0)


# --------------------------------------------------------------------------- the answer's process


def answer_main(control_fd: int, output_fd: int) -> None:
    """One answer's process: its own session (the judge stops it and whatever it started
    together), limits, its prints to the output file, and the judge's requests until it hangs up."""
    os.setsid()
    _die_with_parent()  # a judge killed outright takes the zygote, and the zygote its answers
    signal.signal(signal.SIGINT, signal.default_int_handler)
    os.dup2(output_fd, 1)
    os.dup2(output_fd, 2)
    os.close(output_fd)
    for fd, name in ((1, "stdout"), (2, "stderr")):
        setattr(sys, name, io.TextIOWrapper(io.FileIO(fd, "w", closefd=False), encoding="utf-8", errors="replace",
                                            write_through=True))
    _limit_resources()
    sock = socket.socket(fileno=control_fd)
    _refuse_files_and_programs()
    wire.send(sock, {"ready": os.getpid()})
    Server(sock).run()
    os._exit(0)


def _die_with_parent() -> None:
    """Linux: this process gets SIGKILL when the one that started it ends (elsewhere, nothing)."""
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def _limit_resources() -> None:
    try:
        import resource

        for which, limit in ((resource.RLIMIT_AS, MEMORY_LIMIT_GIB * 2**30),
                             (resource.RLIMIT_FSIZE, PRINT_LIMIT_BYTES)):
            soft, hard = resource.getrlimit(which)
            if hard == resource.RLIM_INFINITY or hard > limit:
                resource.setrlimit(which, (limit, hard if hard != resource.RLIM_INFINITY else limit))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))  # an abort leaves no core file
    except (ImportError, ValueError, OSError, AttributeError):  # limits we may not set: none
        pass


class Refused(PermissionError):
    """What the answer's process does not let an answer do (a PermissionError, so that library
    code that handles an unreadable file still does)."""


def _chapter_folders() -> list[Path]:
    return [p for p in REPO_ROOT.iterdir() if re.match(r"\d+_", p.name) and (p / "main.py").is_file()]


class Doors:
    """The answer's process's audit hook (sys.addaudithook: it cannot be removed): no file of the
    solutions, the checker or the chapters is opened (what this process needs of them is
    loaded), but the answer's own file, and no program is started, unless a check allows it
    (`programs`: a chapter whose answers start processes)."""

    def __init__(self):
        chapters = {folder: f"a second copy of {folder.name}'s code would not have the chapter's own version "
                            f"swapped out: use load(\"{folder.name}\") as the stub does"
                    for folder in _chapter_folders()}
        closed = {EXERCISES / "solutions": "the worked solutions are for after: write it yourself",
                  EXERCISES / "checker": "the checker's own code is not the answer's to call", **chapters}
        self.closed = {str(path) + os.sep: why for path, why in closed.items()}
        self.open_anyway = [str(EXERCISES / "checker" / name) for name in SHARED]
        self.programs, self.busy = False, False

    def allow(self, path: Path) -> None:
        """The answer's own file, and its compiled copy in __pycache__, may be read."""
        self.open_anyway += [os.path.realpath(path), os.path.join(os.path.realpath(path.parent), "__pycache__",
                                                                  path.stem + ".")]

    def __call__(self, event: str, args) -> None:
        if self.busy:
            return
        if event == "open" and args and isinstance(args[0], (str, bytes, os.PathLike)):
            self.busy = True
            try:
                path = os.path.realpath(os.fsdecode(args[0]))
            finally:
                self.busy = False
            for folder, why in self.closed.items():
                if path.startswith(folder) and not path.startswith(tuple(self.open_anyway)):
                    raise Refused(f"your code opened {os.path.relpath(path, REPO_ROOT)}: {why}")
        elif event in PROGRAMS and not self.programs:
            what = args[0] if args else ""
            if isinstance(what, (list, tuple)):
                what = what[0] if what else ""
            what = os.fsdecode(what) if isinstance(what, (str, bytes)) else what
            raise Refused(f"your code started a program ({what}): an answer computes in its own process")


PROGRAMS = ("subprocess.Popen", "os.system", "os.exec", "os.posix_spawn", "os.spawn", "pty.spawn")
DOORS: Doors | None = None


def _refuse_files_and_programs() -> None:
    global DOORS
    DOORS = Doors()
    sys.addaudithook(DOORS)


class Used(Exception):
    """The answer used what it was asked to write (or reached for what the check refuses)."""


class Forbidden:
    """Stands in for the chapter's own version of the answer while the learner's code runs."""

    def __init__(self, what: str):
        self._what = what

    def _refuse(self):
        raise Used(f"your code used {self._what}: write it yourself")

    def __call__(self, *args, **kwargs):
        self._refuse()

    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        self._refuse()

    def __getitem__(self, key):  # a kernel launched as kernel[grid](...)
        self._refuse()


class _RefusingImport:
    """An import finder that refuses a package, and its submodules, while the learner's code runs."""

    def __init__(self, package: str, stand_in: Forbidden):
        self.package, self.stand_in = package, stand_in

    def find_spec(self, name, path=None, target=None):
        if name == self.package or name.startswith(self.package + "."):
            self.stand_in._refuse()
        return None


class Server:
    """Answers the judge's requests: load, attribute, call, backward. Every request gets one
    reply: {"ok": ...} with plain data, or {"error": {...}} saying what the answer did."""

    def __init__(self, sock):
        self.sock = sock
        self.module = None
        self.path = None
        self.swaps: list[tuple] = []  # (owner, attribute, stand-in)
        self.kernel = False  # chapter 4: launchers allocate, kernels compute
        self.record = False  # record the PyTorch functions the answer calls
        self.objects: dict[str, object] = {}  # tensors by handle, for backward and .grad
        self.recorded: set[str] = set()
        self.handles = itertools.count()

    def run(self) -> None:
        while True:
            try:
                request = wire.receive(self.sock)
            except (wire.Closed, OSError, wire.Unreadable):
                return
            try:
                reply = getattr(self, "do_" + request["verb"])(request)
            except Answered as answered:
                reply = {"error": answered.info}
            sys.stdout.flush()
            sys.stderr.flush()
            try:
                wire.send(self.sock, reply)
            except wire.Unreadable as err:
                wire.send(self.sock, {"error": {"kind": "crashed", "message": f"your code returned something the "
                                                                             f"check cannot read ({err})"}})

    # ------------------------------------------------------------------ requests

    def do_load(self, request: dict) -> dict:
        import importlib.util

        self.path = Path(request["path"]).resolve()
        self.kernel, self.record = request.get("kernel", False), request.get("record", False)
        DOORS.programs = request.get("programs", False)
        self.swaps = [self._stand_in(spec) for spec in request.get("forbidden", [])]
        if self.kernel:
            self.swaps += _kernel_swaps()
        if request.get("ranks"):
            self.swaps += _counted_sends()
        DOORS.allow(self.path)
        name = f"exercise_{self.path.stem}"
        spec = importlib.util.spec_from_file_location(name, self.path)
        if spec is None or spec.loader is None:
            raise Answered({"kind": "crashed", "message": f"{self.path.name} is not a Python file (a .py file)"})
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        linecache.checkcache(str(self.path))
        self.facts_start()
        self.guarded(spec.loader.exec_module, module, while_doing="while loading")
        self.module = module
        return {"ok": self.facts_end()}

    def do_attribute(self, request: dict) -> dict:
        """What `name` is in the learner's module: missing, a function, a class (an autograd
        Function?), or a plain value."""
        value, found = self._lookup(request["name"])
        if not found:
            return {"ok": {"exists": False}}
        info = {"exists": True, "type": type(value).__name__, "callable": callable(value)}
        torch = sys.modules.get("torch")
        if isinstance(value, type):
            info["class"] = True
            info["autograd_function"] = bool(torch is not None and issubclass(value, torch.autograd.Function))
        try:
            info["value"] = self.encode(value, {}, plain_only=True)
        except _NotPlain:
            pass
        return {"ok": info}

    def do_call(self, request: dict) -> dict:
        function, found = self._lookup(request["function"])
        if not found:
            raise Answered({"kind": "mismatch", "message": f"your file has no `{request['function']}`: keep the "
                                                           f"stub's name (git diff shows what changed)"})
        inputs: dict[int, object] = {}
        args = [self.decode(a, inputs) for a in request.get("args", [])]
        kwargs = {k: self.decode(v, inputs) for k, v in request.get("kwargs", {}).items()}
        before = {i: _contents(a) for i, a in enumerate(args) if _contents(a) is not None}
        facts = self.facts_start()
        result = self.guarded(function, *args, while_doing=f"in {request['function'].split('.')[0]}", **kwargs)
        reply = self.facts_end(facts)
        graph = Graph(inputs)
        reply["result"] = self.encode(result, graph)
        reply["updated"] = {i: self.encode(a, graph) for i, a in enumerate(args)
                            if i in before and _contents(a) != before[i]}
        reply["nodes"] = graph.nodes
        return {"ok": reply}

    def do_ranks(self, request: dict) -> dict:
        """function(*args) on each of `world` ranks: processes forked from this one and joined in one
        gloo process group (chapter 5's `in_forked_ranks`), rank r with the r-th list of arguments.
        Per rank: what it returned, what it wrote into its arguments, and the bytes of each send
        (or isend) it made, in order. {"stuck": True} when the ranks had not all finished after
        `timeout` seconds: they wait for each other (a deadlock), which the judge names."""
        function, found = self._lookup(request["function"])
        if not found:
            raise Answered({"kind": "mismatch", "message": f"your file has no `{request['function']}`: keep the "
                                                           f"stub's name (git diff shows what changed)"})
        launch = sys.modules["launch"]  # 5_distributed/launch.py, loaded with the chapter
        per_rank = [[self.decode(a, {}) for a in args] for args in request["args"]]
        name = request["function"].split(".")[0]

        def work(rank: int) -> dict:
            args = per_rank[rank]
            before = {i: _contents(a) for i, a in enumerate(args) if _contents(a) is not None}
            SENT.clear()
            try:
                result = self.guarded(function, *args, while_doing=f"in {name} on rank {rank}")
            except Answered as answered:
                return {"error": answered.info}
            return {"result": self.encode(result, Graph({})), "sent": list(SENT),
                    "updated": {i: self.encode(a, Graph({})) for i, a in enumerate(args)
                                if i in before and _contents(a) != before[i]}}

        try:
            replies = launch.in_forked_ranks(len(per_rank), work, timeout=request.get("timeout", 10))
        except TimeoutError:
            return {"ok": {"stuck": True}}
        except launch.RankEnded as ended:  # os._exit or a signal in the answer's code, on one rank
            raise Answered({"kind": "crashed", "message": f"your code ended rank {ended.rank}'s process ({ended.how}) "
                                                          f"in {name}: a function ends by returning"}) from None
        except RuntimeError as err:  # a rank failed outside the answer's code (joining the group)
            message = f"a rank could not run: {str(err).splitlines()[-1]}"
            raise Answered({"kind": "crashed", "message": message}) from None
        errors = [reply["error"] for reply in replies if "error" in reply]
        lost = [e for e in errors if any(word in e.get("message", "") for word in launch.LOST)]
        if errors and len(lost) == len(errors) == len(replies):  # every rank's collective timed out: a deadlock
            return {"ok": {"stuck": True}}
        if errors:  # the rank whose own code failed, not the ranks that lost it (their connection closed)
            raise Answered(next((e for e in errors if not any(lost in e.get("message", "") for lost in
                                                              launch.LOST)), errors[0]))
        return {"ok": {"ranks": replies}}

    def do_backward(self, request: dict) -> dict:
        import torch

        tensor = self.objects[request["tensor"]]
        grad = torch.from_numpy(request["grad"]).to(tensor.dtype)
        facts = self.facts_start()
        self.guarded(BACKWARD, tensor, grad, while_doing="in backward")
        reply = self.facts_end(facts)
        reply["grads"] = [None if self.objects[h].grad is None else self.encode(self.objects[h].grad, {})
                          for h in request["inputs"]]
        return {"ok": reply}

    # ------------------------------------------------------------------ running the learner's code

    def _stand_in(self, spec) -> tuple:
        owner_name, attribute, what = spec
        if owner_name == "sys.modules":
            return (sys.modules, attribute, Forbidden(what))
        module_name, _, qualname = owner_name.partition(":")
        owner = sys.modules.get(module_name)
        if owner is None:  # a module that is an attribute, not an entry of sys.modules (torch._C._nn)
            import importlib

            top, *rest = module_name.split(".")
            owner = importlib.import_module(top)
            for part in rest:
                owner = getattr(owner, part)
        for part in filter(None, qualname.split(".")):
            owner = getattr(owner, part)
        return (owner, attribute, Forbidden(what))

    def _lookup(self, dotted: str):
        value = self.module
        for part in dotted.split("."):
            try:
                value = self.guarded(getattr, value, part, while_doing=f"while reading `{dotted}`")
            except Answered as answered:
                if "AttributeError" in answered.info.get("message", ""):
                    return None, False
                raise
        return value, True

    @contextlib.contextmanager
    def swapped(self):
        saved = []
        try:
            for owner, attribute, stand_in in self.swaps:
                if isinstance(owner, dict):  # sys.modules: a whole package is off limits, with its submodules
                    for key in [k for k in owner if k == attribute or k.startswith(attribute + ".")]:
                        saved.append((owner, key, owner.pop(key)))
                    refusing = _RefusingImport(attribute, stand_in)
                    sys.meta_path.insert(0, refusing)
                    saved.append((sys.meta_path, None, refusing))
                else:
                    saved.append((owner, attribute, getattr(owner, attribute)))
                    setattr(owner, attribute, stand_in)
            with contextlib.ExitStack() as stack:
                if self.kernel:
                    stack.enter_context(_only_allocations())
                if self.record:
                    stack.enter_context(_recording(self.recorded))
                yield
        finally:
            for owner, attribute, value in reversed(saved):
                if owner is sys.meta_path:
                    sys.meta_path.remove(value)
                elif isinstance(owner, dict):
                    owner[attribute] = value
                else:
                    setattr(owner, attribute, value)

    def facts_start(self):
        self.recorded: set[str] = set()
        if self.kernel:
            from . import bounds

            bounds.launches.clear()
            bounds.programs.clear()
            bounds.stores = []

    def facts_end(self, _=None) -> dict:
        facts = {}
        if self.record:
            facts["ops"] = sorted(self.recorded)[:500]
        if self.kernel:
            from . import bounds

            facts["launches"] = [[name, programs] for name, programs in zip(bounds.launches, bounds.programs)]
        return facts

    def guarded(self, function, *args, while_doing: str = "in your code", **kwargs):
        try:
            with self.swapped():
                return function(*args, **kwargs)
        except Answered:
            raise
        except SystemExit as exit_:
            raise Answered({"kind": "crashed", "message": f"your code called sys.exit({exit_.code!r}) {while_doing}"
                                                          f"{self.where(exit_)}: an answer returns its result; it "
                                                          f"does not end the program"}) from None
        except BaseException as error:  # noqa: BLE001  (a learner's code may raise anything: one line says what)
            raise Answered(self.explain(error, while_doing)) from None

    def explain(self, error: BaseException, while_doing: str) -> dict:
        """What the learner's code raised, as the judge needs it: the stub's marker, a refused
        reference, an out-of-bounds access, or the exception with the learner's own line."""
        from_bounds = _out_of_bounds(error)
        if from_bounds is not None:
            return {"kind": "mismatch", "message": str(from_bounds)}
        root = error
        while isinstance(root.__cause__ or root.__context__, BaseException) and type(root).__name__ == \
                "InterpreterError":  # Triton's interpreter re-raises what a kernel raised
            root = root.__cause__ or root.__context__
        text = str(root).strip()
        if isinstance(root, (Used, Refused)):
            return {"kind": "used", "message": text}
        if isinstance(root, NotImplementedError):
            return {"kind": "not written", "message": text or "the stub still raises NotImplementedError"}
        if isinstance(root, AssertionError) and STUB_MARK.fullmatch(text):
            return {"kind": "not written", "message": f"the kernel is still the stub ({text})"}
        if isinstance(root, MemoryError):
            return {"kind": "crashed", "message": f"your code ran out of memory {while_doing}{self.where(root)} (the "
                                                  f"check allows {MEMORY_LIMIT_GIB} GiB)"}
        if isinstance(root, SyntaxError) and self.path and Path(root.filename or "").resolve() == self.path:
            return {"kind": "crashed", "message": f"your file has a syntax error at line {root.lineno}: {root.msg}"}
        last = text.splitlines()[-1] if text else ""
        return {"kind": "crashed", "text": text[:2000],
                "message": f"your code raised {type(root).__name__} {while_doing}{self.where(root)}"
                           + (f": {last[:300]}" if last else "")}

    def where(self, error: BaseException) -> str:
        """' (tanh.py, line 12: `return x * y`)': the learner's innermost line in the traceback."""
        if self.path is None:
            return ""
        frames = [f for f in traceback.extract_tb(error.__traceback__) if Path(f.filename).resolve() == self.path]
        if not frames:
            return ""
        frame = frames[-1]
        code = (frame.line or linecache.getline(frame.filename, frame.lineno)).strip()
        return f" ({self.path.name}, line {frame.lineno}" + (f": `{code[:120]}`" if code else "") + ")"

    # ------------------------------------------------------------------ plain data in, plain data out

    def decode(self, value, inputs: dict):
        """The judge's inputs as the answer takes them: arrays, numbers, lists, a chapter 1
        Value (a new leaf), a torch tensor."""
        if isinstance(value, wire.Tag):
            if value.kind == "value":
                from tools.stages import load

                leaf = load("1_pure_python").Value(value["data"])
                inputs[id(leaf)] = (value["input"], leaf)
                return leaf
            if value.kind == "tensor":
                import torch

                dtype = getattr(torch, value["dtype"].removeprefix("torch."))
                tensor = torch.from_numpy(value["array"].copy()).to(dtype)
                tensor.requires_grad_(value["requires_grad"])
                self.objects[value["handle"]] = tensor
                return tensor
        if isinstance(value, list):
            return [self.decode(v, inputs) for v in value]
        if isinstance(value, tuple):
            return tuple(self.decode(v, inputs) for v in value)
        return value

    def encode(self, value, graph, depth: int = 0, plain_only: bool = False):
        """Whatever the answer returned, as plain data the judge can check: numbers as int or
        float, arrays, tensors (their numbers, dtype, whether they require grad, and in chapter
        4 which elements a kernel stored), Value graphs as nodes, anything else by its type."""
        if depth > 32:
            raise wire.Unreadable("nested more than 32 deep")
        if value is None or isinstance(value, (bool, str)):
            return value if not isinstance(value, str) else value[:10_000]
        np = sys.modules.get("numpy")
        if np is not None and isinstance(value, np.bool_):
            return bool(value)
        if isinstance(value, numbers.Integral):
            return int(value)
        if isinstance(value, numbers.Real):
            return float(value)
        if np is not None and isinstance(value, np.ndarray) and value.dtype.kind in "biuf":
            return np.array(value, dtype=value.dtype.newbyteorder("=") if value.dtype.byteorder == ">" else value.dtype)
        if plain_only:
            raise _NotPlain()
        if isinstance(value, (list, tuple)):
            items = [self.encode(v, graph, depth + 1) for v in value]
            return items if isinstance(value, list) else tuple(items)
        torch = sys.modules.get("torch")
        if torch is not None and isinstance(value, torch.Tensor):
            return self._tensor(value)
        stage1 = sys.modules.get("stage_1_pure_python")
        if stage1 is not None and isinstance(value, stage1.Value) and isinstance(graph, Graph):
            return graph.node(value, self)
        text = object.__repr__(value)
        return wire.Tag("other", type=type(value).__name__, text=text[:200])

    def _tensor(self, tensor) -> "wire.Tag":
        import torch

        handle = f"c{next(self.handles)}"
        self.objects[handle] = tensor
        data = tensor.detach().cpu()
        if data.dtype == torch.bfloat16:
            data = data.float()
        stored = None
        if self.kernel and data.is_floating_point():
            from . import bounds

            stored = bounds.stored_mask(tensor)
        return wire.Tag("tensor", array=data.resolve_conj().resolve_neg().numpy().copy(), dtype=str(tensor.dtype),
                        requires_grad=bool(tensor.requires_grad), handle=handle, stored=stored)


class _NotPlain(Exception):
    pass


class Answered(Exception):
    """The reply to a request is an error: what the learner's code did, for the judge to judge."""

    def __init__(self, info: dict):
        super().__init__(info.get("message", ""))
        self.info = info


class Graph:
    """The nodes of the Value graphs an answer returned, as plain records: data, children (by
    index), local_grads; the judge's own leaves by their input number."""

    def __init__(self, inputs: dict):
        self.inputs = inputs  # id(child's leaf) -> (the judge's number for it, the leaf)
        self.nodes: list[dict] = []
        self.index: dict[int, int] = {}

    def node(self, value, server) -> "wire.Tag":
        if id(value) not in self.index:
            self._add(value, server)
        return wire.Tag("node", i=self.index[id(value)])

    def _add(self, root, server) -> None:
        Value = type(root)
        stack = [root]
        order = []
        while stack:  # every node reachable from root, each once
            value = stack.pop()
            if id(value) in self.index:
                continue
            if len(self.nodes) >= MAX_NODES:
                raise Answered({"kind": "mismatch", "message": f"your result's graph has more than {MAX_NODES:,} "
                                                               f"nodes"})
            self.index[id(value)] = len(self.nodes)
            self.nodes.append({})
            order.append(value)
            if id(value) in self.inputs:
                continue
            children = getattr(value, "_children", None)
            if isinstance(children, (list, tuple)) and all(isinstance(c, Value) for c in children):
                stack.extend(children)
        for value in order:
            record = self.nodes[self.index[id(value)]]
            if id(value) in self.inputs:
                record["input"] = self.inputs[id(value)][0]
                continue
            data = getattr(value, "data", None)
            record["data"] = float(data) if isinstance(data, numbers.Real) and not isinstance(data, bool) else \
                wire.Tag("other", type=type(data).__name__, text=_short(data))
            children = getattr(value, "_children", None)
            if isinstance(children, (list, tuple)) and all(isinstance(c, Value) for c in children):
                record["children"] = [self.index[id(c)] for c in children]
            else:
                record["children"] = wire.Tag("other", type=type(children).__name__, text=_short(children))
            grads = getattr(value, "_local_grads", None)
            if isinstance(grads, (list, tuple)) and all(isinstance(g, numbers.Real) for g in grads):
                record["local_grads"] = [float(g) for g in grads]
            else:
                record["local_grads"] = wire.Tag("other", type=type(grads).__name__, text=_short(grads))


def _short(value) -> str:
    try:
        text = repr(value)
    except Exception:  # noqa: BLE001  (a repr of the learner's may raise)
        text = object.__repr__(value)
    return text if len(text) <= 120 else text[:117] + "..."


SENT: list[int] = []  # in a forked rank: the bytes of each send and isend the answer made


def _counted_sends() -> list[tuple]:
    """torch.distributed's isend, counting the bytes it sends into SENT. dist.send calls the
    module's isend, so a send is counted once, whichever of the two the answer calls."""
    import torch.distributed as dist
    import torch.distributed.distributed_c10d as c10d

    isend = c10d.isend

    def counted(tensor, *args, **kwargs):
        SENT.append(tensor.numel() * tensor.element_size())
        return isend(tensor, *args, **kwargs)

    return [(dist, "isend", counted), (c10d, "isend", counted)]


def _contents(value):
    """The bytes of an array or tensor argument (to see whether the answer wrote into it)."""
    np = sys.modules.get("numpy")
    if np is not None and isinstance(value, np.ndarray):
        return value.tobytes()
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(value, torch.Tensor) and not value.requires_grad:
        return value.detach().cpu().numpy().tobytes()
    return None


def _out_of_bounds(error: BaseException):
    if "triton" not in sys.modules:
        return None
    from .bounds import out_of_bounds

    return out_of_bounds(error)


# --------------------------------------------------------------------------- modes


BACKWARD = None  # autograd's engine, called directly (set by preload when torch is loaded)


def _recording(recorded: set):
    """A TorchFunctionMode that notes the name of every PyTorch function the answer calls,
    torch.ops.aten's included (they are what F.scaled_dot_product_attention is made of)."""
    from torch.overrides import TorchFunctionMode

    class Recording(TorchFunctionMode):
        def __torch_function__(self, func, types, args=(), kwargs=None):
            name = getattr(func, "__name__", None) or str(func)
            recorded.add(str(name).split(".")[0])
            return func(*args, **(kwargs or {}))

    return Recording()


ALLOWED = {  # what a chapter 4 launcher may ask of PyTorch: allocations, views and copies, no arithmetic
    "empty", "empty_like", "empty_strided", "new_empty", "new_empty_strided", "zeros", "zeros_like", "full",
    "full_like", "fill_", "zero_", "copy_", "clone", "detach", "alias", "view", "_unsafe_view", "reshape",
    "as_strided", "t", "transpose", "permute", "expand", "select", "slice", "unsqueeze", "squeeze", "flatten",
    "_to_copy", "lift_fresh", "set_", "resize_", "is_same_size", "contiguous"}
HOST_READ = "your launcher read a tensor's numbers on the host ({how}): the arithmetic is the kernel's; write it there"


def _only_allocations():
    from torch.utils._python_dispatch import TorchDispatchMode

    class OnlyAllocations(TorchDispatchMode):
        """Refuses any PyTorch op that computes, while a chapter 4 launcher runs."""

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            name = func.overloadpacket.__name__
            if name == "_local_scalar_dense":
                raise Used(HOST_READ.format(how="tensor.item(), float() or int() of a tensor"))
            if name not in ALLOWED:
                raise Used(f"your code used PyTorch to compute (aten::{name}): the arithmetic is the kernel's; "
                           f"write it yourself")
            return func(*args, **(kwargs or {}))

    return OnlyAllocations()


def _kernel_swaps() -> list[tuple]:
    """Chapter 4: new buffers start as NaN (a place no kernel stored shows up), and a
    tensor's numbers cannot be read on the host while the launcher runs."""
    import torch

    def nan_filled(make):
        def allocate(*args, **kwargs):
            tensor = make(*args, **kwargs)
            return tensor.fill_(float("nan")) if tensor.is_floating_point() else tensor
        return allocate

    class HostRead:
        def __init__(self, how):
            self.how = how

        def __get__(self, obj, owner=None):
            raise Used(HOST_READ.format(how=self.how))

    swaps = [(torch, "empty", nan_filled(torch.empty)), (torch, "empty_like", nan_filled(torch.empty_like))]
    for attribute, how in (("numpy", "Tensor.numpy()"), ("__array__", "np.asarray or np.array of a tensor"),
                           ("tolist", "Tensor.tolist()"), ("__dlpack__", "a DLPack export of a tensor")):
        swaps.append((torch.Tensor, attribute, HostRead(how)))
    return swaps

