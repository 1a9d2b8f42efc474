"""Optional dependencies: the daemon runs without them; the commands that need one say which
extra installs it (pyproject.toml [project.optional-dependencies])."""

from __future__ import annotations

import importlib
from types import ModuleType

from controller.errors import CurtaildError


class MissingExtraError(CurtaildError):
    """A command needs an optional dependency that is not installed."""

    exit_code = 1


def require(module: str, extra: str, needed_by: str) -> ModuleType:
    """Import `module`, or raise MissingExtraError naming the extra that provides it."""
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        top = module.partition(".")[0]
        if exc.name is None or exc.name.partition(".")[0] != top:
            raise  # the package is there but broken: its own error is the useful one
        raise MissingExtraError(
            f"{needed_by} needs the Python package {top!r}, which is not installed: install "
            f"curtaild with the {extra!r} extra (pip install 'curtaild[{extra}]'), or "
            f"pip install {top} into the same environment"
        ) from None
