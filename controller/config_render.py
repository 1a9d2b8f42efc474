"""Render the effective config as TOML with secrets redacted (`curtaild check-config`)."""

from __future__ import annotations

import json
from typing import Any

from controller.config_model import Config
from controller.config_secrets import SECRETS

REDACTED = "<redacted>"


def redacted(config: Config) -> dict[str, Any]:
    """The config as plain data, every secret shown only as set (REDACTED) or not ("")."""
    data = config.model_dump(mode="python")
    for section, key in SECRETS:
        # Some secrets are excluded from dumps (a dump must render back into a loadable file):
        # read them from the model, never from the dump.
        secret = getattr(getattr(config, section), key)
        data[section][key] = REDACTED if secret is not None and secret.get_secret_value() else ""
    return data


def render_toml(data: dict[str, Any]) -> str:
    lines: list[str] = []
    for section, value in data.items():
        if isinstance(value, dict):
            lines.append(f"[{section}]")
            tables = {k: v for k, v in value.items() if _is_table_list(v)}
            lines += [f"{k} = {_scalar(v)}" for k, v in value.items() if k not in tables]
            lines.append("")
            for key, items in tables.items():  # e.g. [[backtest.offers]]
                for item in items:
                    lines.append(f"[[{section}.{key}]]")
                    lines += [f"{k} = {_scalar(v)}" for k, v in item.items() if v is not None]
                    lines.append("")
    for section, value in data.items():
        if isinstance(value, list):
            for item in value:
                lines.append(f"[[{section}]]")
                lines += [f"{k} = {_scalar(v)}" for k, v in item.items() if v is not None]
                lines.append("")
    return "\n".join(lines)


def _is_table_list(value: Any) -> bool:
    """A non-empty list of tables inside a section: rendered as an array of tables."""
    return isinstance(value, list) and bool(value) and all(isinstance(v, dict) for v in value)


def _scalar(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, list):
        return "[" + ", ".join(_scalar(v) for v in value) + "]"
    return json.dumps(str(value))
