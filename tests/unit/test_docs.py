"""docs/protocol.md in step with the code: every config key, metric and command is documented."""

from __future__ import annotations

import argparse
import re
import types
import typing
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import BaseModel

from controller.adapters.metrics import Metrics
from controller.cli import _parser
from controller.config import Config

ROOT = Path(__file__).resolve().parents[2]
PROTOCOL = (ROOT / "docs" / "protocol.md").read_text()


def _models_in(annotation: object) -> Iterator[type[BaseModel]]:
    """The pydantic models an annotation holds: `X`, `list[X]`, `X | None`, `Annotated[X, ...]`."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        yield annotation
        return
    origin = typing.get_origin(annotation)
    if origin is not None or isinstance(annotation, types.UnionType):
        for arg in typing.get_args(annotation):
            yield from _models_in(arg)


def _keys(model: type[BaseModel], path: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    """Every key path of a model, recursively (`("pools", "max_kw")`)."""
    for name, field in model.model_fields.items():
        nested = list(_models_in(field.annotation))
        if nested:
            for sub in nested:
                yield from _keys(sub, (*path, name))
        else:
            yield (*path, name)


def _section(heading: str) -> str:
    """The text under the `### ` heading that starts with `heading`, up to the next heading."""
    match = re.search(rf"^### {re.escape(heading)}.*?$(.*?)(?=^##)", PROTOCOL, re.M | re.S)
    assert match, f"docs/protocol.md has no section '### {heading}'"
    return match.group(1)


CONFIG_KEYS = sorted(set(_keys(Config)))


def test_the_walk_finds_every_section_and_nested_key() -> None:
    sections = {path[0] for path in CONFIG_KEYS}
    assert {"site", "mqtt", "control", "ercot_api", "pools", "pdus", "meters"} <= sections
    assert ("pools", "max_kw") in CONFIG_KEYS
    assert ("mqtt", "password") in CONFIG_KEYS
    assert len(CONFIG_KEYS) > 80


@pytest.mark.parametrize("path", CONFIG_KEYS, ids=".".join)
def test_every_config_key_is_in_its_section(path: tuple[str, ...]) -> None:
    section, key = path[0], path[-1]
    is_list = typing.get_origin(Config.model_fields[section].annotation) is list
    heading = f"`[[{section}]]`" if is_list else f"`[{section}]`"
    assert f"`{key}`" in _section(heading), (
        f"config key {'.'.join(path)} is not documented under '### {heading}' in docs/protocol.md"
    )


def _metric_names() -> list[str]:
    return [
        f"{family.name}_total" if family.type == "counter" else family.name
        for family in Metrics().registry.collect()
    ]


def _documented(name: str) -> bool:
    """`curtaild_*` by name; the library's `process_*` and `python_*` series by their prefix."""
    if name.startswith("curtaild_"):
        return f"`{name}`" in PROTOCOL
    return f"`{name.split('_', maxsplit=1)[0]}_*`" in PROTOCOL


def test_every_metric_is_documented() -> None:
    names = _metric_names()
    assert "curtaild_messages_rejected_total" in names
    missing = [n for n in names if not _documented(n)]
    assert not missing, f"metrics registered by Metrics() but not in docs/protocol.md: {missing}"


def test_every_documented_metric_exists() -> None:
    table = PROTOCOL.split("## 6. Metrics", 1)[1].split("\n## ", 1)[0]
    documented = set(re.findall(r"^\| `(curtaild_\w+)`", table, re.M))
    assert len(documented) > 20
    assert documented <= set(_metric_names())


def _subcommands() -> list[str]:
    parser = _parser()
    actions = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return sorted(name for action in actions for name in action.choices)


def test_every_subcommand_is_documented() -> None:
    commands = _subcommands()
    assert {"run", "check-config", "backtest", "status"} <= set(commands)
    missing = [c for c in commands if f"`curtaild {c}" not in PROTOCOL]
    assert not missing, f"curtaild subcommands not in docs/protocol.md: {missing}"


def test_user_docs_do_not_point_outside_the_repository() -> None:
    docs = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    for doc in docs:
        text = doc.read_text()
        for needle in ("../shared", "CONTRACT"):
            assert needle not in text, f"{doc.relative_to(ROOT)} mentions {needle!r}"


def test_every_repository_path_the_docs_name_exists() -> None:
    docs = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    docs += sorted((ROOT / "deploy").rglob("README.md"))
    pattern = re.compile(r"`((?:deploy|systemd|docs|controller|bench|tests)/[\w./-]+)`")
    named = {(doc.name, m) for doc in docs for m in pattern.findall(doc.read_text())}
    assert named, "no repository paths found: the pattern is broken"
    missing = sorted((doc, path) for doc, path in named if not (ROOT / path).exists())
    assert not missing, f"paths the docs name that the repository lacks: {missing}"
