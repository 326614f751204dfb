"""Router registry: name → implementation, imported lazily so the CLI starts instantly."""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

from firewall_routing.errors import InputError
from firewall_routing.routers.base import FitReport, Router, Validation, read_config

REGISTRY: dict[str, str] = {
    "embedding-head": "firewall_routing.routers.embedding_head:EmbeddingHeadRouter",
    "random": "firewall_routing.routers.random:RandomRouter",
    "oracle": "firewall_routing.routers.oracle:OracleRouter",
    "encoder": "firewall_routing.routers.encoder:EncoderRouter",
    "causal-lm": "firewall_routing.routers.encoder:CausalLMRouter",
    "mf": "firewall_routing.routers.mf:MFRouter",
    "margin": "firewall_routing.routers.margin:MarginRouter",
    "ridge": "firewall_routing.routers.ridge:RidgeRouter",
}
"""Router name → ``module:Class``. Add a router by adding a file and a line here."""


def router_class(name: str) -> type[Router]:
    if name not in REGISTRY:
        raise InputError(f"unknown router '{name}'; available: {', '.join(REGISTRY)}", field="router")
    module, cls = REGISTRY[name].split(":")
    found: type[Router] = getattr(importlib.import_module(module), cls)
    return found


def make_router(name: str, **options: Any) -> Router:
    """Construct a router by name; unknown option names are a user error, not a TypeError."""
    import inspect

    cls = router_class(name)
    params = inspect.signature(cls.__init__).parameters
    if not any(p.kind is p.VAR_KEYWORD for p in params.values()):
        allowed = [p for p in params if p != "self"]
        unknown = sorted(set(options) - set(allowed))
        if unknown:
            raise InputError(
                f"router '{name}' has no option(s) {', '.join(unknown)}; "
                f"its options: {', '.join(allowed) or 'none'}",
                field="router options",
            )
    return cls(**options)


def load_router(path: str | Path) -> Router:
    """Load a router saved with ``Router.save`` (a directory holding ``router.json``)."""
    cfg = read_config(path)
    p = Path(path)
    return router_class(cfg["router"]).from_config(cfg.get("config", {}), p if p.is_dir() else p.parent)


__all__ = ["REGISTRY", "FitReport", "Router", "Validation", "load_router", "make_router", "router_class"]
