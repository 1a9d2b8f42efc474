"""Load the configuration (CONTRACT section 1): TOML plus CURTAILD_SECTION__KEY env overrides.

`load_config` reads the file and the environ it is given (never `os.environ` when one is passed,
and it never changes either), validates the typed models of `controller.config_model`, then runs
the cross-field rules of `controller.config_checks`, so that each problem is reported on its own
line. The model names are re-exported here: callers import them from `controller.config`.
"""

from __future__ import annotations

import copy
import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from controller.config_checks import check_site
from controller.config_env import env_data
from controller.config_model import (
    Config,
    ControlConfig,
    DispatchConfig,
    EconomicsConfig,
    ErcotApiConfig,
    FeedsConfig,
    GpuTenantConfig,
    MeterConfig,
    MetricsConfig,
    MqttConfig,
    OverrideConfig,
    PduConfig,
    PoolConfig,
    SiteConfig,
)
from controller.config_secrets import load_files, take_misplaced_secrets
from controller.errors import ConfigError

__all__ = [
    "Config",
    "ControlConfig",
    "DispatchConfig",
    "EconomicsConfig",
    "ErcotApiConfig",
    "FeedsConfig",
    "GpuTenantConfig",
    "MeterConfig",
    "MetricsConfig",
    "MqttConfig",
    "OverrideConfig",
    "PduConfig",
    "PoolConfig",
    "SiteConfig",
    "load_config",
]


def load_config(path: str | Path, environ: Mapping[str, str] | None = None) -> Config:
    """Read, validate and cross-check a config file; raise ConfigError listing every problem.

    `environ` defaults to a copy of `os.environ`; tests and reloads may pass their own. The
    problems come unknown keys first, then misplaced secrets, field errors, unreadable files and
    cross-field rules. Unknown keys do not hide the rest: when they are the only field errors,
    they are dropped and the remainder is validated and checked too.
    """
    path = Path(path)
    env = dict(os.environ if environ is None else environ)
    raw = _read_toml(path)
    from_env = env_data(Config, env)
    misplaced = take_misplaced_secrets(raw, from_env)
    config, unknown, invalid = _validated(_merged(raw, from_env))
    problems = unknown + misplaced + invalid
    if config is not None:
        config, file_problems = load_files(config, env)
        problems += file_problems + check_site(config)
    if problems or config is None:  # no config comes with at least one problem
        raise ConfigError(problems)
    return config


def _validated(data: dict[str, Any]) -> tuple[Config | None, list[str], list[str]]:
    """The config, its unknown keys and its other field problems.

    The config is None unless unknown keys were the only problems: then they are dropped and
    the rest validated, so the cross-field rules can run too.
    """
    try:
        return Config.model_validate(data), [], []
    except ValidationError as exc:
        errors = exc.errors()
    unknown = [err for err in errors if err["type"] == "extra_forbidden"]
    invalid = [_format_error(err) for err in errors if err["type"] != "extra_forbidden"]
    unknown_problems = [_format_error(err) for err in unknown]
    if invalid:
        return None, unknown_problems, invalid
    pruned = copy.deepcopy(data)
    for err in unknown:
        _drop(pruned, err["loc"])
    try:
        return Config.model_validate(pruned), unknown_problems, []
    except ValidationError as exc:  # not expected: unknown keys were the only problems
        return None, unknown_problems, [_format_error(err) for err in exc.errors()]


def _drop(data: Any, loc: tuple[str | int, ...]) -> None:
    """Delete the key at `loc` (a pydantic error location) from nested dicts and lists."""
    *parents, last = loc
    for part in parents:
        data = data[part]
    del data[last]


def _read_toml(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise ConfigError([f"config file {path}: not found (pass --config PATH to a TOML file)"])
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([f"config file {path}: TOML syntax error: {exc}"]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError([f"config file {path}: cannot read: {exc}"]) from None


def _merged(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """`over` on top of `base`, tables merged key by key, anything else (lists too) replaced.

    The same precedence pydantic-settings gives its sources: env before the TOML file.
    """
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merged(out[key], value)
        else:
            out[key] = value
    return out


def _format_error(err: Any) -> str:
    loc = ".".join(str(part) for part in err["loc"])
    msg = str(err["msg"])
    if err["type"] == "extra_forbidden":
        msg = "unknown key (check the spelling against config.example.toml)"
    elif err["type"] == "missing":
        msg = "required key is missing"
    value = err.get("input")
    shown = (
        "" if isinstance(value, dict | list) or err["type"] == "missing" else f" (got {value!r})"
    )
    return f"{loc}: {msg}{shown}"
