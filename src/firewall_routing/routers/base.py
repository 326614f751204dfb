"""The one Router interface (DESIGN.md §4).

A router maps prompts to scores in [0, 1]; higher = the weak model is enough. Everything
that consumes routers (metrics, calibration, the server) uses only this interface.

The contract is explicit so nothing has to be discovered by reflection: a router declares
its options once (``Options``, a frozen pydantic model: validation, defaults, help text and
the saved config all come from it) and what it can do as class flags (``trains``,
``fits_table``, ``needs_table``, ``scores_embeddings``). What it was trained on (label
design, model pair, a hash of the training data) is :class:`RouterMetadata`, passed to
``save`` and written beside the options in ``router.json``.

``score_table`` exists for routers that read the outcome table rather than the prompt
(``oracle`` knows the outcomes, ``margin`` reads the weak model's logprob margin); prompt-only
routers inherit the default, which scores the prompts.

Routers that learn every model at once (``predicts_models``) train on a success matrix —
rows × models, NaN where a model has no outcome — with ``fit_models`` and predict it with
``predict_models``. Such a router also routes any pair of its models: its pair score is a
label design computed from its predicted success of the two (:func:`pair_scores`,
``labels.PAIR_FORMS``), so the two-model harness uses it unchanged.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from firewall_routing.designs import DesignName
from firewall_routing.embeddings import get_encoder
from firewall_routing.errors import InputError, validation_problems
from firewall_routing.labels import pair_label
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


@dataclass(frozen=True)
class ModelValidation:
    """Held-out prompts with every model's success (rows × models, NaN = missing), for
    ``fit_models`` routers that pick an epoch or a penalty on held-out rows."""

    prompts: Sequence[str]
    success: FloatArray


@dataclass
class FitReport:
    """What training did: per-epoch losses and validation APGR, and the epoch kept."""

    epochs: list[dict[str, float]] = field(default_factory=list)
    best_epoch: int | None = None
    best_val_apgr: float | None = None
    seconds: float = 0.0


class RouterOptions(BaseModel):
    """Base of every router's ``Options``: frozen, and unknown names are an error.

    A router declares each option once, as a field here (type, default and
    ``Field(description=...)``); validation, defaults, the ``--router-options`` help and the
    saved ``config`` all derive from it.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)


class RouterMetadata(BaseModel):
    """What a saved router was trained on: not options (they do not change how it scores),
    but what a reader of ``router.json`` needs to know which pair and labels it encodes."""

    model_config = ConfigDict(extra="allow", frozen=True)

    label_design: str | None = None
    weak: str | None = None
    strong: str | None = None
    model_names: tuple[str, ...] | None = Field(
        default=None, description="models whose success a predicts_models router predicts, in column order"
    )
    train_rows: int | None = None
    train_sha256: str | None = Field(default=None, description="sha256 of the training prompts + labels")

    @classmethod
    def for_training(
        cls,
        prompts: Sequence[str],
        labels: FloatArray,
        *,
        label_design: str | None,
        weak: str | None,
        strong: str | None,
    ) -> RouterMetadata:
        return cls(
            label_design=label_design,
            weak=weak,
            strong=strong,
            train_rows=len(prompts),
            train_sha256=training_hash(prompts, labels),
        )


def training_hash(prompts: Sequence[str], labels: FloatArray) -> str:
    """sha256 of the prompts and labels (floats by ``repr``), so two routers' training data
    can be compared without shipping it."""
    import hashlib

    data = json.dumps([list(prompts), [repr(float(x)) for x in np.asarray(labels).reshape(-1)]])
    return hashlib.sha256(data.encode()).hexdigest()


def parse_options(name: str, options_cls: type[RouterOptions], raw: dict[str, Any]) -> Any:
    """Validate ``raw`` against a router's ``Options``; any problem is one InputError line
    that names the router's valid options."""
    try:
        return options_cls.model_validate(raw)
    except ValidationError as e:
        problems = [
            f"{where or 'options'}: {msg}"
            for where, msg in validation_problems(e, missing="Field required", extra="unknown option")
        ]
        valid = ", ".join(options_cls.model_fields) or "none"
        raise InputError(
            f"router '{name}': {'; '.join(problems)} (valid options: {valid})", field="router options"
        ) from None


def _type_name(ann: Any) -> str:
    """``int``, ``str | None``, ``"drop" | "half"``: option types as a user reads them."""
    import types
    import typing

    if ann is type(None):
        return "null"
    if isinstance(ann, type):
        return ann.__name__
    origin, args = typing.get_origin(ann), typing.get_args(ann)
    if origin is typing.Literal:
        return " | ".join(json.dumps(a) for a in args)
    if origin in (typing.Union, types.UnionType):
        return " | ".join(_type_name(a) for a in args)
    return str(ann).replace("typing.", "")


def describe_options(options_cls: type[RouterOptions]) -> list[str]:
    """One line per option: ``name: type = default  description`` (for help and docs)."""
    lines = []
    for key, f in options_cls.model_fields.items():
        kind = _type_name(f.annotation)
        default = "required" if f.is_required() else json.dumps(f.get_default(call_default_factory=True))
        lines.append(f"{key}: {kind} = {default}  {f.description or ''}".rstrip())
    return lines


class Router(ABC):
    """Base class. A subclass sets ``name``, its ``Options`` model and its ability flags,
    and implements ``score`` (or ``score_table``); trainable ones implement ``fit``.

    Ability flags (read by the CLI, ``reproduce`` and the server instead of probing methods):

    * ``trains``: ``fit(prompts, labels)`` learns something (else it is a no-op).
    * ``fits_table``: ``fit_table(table)`` trains on the outcome table itself with the
      router's own target (e.g. ``mf`` on RouteLLM battles).
    * ``needs_table``: scores come from the outcome table (``score_table``), not from
      prompts; ``score`` raises (``oracle``, ``margin``).
    * ``predicts_models``: ``fit_models(prompts, success, models)`` learns every model's
      success at once from a rows × models matrix in [0, 1] (pass rates, greedy 0/1 or soft
      labels per model; NaN = no outcome, never a failure), and ``predict_models(prompts)``
      returns P(success) per model in ``model_names`` order. Its pair score (``score``
      after ``use_pair``) is a label design of the predicted success of two of the models.
    * ``scores_embeddings``: ``score_embeddings(emb, texts)`` scores the prompts ``texts``
      from their vectors ``emb`` of the sentence encoder named by ``encoder``, so
      ``reproduce`` embeds every prompt once up front and the server may compute the vectors
      with its own backend. Routers that read only the vectors ignore ``texts``; ``ridge``
      also reads the text (prompt features, solution prior).

    Seededness is declared by the options: a router whose ``Options`` has a ``seed`` field
    is :meth:`seeded` (``reproduce`` trains it once per seed); any other router is
    deterministic and trained once.
    """

    name: ClassVar[str]
    Options: ClassVar[type[RouterOptions]] = RouterOptions
    trains: ClassVar[bool] = False
    fits_table: ClassVar[bool] = False
    needs_table: ClassVar[bool] = False
    scores_embeddings: ClassVar[bool] = False
    predicts_models: ClassVar[bool] = False
    table_only: ClassVar[bool] = False
    """Learns only from an outcome table (``fit_table``, every model in it); ``fit(prompts,
    labels)`` is an error (``irt``). ``train`` then fits the table and routes the named pair."""

    options: RouterOptions
    metadata: RouterMetadata
    model_names: tuple[str, ...]
    """The columns ``predict_models`` returns (``predicts_models`` routers, set by
    ``fit_models``; saved in ``router.json``'s metadata)."""

    def __init__(self, **options: Any) -> None:
        self.options = parse_options(self.name, self.Options, options)
        self.metadata = RouterMetadata()
        self.model_names = ()

    @classmethod
    def seeded(cls) -> bool:
        """Whether results depend on a ``seed`` option (reproduce runs one router per seed)."""
        return "seed" in cls.Options.model_fields

    def fit(self, prompts: Sequence[str], labels: FloatArray, *, val: Validation | None = None) -> FitReport:
        """Train on soft labels in [0, 1]. Train-free routers keep this no-op."""
        return FitReport()

    def fit_table(self, table: OutcomeTable, *, val: Validation | None = None) -> FitReport:
        """Train on the outcome table with the router's own target (``fits_table`` routers)."""
        raise InputError(f"router '{self.name}' does not train on an outcome table")

    def fit_models(
        self,
        prompts: Sequence[str],
        success: FloatArray,
        models: Sequence[str],
        *,
        val: ModelValidation | None = None,
    ) -> FitReport:
        """Learn every model's success at once (``predicts_models`` routers).

        ``success`` is rows × ``len(models)`` in [0, 1], NaN where a model has no outcome on
        a row (skipped, never read as a failure); see :func:`check_success`. Sets
        ``model_names``.
        """
        raise InputError(f"router '{self.name}' does not learn every model's success (no fit_models)")

    def _fitted_models(self, prompts: Sequence[str], success: FloatArray, models: Sequence[str]) -> None:
        """What every ``fit_models`` records: the model order of the output columns and the
        training hash (no pair yet: ``use_pair`` picks one)."""
        self.model_names = tuple(models)
        self.metadata = RouterMetadata.for_training(
            prompts, success, label_design=None, weak=None, strong=None
        )

    def predict_models(self, prompts: Sequence[str]) -> FloatArray:
        """P(success) in [0, 1], rows × ``len(model_names)`` (``predicts_models`` routers)."""
        raise InputError(f"router '{self.name}' does not predict every model's success")

    def use_pair(self, weak: str, strong: str, design: DesignName) -> None:
        """Make ``score`` route ``weak`` vs ``strong`` by ``design``'s label of the predicted
        success (``predicts_models`` routers); recorded in the metadata, so it is saved."""
        if not self.predicts_models:
            raise InputError(f"router '{self.name}' scores one pair only; it cannot switch pairs")
        for m in (weak, strong):
            model_index(self.model_names, m)
        self.metadata = self.metadata.model_copy(
            update={"weak": weak, "strong": strong, "label_design": design}
        )

    def pair_scores(self, prompts: Sequence[str]) -> FloatArray:
        """The pair score of a ``predicts_models`` router: the metadata's label design of the
        predicted success of its weak and strong model (set by ``use_pair``)."""
        return pair_scores_from(self.predict_models(prompts), self.model_names, self.metadata)

    @abstractmethod
    def score(self, prompts: Sequence[str]) -> FloatArray:
        """Scores in [0, 1], one per prompt; higher = send to the weak model."""

    def score_table(self, table: OutcomeTable) -> FloatArray:
        """Scores for an outcome table's rows; ``needs_table`` routers override this."""
        return self.score(table.prompts)

    def score_embeddings(self, emb: FloatArray, texts: Sequence[str] | None = None) -> FloatArray:
        """Scores from sentence embeddings ``emb`` of ``encoder`` (``scores_embeddings``
        routers); ``texts`` are the prompts the rows embed (routers that need them raise
        without them)."""
        raise InputError(f"router '{self.name}' does not score embeddings")

    @property
    def encoder(self) -> str:
        """The sentence encoder ``score_embeddings`` expects (``scores_embeddings`` routers)."""
        raise InputError(f"router '{self.name}' does not use a sentence encoder")

    def embed(self, prompts: Sequence[str], progress: bool = False) -> FloatArray:
        """``encoder``'s vectors for ``prompts`` through the shared on-disk cache, so every
        router over the same encoder embeds a prompt once."""
        return get_encoder(self.encoder).encode(prompts, progress=progress)

    def trained_info(self) -> dict[str, Any]:
        """What training chose from the data rather than the options (e.g. ``ridge``'s
        feature groups): printed by ``train`` and saved in ``router.json``'s metadata."""
        return {}

    def config(self) -> dict[str, Any]:
        """The options as JSON (what ``router.json`` stores and ``load_router`` rebuilds from)."""
        out: dict[str, Any] = self.options.model_dump(mode="json")
        return out

    def save(self, path: str | Path, metadata: RouterMetadata | None = None) -> Path:
        """Write the router to directory ``path`` (``router.json`` + optional weights).

        ``metadata`` (label design, pair, training-data hash) replaces the router's own.
        """
        if metadata is not None:
            self.metadata = metadata
        if self.model_names:
            self.metadata = self.metadata.model_copy(update={"model_names": tuple(self.model_names)})
        if self.trained_info():
            self.metadata = RouterMetadata.model_validate(self.metadata.model_dump() | self.trained_info())
        p = Path(path)
        p.mkdir(parents=True, exist_ok=True)
        doc = {
            "router": self.name,
            "config": self.config(),
            "metadata": self.metadata.model_dump(mode="json"),
        }
        (p / CONFIG_FILE).write_text(json.dumps(doc, indent=2) + "\n")
        self._save_weights(p)
        return p

    def _save_weights(self, path: Path) -> None:  # noqa: B027 (optional hook, not abstract)
        """Subclasses with parameters write them here."""

    def _load_weights(self, path: Path) -> None:  # noqa: B027 (optional hook, not abstract)
        """Subclasses with parameters read what ``_save_weights`` wrote."""

    @classmethod
    def from_config(
        cls, config: dict[str, Any], path: Path | None = None, metadata: dict[str, Any] | None = None
    ) -> Router:
        """Rebuild a saved router. Files written before metadata existed kept
        ``label_design`` among the options: it moves to the metadata."""
        opts = dict(config)
        meta = dict(metadata or {})
        if "label_design" in opts and "label_design" not in cls.Options.model_fields:
            design = opts.pop("label_design")
            meta.setdefault("label_design", design)
        r = cls(**opts)
        r.metadata = RouterMetadata.model_validate(meta)
        r.model_names = tuple(r.metadata.model_names or ())
        if path is not None:
            r._load_weights(path)
        return r


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


def check_success(prompts: Sequence[str], success: FloatArray, models: Sequence[str]) -> FloatArray:
    """The success matrix of ``fit_models``: rows × models, each entry in [0, 1] or NaN
    (missing); model names distinct; every model observed on at least one row."""
    y = np.asarray(success, dtype=np.float64)
    if y.ndim != 2 or y.shape != (len(prompts), len(models)):
        raise ValueError(f"success has shape {y.shape}, expected ({len(prompts)}, {len(models)})")
    if len(prompts) == 0:
        raise InputError("no training examples")
    seen: set[str] = set()
    for m in models:
        if m in seen:
            raise InputError(f"model '{m}' is listed twice", field="models")
        seen.add(m)
    known = ~np.isnan(y)
    if ((y[known] < 0) | (y[known] > 1)).any() or np.isinf(y).any():
        raise InputError("success values must lie in [0, 1] (NaN = missing)")
    observed: list[bool] = np.any(known, axis=0).tolist()
    empty = [m for i, m in enumerate(models) if not observed[i]]
    if empty:
        raise InputError(f"model '{empty[0]}' has no outcome on any training row", field="models")
    return y


def model_index(names: Sequence[str], model: str) -> int:
    """Column of ``model`` in a ``predicts_models`` router's ``model_names``."""
    if model not in names:
        known = ", ".join(names) or "none (not trained)"
        raise InputError(f"the router has not learned model '{model}'; it knows: {known}", field="model")
    return list(names).index(model)


def pair_scores_from(pred: FloatArray, names: Sequence[str], metadata: RouterMetadata) -> FloatArray:
    """``metadata``'s label design of the predicted success of its weak and strong model."""
    if metadata.weak is None or metadata.strong is None:
        raise InputError(
            "the router predicts every model: name the pair to route (use_pair / --weak --strong)"
        )
    from firewall_routing.designs import as_design

    design = as_design(metadata.label_design or "soft-block")
    i, j = model_index(names, metadata.weak), model_index(names, metadata.strong)
    return pair_label(design, pred[:, i], pred[:, j])


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


def check_router_out(out: Path, force: bool, option: str = "--out") -> None:
    """A directory a router can be saved into: new, or (with ``force``) an earlier router.

    Saving over an existing router replaced router.json but kept the old weights and
    calibration (a mixed directory); an existing file or a non-router directory would be
    clobbered. ``replace_dir`` does the replacing.
    """
    from firewall_routing.files import check_writable_dir

    if out.exists() and not out.is_dir():
        if not force:
            raise InputError(f"is a file; pass --force to replace it, or choose another {option}", path=out)
    elif out.is_dir() and any(out.iterdir()):
        if not (out / CONFIG_FILE).is_file():
            raise InputError(
                f"is a directory that holds no saved router ({CONFIG_FILE}): choose another {option}",
                path=out,
            )
        if not force:
            raise InputError(
                f"already holds a router; pass --force to replace it (weights, calibration and all) "
                f"or choose another {option}",
                path=out,
            )
    check_writable_dir(out.parent, option)
