"""The scorer contract: (prompt, completion, reference | None) → quality in [0, 1] or missing.

Why one contract: the exact graders (GSM8K numbers, TriviaQA strings, code tests) and the
scorers for traffic without an answer key (an LLM judge, a reward model, similarity to a
reference answer) all end in the same two numbers per sample — a real-valued quality for
Hybrid LLM's r_det / r_prob / r_trans and a pass/fail at a stated threshold for every other
label design — so ``sample`` has one path from completions to outcomes.

``None`` means *missing* (a judge that never gave a parseable verdict, an upstream that is
down): it is never turned into 0, because a silent 0 would teach the router that the model
failed. Missing samples are left out of the table's rows (``run.py`` says how many).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Literal, get_args, get_origin

from pydantic import BaseModel, ConfigDict, Field

from firewall_routing.errors import InputError

ReferenceSource = Literal["dataset", "strong-greedy"]


@dataclass(frozen=True)
class ScoreJob:
    """One completion to score. ``reference`` is None where the scorer needs none."""

    item_id: str
    prompt: str
    completion: str
    reference: str | None
    grader: str = ""
    """The item's exact grader (only the ``exact`` scorer reads it)."""

    def key(self) -> str:
        """sha256 of what the verdict depends on besides the scorer (the cache's row key)."""
        blob = json.dumps([self.prompt, self.completion, self.reference, self.grader], ensure_ascii=False)
        return hashlib.sha256(blob.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class Score:
    """A verdict: ``quality`` in [0, 1] or None (missing); ``passed`` at the scorer's threshold.

    ``final`` is False for a failure worth retrying later (upstream down): such a score is
    not cached, so a rerun asks again. A never-parsed judge answer is final and missing.
    ``tokens_in``/``tokens_out``/``calls`` count what a model-calling scorer spent on it.
    """

    quality: float | None
    passed: bool | None
    final: bool = True
    tokens_in: int = 0
    tokens_out: int = 0
    calls: int = 0


ProgressFn = Callable[[int], None]


class Scorer(BaseModel):
    """Base class: options are the pydantic fields; subclasses set the class variables and
    implement :meth:`score_many` (batched: reference and reward models embed in batches, a
    judge keeps several requests in flight).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: ClassVar[str] = ""
    summary: ClassVar[str] = ""
    calls_model: ClassVar[bool] = False
    """True when scoring runs a model (an LLM upstream or local weights): results are cached."""
    needs_reference: ClassVar[bool] = False
    version: ClassVar[str] = "1"
    """Bumped when the scorer's computation changes, so cached verdicts are not reused."""

    threshold: float = Field(default=0.5, ge=0.0, le=1.0, description="quality ≥ threshold counts as a pass.")
    reference_from: ReferenceSource = Field(
        default="dataset",
        description="Where the reference answer comes from: the item's (dataset) or the strong "
        "model's greedy answer (strong-greedy). Ignored by scorers that need none.",
    )

    def cache_key(self) -> str:
        """Scorer name, version and every option that changes a verdict (not the threshold:
        the pass is recomputed from the cached quality)."""
        opts = self.model_dump(mode="json", exclude={"threshold"} | self.uncached_fields())
        return f"{self.name}/v{self.version}:" + json.dumps(opts, sort_keys=True, separators=(",", ":"))

    def uncached_fields(self) -> set[str]:
        """Options that do not change a verdict (concurrency, prices, timeouts)."""
        return set()

    def wants_reference(self) -> bool:
        """Whether these options need a reference answer (a pointwise judge needs none)."""
        return self.needs_reference

    def passed(self, quality: float | None) -> bool | None:
        return None if quality is None else quality >= self.threshold

    def score_many(self, jobs: Sequence[ScoreJob], progress: ProgressFn | None = None) -> list[Score]:
        """One :class:`Score` per job, in order; ``progress(k)`` after every k finished."""
        raise NotImplementedError

    def cost(self, tokens_in: int, tokens_out: int) -> float:
        """What the tokens cost (model-calling upstream scorers override; 0 for local ones)."""
        return 0.0

    @classmethod
    def describe(cls) -> list[str]:
        """One line per option (``name: type = default  description``) for ``scorers``."""
        lines = []
        for key, f in cls.model_fields.items():
            choices = get_args(f.annotation) if get_origin(f.annotation) is Literal else ()
            ann = (
                "|".join(map(str, choices))
                if choices
                else getattr(f.annotation, "__name__", None) or str(f.annotation).replace("typing.", "")
            )
            default = (
                "required"
                if f.is_required()
                else json.dumps(f.get_default(call_default_factory=True), default=str)
            )
            lines.append(f"{key}: {ann} = {default}  {f.description or ''}".rstrip())
        return lines


def clip01(x: float) -> float:
    """Clamp to [0, 1] (cosines can be slightly negative, float error can exceed 1)."""
    return min(1.0, max(0.0, float(x)))


def dump_options(options: dict[str, Any]) -> str:
    return json.dumps(options, sort_keys=True)


def load_transformers(model: str, auto_class: str, what: str) -> tuple[Any, Any]:
    """A local checkpoint's (tokenizer, model in eval mode) on one CPU thread, for the scorers
    that run a user's model; a path transformers cannot load is one line naming the option.
    transformers and torch are imported here, on first use, never at import time."""
    import torch
    import transformers

    torch.set_num_threads(1)
    try:
        tok = transformers.AutoTokenizer.from_pretrained(model)
        mdl = getattr(transformers, auto_class).from_pretrained(model).eval()
    except (OSError, ValueError) as e:
        raise InputError(
            f"cannot load {what}: {str(e).splitlines()[0]}", field="scorer_options.model"
        ) from None
    return tok, mdl
