"""Issue 24, defect 3: a graded program cannot read its own tests.

Before, ``prog.py`` held the program followed by its tests, in the sandbox directory the
program runs in, and the tests ran in the program's own namespace: a wrong solution that
opened ``../prog.py``, parsed the asserts and answered from a table passed HumanEval/0 and
MBPP/1 in every layer. Now the tests arrive through a pipe and run in a copy of the
program's namespace. Each attack below passed before; each is now a fail, while the honest
solution still passes.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from firewall_routing.sampling import sandbox
from firewall_routing.sampling.graders import grade_humaneval, grade_mbpp, humaneval_reference

MBPP_TESTS = (
    "assert min_cost([[1, 2, 3], [4, 8, 2], [1, 5, 3]], 2, 2) == 8\n"
    "assert min_cost([[2, 3, 4], [5, 9, 3], [2, 6, 4]], 2, 2) == 12\n"
    "assert min_cost([[3, 4, 5], [6, 10, 4], [3, 7, 5]], 2, 2) == 16\n"
)

# Reads the tests from the file the program once shared with them, answers in order.
FILE_CHEAT = """
import glob, os, re
answers = []
for path in glob.glob(os.path.join(os.getcwd(), "..", "prog.py")) + glob.glob("/tmp/*/prog.py"):
    try:
        text = open(path).read()
    except OSError:
        continue
    for line in text.splitlines():
        if line.strip().startswith("assert "):
            answers.append(eval(line.rpartition(" == ")[2]))
calls = []
def {name}(*args):
    calls.append(1)
    return answers[len(calls) - 1] if len(answers) >= len(calls) else None
"""

HUMANEVAL_PROMPT = 'def add(a: int, b: int) -> int:\n    """Add two numbers."""\n'
HUMANEVAL_TEST = "def check(candidate):\n    assert candidate(2, 3) == 5\n    assert candidate(10, 7) == 17\n"

# Finds the harness's `check` among its own globals and answers from its constants.
GLOBALS_CHEAT = """
def add(a, b):
    check = globals().get("check")
    consts = [c for c in check.__code__.co_consts if isinstance(c, int)] if check else []
    table = dict(zip(zip(consts[0::3], consts[1::3]), consts[2::3]))
    return table.get((a, b), -1)
"""

# Replaces builtins.exec to be handed the tests' code object.
EXEC_CHEAT = """
import builtins
real_exec, seen = builtins.exec, []
def spy(code, *args):
    seen.append(code)
    return real_exec(code, *args)
builtins.exec = spy
def add(a, b):
    consts = [c for code in seen for c in getattr(code, "co_consts", ()) if isinstance(c, int)]
    return consts[-1] if consts else -1
"""

# Looks for the tests among the worker thread's arguments.
THREAD_CHEAT = """
import threading
def add(a, b):
    for t in threading.enumerate():
        for arg in getattr(t, "_args", ()):
            if isinstance(arg, list) and arg:
                return 5 if (a, b) == (2, 3) else 17
    return -1
"""


def test_mbpp_wrong_solution_reading_the_tests_file_fails() -> None:
    assert not grade_mbpp(FILE_CHEAT.format(name="min_cost"), MBPP_TESTS)


def test_mbpp_honest_solution_still_passes() -> None:
    honest = (
        "def min_cost(cost, m, n):\n"
        "    R, C = len(cost), len(cost[0])\n"
        "    tc = [[0] * C for _ in range(R)]\n"
        "    tc[0][0] = cost[0][0]\n"
        "    for i in range(1, m + 1): tc[i][0] = tc[i - 1][0] + cost[i][0]\n"
        "    for j in range(1, n + 1): tc[0][j] = tc[0][j - 1] + cost[0][j]\n"
        "    for i in range(1, m + 1):\n"
        "        for j in range(1, n + 1):\n"
        "            tc[i][j] = min(tc[i - 1][j - 1], tc[i - 1][j], tc[i][j - 1]) + cost[i][j]\n"
        "    return tc[m][n]\n"
    )
    assert grade_mbpp(honest, MBPP_TESTS)


@pytest.mark.parametrize("cheat", ["file", "globals", "exec", "thread"])
def test_humaneval_wrong_solutions_that_look_for_the_harness_fail(cheat: str) -> None:
    code = {
        "file": FILE_CHEAT.format(name="add"),
        "globals": GLOBALS_CHEAT,
        "exec": EXEC_CHEAT,
        "thread": THREAD_CHEAT,
    }[cheat]
    reference = humaneval_reference(HUMANEVAL_PROMPT, HUMANEVAL_TEST, "add")
    assert not grade_humaneval(f"```python\n{code}\n```", reference)
    assert grade_humaneval("    return a + b\n", reference)  # the honest one


def test_tests_larger_than_a_pipe_buffer_arrive_whole() -> None:
    tests = "".join(f"assert f({i}) == {i + 1}\n" for i in range(20_000))  # ~400 KB
    assert len(tests) > 256 * 1024
    assert sandbox.run_python("def f(x):\n    return x + 1\n", tests, timeout_s=60).passed
    r = sandbox.run_python("def f(x):\n    return x + (x != 19_999)\n", tests, timeout_s=60)
    assert r.status == "failed"


def test_tests_are_in_no_file_the_program_can_open() -> None:
    marker = "HARNESS_MARKER_7f3a"
    code = (
        "import os\n"
        "found = []\n"
        "for top in ('/tmp', os.path.dirname(os.getcwd()), os.getcwd()):\n"
        "    for root, dirs, files in os.walk(top):\n"
        "        for f in files:\n"
        "            try:\n"
        f"                found += [f] if {marker!r} in open(os.path.join(root, f), errors='replace').read() else []\n"
        "            except OSError:\n"
        "                pass\n"
        "assert not found, found\n"
    )
    assert sandbox.run_python(code, f"x = {marker!r}\n").passed


def test_a_syntax_error_in_the_tests_is_an_error_not_a_pass() -> None:
    r = sandbox.run_python("x = 1\n", "assert x ==\n")
    assert not r.passed and r.status == "error"


def test_the_reference_stays_json_with_the_tests() -> None:
    assert json.loads(humaneval_reference(HUMANEVAL_PROMPT, HUMANEVAL_TEST, "add"))["test"] == HUMANEVAL_TEST


@pytest.mark.parametrize("layer", [sandbox._PLAIN, sandbox._best_layer()], ids=lambda layer: layer.name)
def test_every_layer_keeps_the_tests_from_the_program(layer: sandbox._Layer) -> None:
    code = FILE_CHEAT.format(name="min_cost")
    assert not sandbox._run(code, 10, 512, layer=layer, guard=True, tests=MBPP_TESTS).passed
    assert sandbox._run(code + MBPP_TESTS, 10, 512, layer=layer, guard=True).passed  # the old way


# --------------------------------------------------------------------------- 8: process-group as root


@pytest.fixture
def no_namespaces(monkeypatch: pytest.MonkeyPatch) -> Any:
    """A machine without namespaces: only the process-group layer works."""
    monkeypatch.setattr(sandbox, "_works", lambda layer: not layer.namespaces)
    sandbox._best_layer.cache_clear()
    yield monkeypatch
    sandbox._best_layer.cache_clear()


def test_process_group_layer_refuses_root_without_opt_in(no_namespaces: Any) -> None:
    from firewall_routing.errors import InputError

    no_namespaces.setattr(os, "geteuid", lambda: 0)
    no_namespaces.delenv(sandbox.ALLOW_ROOT_ENV, raising=False)
    with pytest.raises(InputError, match=rf"runs as root.*/tmp.*{sandbox.ALLOW_ROOT_ENV}=1"):
        sandbox.run_python("assert True\n")


def test_process_group_layer_runs_as_root_with_opt_in_and_says_what_is_open(
    no_namespaces: Any, caplog: pytest.LogCaptureFixture
) -> None:
    no_namespaces.setattr(os, "geteuid", lambda: 0)
    no_namespaces.setenv(sandbox.ALLOW_ROOT_ENV, "1")
    assert sandbox.sandbox_isolation() == "process-group"
    assert any("Not protected" in r.getMessage() and "/dev/shm" in r.getMessage() for r in caplog.records)


def test_process_group_layer_as_a_user_warns_what_is_not_protected(
    no_namespaces: Any, caplog: pytest.LogCaptureFixture
) -> None:
    no_namespaces.setattr(os, "geteuid", lambda: 1000)
    assert sandbox.sandbox_isolation() == "process-group"
    assert any("Not protected" in r.getMessage() for r in caplog.records)


def test_what_the_process_group_layer_does_not_protect_as_measured(tmp_path: Path) -> None:
    """The holes the warning names, measured (so the docs' list stays true): a C-level write
    to the host's /dev/shm and, as root, reading /etc/shadow, both past the guard."""
    target = Path("/dev/shm") / f"fwr-probe-{os.getpid()}.db"
    shm = f"import sqlite3\nsqlite3.connect({str(target)!r}).execute('create table t(x)')\n"
    shadow = "assert open('/etc/shadow').read()\n"
    try:
        r = sandbox._run(
            shm + (shadow if os.geteuid() == 0 else ""), 10, 512, layer=sandbox._PLAIN, guard=True
        )
        assert r.passed, r.detail
        assert target.exists()  # it reached the host
    finally:
        target.unlink(missing_ok=True)
    best = sandbox._best_layer()
    if best.namespaces:  # the namespace layers do keep it off the host
        assert sandbox._run(shm, 10, 512, layer=best, guard=True).passed
        assert not target.exists()
    if best.as_nobody:
        assert not sandbox._run(shadow, 10, 512, layer=best, guard=True).passed
