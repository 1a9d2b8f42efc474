"""Shared by the config tests: a minimal valid site and loading a config text from a file."""

from __future__ import annotations

from pathlib import Path

import pytest

from controller.config import load_config
from controller.errors import ConfigError

MINIMAL = """
[site]
poi_limit_kw = 30000
[[pools]]
name = "c01"
driver = "mqtt"
max_kw = 3000
efficiency_j_per_th = 21.5
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "c.toml"
    path.write_text(text)
    return path


def problems_of(tmp_path: Path, text: str, env: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, text), environ=env or {})
    return info.value.problems
