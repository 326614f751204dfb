"""The exact graders as a scorer agree with the graders themselves."""

from __future__ import annotations

from firewall_routing.sampling.graders import grade, quality_triviaqa_f1
from firewall_routing.sampling.scorers import ScoreJob, make_scorer, scorer_help


def test_exact_scorer_is_the_graders() -> None:
    jobs = [
        ScoreJob("a", "p", "so 18.", "#### 18", "gsm8k"),
        ScoreJob("b", "p", "so 17.", "#### 18", "gsm8k"),
        ScoreJob("c", "p", "David Seville", "Seville", "triviaqa-em"),
        ScoreJob("d", "p", " Seville", "Seville", "triviaqa-em"),
    ]
    scores = make_scorer("exact").score_many(jobs)
    assert [s.passed for s in scores] == [grade(j.grader, j.completion, j.reference or "") for j in jobs]
    assert [s.passed for s in scores] == [True, False, False, True]
    assert scores[0].quality == 1.0 and scores[1].quality == 0.0  # 0/1 where the grader has no quality
    assert scores[2].quality == quality_triviaqa_f1("David Seville", "Seville")  # token F1 = 2/3


def test_scorer_list_names_every_scorer_and_its_flags() -> None:
    text = scorer_help()
    for name in ("exact", "reference", "judge", "reward", "bartscore"):
        assert f"\n{name} (" in f"\n{text}"
    assert "judge (calls_model)" in text and "mode:" in text
