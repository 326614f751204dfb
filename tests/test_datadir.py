"""One data-folder rule for every command (sample's datasets, reproduce's RouterDC tables)."""

from __future__ import annotations

from pathlib import Path

import pytest

from firewall_routing import datadir
from firewall_routing.datadir import find_data_dir
from firewall_routing.errors import InputError


def test_explicit_folder_without_the_required_subfolder_is_an_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """It used to be skipped silently by reproduce, which then read the repository's data."""
    monkeypatch.setenv("FIREWALL_ROUTING_DATA", str(tmp_path))
    assert find_data_dir() == tmp_path
    with pytest.raises(InputError, match="has no routerdc/ folder"):
        find_data_dir("routerdc")
    (tmp_path / "routerdc").mkdir()
    assert find_data_dir("routerdc") == tmp_path


def test_fallback_skips_a_data_folder_without_the_required_subfolder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("FIREWALL_ROUTING_DATA", raising=False)
    monkeypatch.setattr(datadir, "__file__", str(tmp_path / "site" / "fr" / "datadir.py"))
    monkeypatch.chdir(tmp_path)
    (tmp_path / "data" / "gsm8k").mkdir(parents=True)
    assert find_data_dir("gsm8k") == tmp_path / "data"
    with pytest.raises(InputError, match=r"cannot find the data folder \(a folder with routerdc/\)"):
        find_data_dir("routerdc")


def test_reproduce_and_sample_use_the_same_rule(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from firewall_routing.sampling.datasets import data_dir, default_data_dir

    monkeypatch.setenv("FIREWALL_ROUTING_DATA", str(tmp_path / "missing"))
    for finder in (default_data_dir, data_dir):
        with pytest.raises(InputError, match="FIREWALL_ROUTING_DATA is not a directory"):
            finder()
