"""CURTAILD_SECTION__KEY environment overrides (CONTRACT section 1), read from a given mapping.

pydantic-settings' env source parses `os.environ` by default; `EnvironSource` parses the mapping
`load_config` was given instead, so loading a config never reads or changes process state the
caller did not hand over. Env values are text while the models are strict, so each value is
converted by the annotation of the field it lands on before validation sees it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel
from pydantic_settings import BaseSettings, EnvSettingsSource, SettingsError

from controller.errors import ConfigError


class EnvironSource(EnvSettingsSource):
    """The env settings of `settings_cls` taken from `environ`, typed by field annotation."""

    def __init__(self, settings_cls: type[BaseSettings], environ: Mapping[str, str]) -> None:
        # Set before the parent's __init__: it calls _load_env_vars() at its end.
        self._environ = dict(environ)
        self._settings_cls = settings_cls
        super().__init__(settings_cls)

    def _load_env_vars(self) -> Mapping[str, str | None]:
        # The library's own extension point (its dotenv source overrides it the same way).
        if self.case_sensitive:
            return dict(self._environ)
        return {name.lower(): value for name, value in self._environ.items()}

    def __call__(self) -> dict[str, Any]:
        data: dict[str, Any] = _coerce_env(super().__call__(), self._settings_cls)
        return data


def env_data(settings_cls: type[BaseSettings], environ: Mapping[str, str]) -> dict[str, Any]:
    """The nested dict the CURTAILD_* variables of `environ` describe; ConfigError if unparsable."""
    try:
        return EnvironSource(settings_cls, environ)()
    except SettingsError as exc:
        # The library names the field, not the variable: name the variable the user wrote.
        found = re.search(r'field "([^"]+)"', str(exc))
        name = f"CURTAILD_{found.group(1).upper()}" if found else "a CURTAILD_* variable"
        message = (
            f"environment: {name} is not valid JSON; lists and tables set from the "
            'environment are JSON, for example CURTAILD_POOLS=\'[{"name": "c01", ...}]\''
        )
        raise ConfigError([message]) from None


def _coerce_env(data: Any, model: type[BaseModel]) -> Any:
    if not isinstance(data, dict):
        return data
    out: dict[str, Any] = {}
    for key, value in data.items():
        field = model.model_fields.get(key)
        if field is None:
            out[key] = value
            continue
        out[key] = _coerce_value(value, field.annotation)
    return out


def _coerce_value(value: Any, annotation: Any) -> Any:
    origin = getattr(annotation, "__origin__", None)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return _coerce_env(value, annotation)
    if origin is list and isinstance(value, list):
        (item,) = annotation.__args__
        return [_coerce_value(v, item) for v in value]
    if not isinstance(value, str):
        return value
    text = value.strip()
    kinds = _scalar_kinds(annotation)
    if bool in kinds and text.lower() in ("true", "false", "1", "0"):
        return text.lower() in ("true", "1")
    if int in kinds:
        try:
            return int(text)
        except ValueError:
            pass
    if float in kinds:
        try:
            return float(text)
        except ValueError:
            pass
    return value


def _scalar_kinds(annotation: Any) -> set[type]:
    args = getattr(annotation, "__args__", None)
    if getattr(annotation, "__metadata__", None) is not None:  # Annotated[T, ...]
        return _scalar_kinds(annotation.__origin__)
    if args and getattr(annotation, "__origin__", None) is not list:
        kinds: set[type] = set()
        for arg in args:
            kinds |= _scalar_kinds(arg)
        return kinds
    return {annotation} if isinstance(annotation, type) else set()
