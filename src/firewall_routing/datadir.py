"""Where the shipped data lives (``data/``: RouterDC tables, GSM8K, TriviaQA, ...).

One rule for every command: ``$FIREWALL_ROUTING_DATA`` wins, and then it must exist (a
wrong explicit setting is an error, not a reason to silently read other data); else the
repository's ``data/`` (found from this file in an editable install); else ``./data``.
"""

from __future__ import annotations

import os
from pathlib import Path

from firewall_routing.errors import InputError

DATA_ENV = "FIREWALL_ROUTING_DATA"


def find_data_dir(require: str | None = None) -> Path:
    """The data folder; with ``require``, one holding that subfolder (e.g. ``routerdc``)."""
    env = os.environ.get(DATA_ENV)
    if env:
        path = Path(env).expanduser()
        if not path.is_dir():
            raise InputError(f"${DATA_ENV} is not a directory", path=path)
        if require is not None and not (path / require).is_dir():
            raise InputError(f"${DATA_ENV} has no {require}/ folder", path=path)
        return path
    for path in (Path(__file__).resolve().parents[2] / "data", Path.cwd() / "data"):
        if path.is_dir() and (require is None or (path / require).is_dir()):
            return path
    holding = f" (a folder with {require}/)" if require else ""
    raise InputError(
        f"cannot find the data folder{holding}: set ${DATA_ENV} to the repository's data/ folder "
        "or run from the repository root"
    )
