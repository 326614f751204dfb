"""The TriviaQA section (issue 14, item 5) on a small table in the sampled table's format."""

from __future__ import annotations

from pathlib import Path

import pytest

from firewall_routing.experiment.triviaqa import (
    PAPER_TRIVIAQA,
    TEST_ROWS,
    find_table,
    run_triviaqa,
    triviaqa_json,
    triviaqa_markdown,
)
from firewall_routing.labels import DESIGNS

from ..conftest import ToyEncoder
from .triviaqa_table import write_triviaqa_table


def test_find_table(tmp_path: Path) -> None:
    assert find_table(tmp_path) is None
    p = write_triviaqa_table(tmp_path / "local" / "triviaqa-a-vs-b.jsonl", n=320)
    (tmp_path / "local" / "gsm8k-x-vs-y.jsonl").write_text("")
    assert find_table(tmp_path) == p


def test_section_every_design_split_and_paper_column(tmp_path: Path) -> None:
    p = write_triviaqa_table(tmp_path / "local" / "triviaqa-a-vs-b.jsonl", n=340)
    res = run_triviaqa(p, list(DESIGNS), ["random", "oracle"], router="random", n_boot=50)
    assert (res.n_train, res.n_test) == (340 - TEST_ROWS, TEST_ROWS)
    assert [r.name for r in res.rows] == [*DESIGNS, "random", "oracle"]
    # F1 quality makes r_prob and r_trans differ from soft-block (no "same labels" mark)
    assert res.row("hybrid-prob").same_as is None and res.row("hybrid-trans").same_as is None
    assert res.row("hybrid-trans").uses_quality and res.t_star is not None
    # pass rates from exact match (correctness given), not from the F1 threshold
    assert not any("pass rate from quality" in n for n in res.notes)
    md = triviaqa_markdown(res, p)
    assert "TriviaQA (our sampled table: `triviaqa-a-vs-b.jsonl`)" in md
    assert f"{PAPER_TRIVIAQA['soft-block'][0]:.2f}" in md and "quality drop" in md
    js = triviaqa_json(res, p)
    assert js["split"] == f"last {TEST_ROWS} rows = test" and len(js["rows"]) == len(res.rows)
    assert js["rows"][0]["apgr_ci"][0] <= js["rows"][0]["apgr"] <= js["rows"][0]["apgr_ci"][1]


def _data_dir(tmp_path: Path, with_table: bool) -> Path:
    from ..conftest import DATA

    d = tmp_path / "data"
    d.mkdir()
    (d / "routerdc").symlink_to(DATA / "routerdc")
    if with_table:
        write_triviaqa_table(d / "local" / "triviaqa-weak-vs-strong.jsonl", n=340)
    return d


def test_reproduce_has_the_triviaqa_section(tmp_path: Path, toy_encoder: ToyEncoder) -> None:
    import json

    from firewall_routing.experiment.config import ExperimentConfig
    from firewall_routing.experiment.run import run

    cfg = ExperimentConfig(
        router="ridge",
        router_options={"encoder": "toy", "prior": "none"},
        designs="soft-block,hybrid-prob,hybrid-trans",
        datasets=["humaneval"],
        baselines=["random", "oracle"],
        seeds=1,
        n_boot=20,
        plots=False,
        data_dir=_data_dir(tmp_path, with_table=True),
    )
    out = run(cfg, tmp_path / "out")
    report = (out / "report.md").read_text()
    assert "## TriviaQA (our sampled table)" in report
    assert "triviaqa-weak-vs-strong.jsonl" in report and "Hybrid LLM r_trans ‡" in report
    tq = json.loads((out / "results.json").read_text())["triviaqa"]
    assert (tq["n_train"], tq["n_test"]) == (40, TEST_ROWS)
    assert [r["router"] for r in tq["rows"]] == [
        "soft-block",
        "hybrid-prob",
        "hybrid-trans",
        "random",
        "oracle",
    ]
    assert tq["t_star"] is not None and tq["rows"][2]["labels_on_f1"]


def test_reproduce_without_table_skips_the_section(
    tmp_path: Path, toy_encoder: ToyEncoder, capsys: pytest.CaptureFixture[str]
) -> None:
    import json

    from firewall_routing.experiment.config import ExperimentConfig
    from firewall_routing.experiment.run import run

    cfg = ExperimentConfig(
        router="ridge",
        router_options={"encoder": "toy", "prior": "none"},
        designs="soft-block",
        datasets=["humaneval"],
        baselines=["random"],
        seeds=1,
        n_boot=0,
        plots=False,
        data_dir=_data_dir(tmp_path, with_table=False),
    )
    out = run(cfg, tmp_path / "out")
    assert "TriviaQA section skipped" in capsys.readouterr().out
    assert "## TriviaQA" not in (out / "report.md").read_text()
    assert "triviaqa" not in json.loads((out / "results.json").read_text())


def test_every_router_in_results_json_is_in_every_table_it_feeds(
    tmp_path: Path, toy_encoder: ToyEncoder
) -> None:
    """Issue 25: the README's TriviaQA table left out the designs that beat Soft Block. Every
    router of results.json has a row in Table 1, Table 3 and the TriviaQA table of report.md,
    and each of those tables says which router won and whether that is significant."""
    import json

    from firewall_routing.experiment.config import ExperimentConfig
    from firewall_routing.experiment.report import title
    from firewall_routing.experiment.run import run
    from firewall_routing.labels import DESIGN_TITLES

    cfg = ExperimentConfig(
        router="ridge",
        router_options={"encoder": "toy", "prior": "none"},
        datasets=["humaneval"],
        baselines=["random", "oracle"],
        seeds=1,
        n_boot=20,
        plots=False,
        data_dir=_data_dir(tmp_path, with_table=True),
    )
    out = run(cfg, tmp_path / "out")
    md = (out / "report.md").read_text()
    js = json.loads((out / "results.json").read_text())
    names = {r["router"] for r in js["results"]}
    assert set(DESIGNS) <= names
    for section in ("## Table 1", "## Table 3"):
        table = md.split(section, 1)[1].split("\n## ", 1)[0]
        missing = [n for n in names if f"| {title(n)} |" not in table]
        assert missing == [], f"{section} lacks {missing}"
        assert "highest APGR **" in table and ("beats random at 95 %" in table or "not significant" in table)
    tq_md = md.split("## TriviaQA (our sampled table)", 1)[1]
    tq_names = [r["router"] for r in js["triviaqa"]["rows"]]
    assert set(DESIGNS) <= set(tq_names)
    for n in tq_names:
        assert f"| {DESIGN_TITLES.get(n, n)}" in tq_md, n
    assert "highest APGR **" in tq_md
    assert js["triviaqa"]["comparisons"]["differences"], "the TriviaQA verdict is in results.json too"
