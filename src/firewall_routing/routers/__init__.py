"""Router registry: name → implementation, imported lazily so the CLI starts instantly."""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

from firewall_routing.errors import InputError
from firewall_routing.routers.base import (
    FitReport,
    Router,
    RouterMetadata,
    RouterOptions,
    Validation,
    describe_options,
    read_config,
)

DEFAULT_ROUTER = "ridge"
"""The router ``train``, ``reproduce`` and ``sweep`` use unless told otherwise: ridge beat
``embedding-head`` on the 15 RouterDC pairs (docs/routers.md "Router search"). The one place
the default is named."""

REGISTRY: dict[str, str] = {
    "embedding-head": "firewall_routing.routers.embedding_head:EmbeddingHeadRouter",
    "random": "firewall_routing.routers.random:RandomRouter",
    "oracle": "firewall_routing.routers.oracle:OracleRouter",
    "encoder": "firewall_routing.routers.encoder:EncoderRouter",
    "causal-lm": "firewall_routing.routers.encoder:CausalLMRouter",
    "mf": "firewall_routing.routers.mf:MFRouter",
    "margin": "firewall_routing.routers.margin:MarginRouter",
    "knn": "firewall_routing.routers.knn:KNNRouter",
    "ridge": "firewall_routing.routers.ridge:RidgeRouter",
    "irt": "firewall_routing.routers.irt:IRTRouter",
}
"""Router name → ``module:Class``. Add a router by adding a file (a ``Router`` subclass with
its ``Options`` model and ability flags) and a line here."""


def router_class(name: str) -> type[Router]:
    if name not in REGISTRY:
        raise InputError(f"unknown router '{name}'; available: {', '.join(REGISTRY)}", field="router")
    module, cls = REGISTRY[name].split(":")
    found: type[Router] = getattr(importlib.import_module(module), cls)
    return found


def make_router(name: str, **options: Any) -> Router:
    """Construct a router by name; unknown or invalid options are one InputError line."""
    return router_class(name)(**options)


def load_router(path: str | Path) -> Router:
    """Load a router saved with ``Router.save`` (a directory holding ``router.json``).

    ``router.metadata`` holds what it was trained on (label design, pair, data hash).
    """
    cfg = read_config(path)
    p = Path(path)
    return router_class(cfg["router"]).from_config(
        cfg.get("config", {}), p if p.is_dir() else p.parent, cfg.get("metadata")
    )


def router_help(name: str) -> str:
    """What ``--router-options help`` prints: the router's abilities and each option."""
    cls = router_class(name)
    declared = {
        "trains": cls.trains,
        "fits_table": cls.fits_table,
        "needs_table": cls.needs_table,
        "scores_embeddings": cls.scores_embeddings,
        "predicts_models": cls.predicts_models,
    }
    flags = [f for f, on in declared.items() if on]
    lines = [f"router '{name}' ({', '.join(flags) or 'train-free'}); options:"]
    lines += [f"  {line}" for line in describe_options(cls.Options)] or ["  (none)"]
    return "\n".join(lines)


__all__ = [
    "DEFAULT_ROUTER",
    "REGISTRY",
    "FitReport",
    "Router",
    "RouterMetadata",
    "RouterOptions",
    "Validation",
    "load_router",
    "make_router",
    "router_class",
    "router_help",
]
