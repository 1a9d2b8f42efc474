"""Operator override (CONTRACT 2.3; I4): it may lower the cap or choose `run`, never more."""

from __future__ import annotations

from controller.model import OverrideRequest


def take_inbox(
    current: OverrideRequest | None, inbox: tuple[OverrideRequest, ...], now: float
) -> OverrideRequest | None:
    """The newest request wins; `auto` clears; an expired override clears itself."""
    for request in inbox:
        current = None if request.mode == "auto" else request
    if current is not None and current.expires_at is not None and now >= current.expires_at:
        return None
    return current


def override_cap_kw(current: OverrideRequest | None) -> float | None:
    """The cap an override imposes; `run` and none impose none (they never widen)."""
    if current is None:
        return None
    if current.mode == "curtail":
        return 0.0
    if current.mode == "limit":
        return current.limit_kw if current.limit_kw is not None else 0.0
    return None
