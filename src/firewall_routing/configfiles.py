"""Reading a YAML or TOML settings file into a mapping: shared by ``sample`` and ``serve``.

Only the reading lives here (suffix check, decoding, parsing, "is it a mapping"); each
command validates the mapping with its own pydantic model, so the same file errors read
the same way whichever command opened the file.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from firewall_routing.errors import InputError

SUFFIXES = (".toml", ".yaml", ".yml")


def read_mapping(path: str | Path) -> dict[str, Any]:
    """The file's top-level mapping; any problem is an InputError naming the file (and the
    line, for YAML syntax errors), never a traceback."""
    p = Path(path)
    suffix = p.suffix.lower()
    if suffix not in SUFFIXES:
        raise InputError(f"config must be .yaml, .yml or .toml, got '{suffix}'", path=p)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError("config file not found", path=p) from None
    except (OSError, UnicodeDecodeError) as e:
        raise InputError(f"cannot read config: {e}", path=p) from None
    data = _parse_toml(text, p) if suffix == ".toml" else _parse_yaml(text, p)
    if not isinstance(data, dict):
        raise InputError("config must be a mapping of settings", path=p)
    return data


def _parse_toml(text: str, path: Path) -> Any:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise InputError(f"invalid TOML, cannot parse: {e}", path=path) from None


def _parse_yaml(text: str, path: Path) -> Any:
    import yaml

    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        row = mark.line + 1 if mark is not None else None
        problem = getattr(e, "problem", None) or e
        raise InputError(f"invalid YAML, cannot parse: {problem}", path=path, row=row) from None
