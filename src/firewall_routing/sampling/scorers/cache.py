"""Scoring through the sample store's ``scores`` table: resumable, and never pays twice.

A verdict is cached under (scorer name + version + options, sha256 of prompt, completion
and reference) as soon as its chunk is scored, so a run killed mid-way keeps every chunk it
finished, and a rerun (or a second table from the same samples) asks only for the rest.
Non-final scores (the judge upstream was down) are not cached. The exact graders are cheap
and deterministic and skip the cache.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from firewall_routing.sampling.scorers.base import Score, ScoreJob, Scorer
from firewall_routing.sampling.store import SampleStore

CHUNK = 64
"""Jobs scored between cache commits (what a kill can lose at most)."""


@dataclass
class ScoreStats:
    """What scoring did: for the summary line (judge calls, tokens, cost)."""

    scorer: str = ""
    jobs: int = 0
    cached: int = 0
    scored: int = 0
    missing: int = 0
    unscored: int = 0
    calls: int = 0
    tokens_in: int = 0
    tokens_out: int = 0
    cost: float = 0.0
    seconds: float = 0.0
    cached_calls: int = field(default=0)

    def line(self) -> str:
        s = (
            f"scored {self.jobs} completions with {self.scorer}: {self.cached} from the cache, "
            f"{self.scored} new in {self.seconds:.1f}s"
        )
        if self.calls or self.tokens_in:
            s += f"; {self.calls} judge calls, {self.tokens_in} prompt + {self.tokens_out} completion tokens, ${self.cost:.4f}"
        if self.missing:
            s += f"; {self.missing} missing (never parsed)"
        if self.unscored:
            s += f"; {self.unscored} NOT scored (upstream failing): rerun to retry"
        return s


def score_cached(
    scorer: Scorer,
    jobs: Sequence[ScoreJob],
    store: SampleStore | None,
    *,
    progress: bool = True,
    chunk: int = CHUNK,
) -> tuple[list[Score], ScoreStats]:
    """Every job's score, from the cache where it is there (see the module docstring)."""
    import time

    from tqdm import tqdm

    start = time.monotonic()
    stats = ScoreStats(scorer=scorer.name, jobs=len(jobs))
    key = scorer.cache_key()
    use_cache = store is not None and scorer.calls_model
    out: list[Score | None] = [None] * len(jobs)
    todo: list[int] = []
    if use_cache:
        assert store is not None
        have = store.get_scores(key, (j.key() for j in jobs))
        for i, j in enumerate(jobs):
            hit = have.get(j.key())
            if hit is None:
                todo.append(i)
            else:
                out[i] = Score(hit[0], scorer.passed(hit[0]))
                stats.cached += 1
    else:
        todo = list(range(len(jobs)))
    # Unique jobs only: the same completion twice (greedy twins, repeated samples) is paid once.
    uniq: dict[str, int] = {}
    for i in todo:
        uniq.setdefault(jobs[i].key(), i)
    order = list(uniq.values())
    bar = tqdm(
        total=len(order),
        unit="score",
        desc=f"scoring ({scorer.name})",
        disable=not progress or not order,
        dynamic_ncols=True,
        mininterval=1.0,
    )
    done: dict[str, Score] = {}
    try:
        for c in range(0, len(order), chunk):
            part = [jobs[i] for i in order[c : c + chunk]]
            scores = scorer.score_many(part, bar.update)
            for j, s in zip(part, scores, strict=True):
                done[j.key()] = s
                stats.calls += s.calls
                stats.tokens_in += s.tokens_in
                stats.tokens_out += s.tokens_out
                if use_cache and s.final:
                    assert store is not None
                    store.put_score(key, j.key(), s.quality, s.tokens_in, s.tokens_out, s.calls)
            if use_cache:
                assert store is not None
                store.flush()
    finally:
        bar.close()
    for i in todo:
        out[i] = done[jobs[i].key()]
    stats.scored = len(order)
    final = [s for s in out if s is not None]
    stats.missing = sum(1 for s in final if s.quality is None and s.final)
    stats.unscored = sum(1 for s in final if not s.final)
    stats.cost = scorer.cost(stats.tokens_in, stats.tokens_out)
    stats.seconds = time.monotonic() - start
    return final, stats
