"""The one Router interface (DESIGN.md §4).

A router maps prompts to scores in [0, 1]; higher = the weak model is enough. Everything
that consumes routers (metrics, calibration, the server) uses only this interface.

``score_table`` exists for routers that read the outcome table rather than the prompt
(``oracle`` knows the outcomes, ``margin`` reads the weak model's logprob margin); prompt-only
routers inherit the default, which scores the prompts.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from firewall_routing.errors import InputError
from firewall_routing.outcomes import FloatArray, OutcomeTable

CONFIG_FILE = "router.json"


@dataclass(frozen=True)
class Validation:
    """Held-out prompts with their outcomes, so training can pick the best epoch by APGR."""

    prompts: Sequence[str]
    pr_w: FloatArray
    pr_s: FloatArray

    @classmethod
    def from_table(cls, table: OutcomeTable) -> Validation:
        return cls(table.prompts, table.weak.pass_rate, table.strong.pass_rate)


@dataclass
class FitReport:
    """What training did: per-epoch losses and validation APGR, and the epoch kept."""

    epochs: list[dict[str, float]] = field(default_factory=list)
    best_epoch: int | None = None
    best_val_apgr: float | None = None
    seconds: float = 0.0


class Router(ABC):
    """Base class: subclasses set ``name`` and implement score/config; trainable ones fit."""

    name: ClassVar[str]

    def fit(self, prompts: Sequence[str], labels: FloatArray, *, val: Validation | None = None) -> FitReport:
        """Train on soft labels in [0, 1]. Train-free routers keep this no-op."""
        return FitReport()

    @abstractmethod
    def score(self, prompts: Sequence[str]) -> FloatArray:
        """Scores in [0, 1], one per prompt; higher = send to the weak model."""

    def score_table(self, table: OutcomeTable) -> FloatArray:
        return self.score(table.prompts)

    def config(self) -> dict[str, Any]:
        """JSON-serialisable constructor arguments plus anything needed to reload."""
        return {}

    def save(self, path: str | Path) -> Path:
        """Write the router to directory ``path`` (``router.json`` + optional weights)."""
        p = Path(path)
        p.mkdir(parents=True, exist_ok=True)
        (p / CONFIG_FILE).write_text(
            json.dumps({"router": self.name, "config": self.config()}, indent=2) + "\n"
        )
        self._save_weights(p)
        return p

    def _save_weights(self, path: Path) -> None:  # noqa: B027 (optional hook, not abstract)
        """Subclasses with parameters write them here."""

    @classmethod
    def from_config(cls, config: dict[str, Any], path: Path | None = None) -> Router:
        return cls(**config)


def check_labels(prompts: Sequence[str], labels: FloatArray) -> FloatArray:
    """Soft labels must be finite and in [0, 1]; BCE would silently accept nonsense otherwise."""
    y = np.asarray(labels, dtype=np.float64)
    if len(prompts) != len(y):
        raise ValueError(f"{len(prompts)} prompts but {len(y)} labels")
    if len(y) == 0:
        raise InputError("no training examples")
    if np.isnan(y).any() or (y < 0).any() or (y > 1).any():
        raise InputError("labels must lie in [0, 1]")
    return y


def read_config(path: str | Path) -> dict[str, Any]:
    p = Path(path)
    cfg_path = p / CONFIG_FILE if p.is_dir() else p
    if not cfg_path.exists():
        raise InputError(f"not a saved router: no {CONFIG_FILE}", path=p)
    try:
        cfg = json.loads(cfg_path.read_text())
    except json.JSONDecodeError as e:
        raise InputError(f"invalid JSON: {e.msg}", path=cfg_path, row=e.lineno) from None
    if not isinstance(cfg, dict) or "router" not in cfg:
        raise InputError("missing 'router' name", path=cfg_path, field="router")
    return cfg


def unit_hash(texts: Sequence[str], salt: str) -> FloatArray:
    """A deterministic uniform [0, 1) number per text (content hash), independent of order."""
    import hashlib

    out = np.empty(len(texts))
    for i, t in enumerate(texts):
        h = hashlib.blake2b(f"{salt}\0{t}".encode(), digest_size=8).digest()
        out[i] = int.from_bytes(h, "big") / 2.0**64
    return out
