"""The module map holds: no module imports a later pipeline stage, and no import cycles.

Every ``import`` in the package counts — module level, inside functions and under
``if TYPE_CHECKING:`` — because a type-only import still couples the two modules: a reader
has to know both to change either. The stages (docs/architecture.md has the map):

    base (errors, files, designs, minilm, configfiles, upstreams, litellm_transport, processes, datadir) → costs (what a
    query costs on each model) → outcomes (the table format every stage shares) →
    sampling → labels, static_encoder → embeddings → metrics → routers → calibration → serve
                                                      ↘ experiment (config → … → report → run)
    cli (the command line) on top.

Two deliberate readings of the pipeline order "sampling → outcomes → labels → routers →
metrics": ``outcomes`` holds the outcome-table *format*, which sampling writes, so it sits
below sampling; ``metrics`` holds pure formulas that the trained routers use to pick an epoch
by validation APGR, so it sits below routers. Neither imports anything later.
"""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"
PKG = SRC / "firewall_routing"

STAGES: list[tuple[str, ...]] = [
    (
        "firewall_routing",
        "errors",
        "files",
        "designs",
        "minilm",
        "configfiles",
        "upstreams",
        "processes",
        "datadir",
        "litellm_transport",
    ),
    ("costs",),
    ("outcomes",),
    ("sampling",),
    ("labels", "static_encoder"),
    ("embeddings",),
    ("metrics",),
    ("routers",),
    ("calibration",),
    ("serve", "experiment"),
    ("cli",),
]
"""Pipeline stages, earliest first. A module may import its own stage or an earlier one;
two groups in one stage (e.g. serve and experiment) may not import each other, except in
the base stage, whose small modules share one layer."""

EXPERIMENT_ORDER: tuple[str, ...] = (
    "config",
    "conclusion",
    "results",
    "verdict",
    "evaluation",
    "holdout",
    "scorer_check",
    "triviaqa",
    "report",
    "rundir",
    "run",
    "sweep_report",
    "sweep",
    "commands",
    "sweep_commands",
)
"""Inside ``experiment``: the results are typed before they are computed, computed before
they are rendered, and the report never imports the code that trains (``run``)."""


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def all_modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PKG.rglob("*.py"))}


def imports_of(path: Path, known: set[str]) -> set[str]:
    """Package modules ``path`` imports anywhere in its source (``from a import b`` counts as
    ``a.b`` when that is a module, else as ``a``)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name in known}
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, f"{path}: relative import (the map reads absolute ones)"
            if node.module is None or not node.module.startswith("firewall_routing"):
                continue
            subs = {f"{node.module}.{a.name}" for a in node.names} & known
            found |= subs
            if len(subs) < len(node.names) and node.module in known:
                found.add(node.module)
    return found


def graph() -> dict[str, set[str]]:
    mods = all_modules()
    known = set(mods)
    return {m: imports_of(p, known) - {m} for m, p in mods.items()}


def group(module: str) -> str:
    """``firewall_routing.serve.app`` → ``serve``; the package itself → ``firewall_routing``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else parts[0]


def stage(module: str) -> int:
    g = group(module)
    for i, names in enumerate(STAGES):
        if g in names:
            return i
    raise AssertionError(f"{module} is in no stage: add its group '{g}' to STAGES and docs/architecture.md")


def test_every_module_has_a_stage() -> None:
    for m in graph():
        stage(m)


def test_no_module_imports_a_later_stage() -> None:
    bad = []
    for m, deps in graph().items():
        for d in deps:
            later = stage(d) > stage(m)
            sibling = stage(d) == stage(m) > 0 and group(d) != group(m)
            if later or sibling:
                bad.append(f"{m} imports {d}")
    assert not bad, "\n".join(sorted(bad))


def test_experiment_modules_import_only_earlier_ones() -> None:
    order = {f"firewall_routing.experiment.{n}": i for i, n in enumerate(EXPERIMENT_ORDER)}
    assert set(order) | {"firewall_routing.experiment"} == {m for m in graph() if group(m) == "experiment"}, (
        "a new experiment module needs a place in EXPERIMENT_ORDER"
    )
    bad = [
        f"{m} imports {d}"
        for m, deps in graph().items()
        if m in order
        for d in deps
        if order.get(d, -1) > order[m]
    ]
    assert not bad, "\n".join(sorted(bad))


def find_cycle(edges: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as a path (first node repeated at the end), or None."""
    colour: dict[str, int] = {}  # 1 = on the current path, 2 = done
    path: list[str] = []

    def visit(n: str) -> list[str] | None:
        colour[n] = 1
        path.append(n)
        for d in sorted(edges.get(n, ())):
            if colour.get(d) == 1:
                return [*path[path.index(d) :], d]
            if d not in colour and (c := visit(d)) is not None:
                return c
        colour[n] = 2
        path.pop()
        return None

    for n in sorted(edges):
        if n not in colour and (c := visit(n)) is not None:
            return c
    return None


def test_no_import_cycles() -> None:
    cycle = find_cycle(graph())
    assert cycle is None, " → ".join(cycle or [])


def test_cycle_finder_finds_a_type_only_cycle(tmp_path: Path) -> None:
    """The checks above can fail: a cycle through an ``if TYPE_CHECKING:`` import is seen."""
    a = tmp_path / "a.py"
    a.write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from firewall_routing.b import X\n"
    )
    b = tmp_path / "b.py"
    b.write_text("def f():\n    from firewall_routing import a\n")
    known = {"firewall_routing.a", "firewall_routing.b"}
    edges = {"firewall_routing.a": imports_of(a, known), "firewall_routing.b": imports_of(b, known)}
    assert edges == {
        "firewall_routing.a": {"firewall_routing.b"},
        "firewall_routing.b": {"firewall_routing.a"},
    }
    assert find_cycle(edges) == ["firewall_routing.a", "firewall_routing.b", "firewall_routing.a"]


def test_benchmarks_package_is_gone() -> None:
    """ "benchmarks" means the speed/quality scripts only; dataset loaders are in sampling."""
    assert not (PKG / "benchmarks").exists()
    assert "firewall_routing.benchmarks" not in graph()


def test_one_upstream_config_class() -> None:
    found = [m for m, p in all_modules().items() if "class UpstreamConfig" in p.read_text(encoding="utf-8")]
    assert len(found) == 1, found


def test_architecture_doc_names_every_module() -> None:
    """docs/architecture.md has a line for every module, so the map cannot fall behind."""
    doc = (SRC.parent / "docs" / "architecture.md").read_text(encoding="utf-8")
    missing = [
        str(p.relative_to(PKG))
        for p in sorted(PKG.rglob("*.py"))
        if p.name != "__init__.py" and f"{p.name}`" not in doc
    ]
    assert not missing, f"add to docs/architecture.md: {missing}"
