"""Operator overrides (CONTRACT 2.3 and section 7 Override): signature, freshness, replay.

The signed text is Python's canonical re-serialisation of the received object without `sig`
(`json.dumps(..., sort_keys=True, separators=(",", ":"), ensure_ascii=True)`): numbers keep
the form they were sent in, so a signer must sign exactly the JSON values it sends.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import math
from collections.abc import Callable, Container
from pathlib import Path
from typing import Any, get_args

from controller.errors import ConfigError
from controller.feeds.common import (
    INSTANT_MAX_S,
    MAX_POWER_KW,
    FeedRejected,
    as_id,
    as_instant,
    as_int,
    as_str,
    as_text,
    instant_in_window,
    load_json_object,
    number_in,
    require,
    shown,
)
from controller.model import OverrideMode, OverrideRequest

MODES: tuple[OverrideMode, ...] = get_args(OverrideMode)
# Nonces are kept in the state store for replay protection; bound what one message can add.
MAX_NONCE_CHARS = 256


def load_hmac_key(path: str | Path) -> bytes:
    """The key file's bytes without trailing CR/LF (editors add them); ConfigError if unusable."""
    try:
        key = Path(path).read_bytes().rstrip(b"\r\n")
    except OSError as exc:
        raise ConfigError([f"override.hmac_key_file: cannot read {path}: {exc}"]) from None
    if not key:
        raise ConfigError([f"override.hmac_key_file: {path} is empty"])
    return key


def canonical_text(obj: dict[str, Any]) -> bytes:
    """The bytes an override signature covers: the object without `sig`, canonically dumped."""
    unsigned = {key: value for key, value in obj.items() if key != "sig"}
    text = json.dumps(unsigned, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return text.encode("ascii")


def sign_override(obj: dict[str, Any], key: bytes) -> dict[str, Any]:
    """A copy of `obj` with `sig` set (any previous `sig` replaced)."""
    signed = {name: value for name, value in obj.items() if name != "sig"}
    signed["sig"] = hmac.new(key, canonical_text(obj), hashlib.sha256).hexdigest()
    return signed


class OverrideValidator:
    """Checks override messages; the caller records the nonce once it accepts the result."""

    def __init__(self, max_ttl_s: int, max_clock_skew_s: float, hmac_key: bytes | None) -> None:
        if max_ttl_s < 1 or not math.isfinite(max_clock_skew_s) or max_clock_skew_s < 0:
            raise ValueError("max_ttl_s must be >= 1 and max_clock_skew_s finite and >= 0")
        if hmac_key is not None and not hmac_key:
            raise ValueError("hmac_key must be None (unsigned) or non-empty")
        self.max_ttl_s = max_ttl_s
        self.max_clock_skew_s = max_clock_skew_s
        self._hmac_key = hmac_key

    def validate(self, payload: bytes, now: float, seen_nonces: Container[str]) -> OverrideRequest:
        """Validate one message at `now`; raise FeedRejected with the first problem found.

        The signature is checked before any field, so an unsigned sender learns nothing about
        what else would pass. Without a key, a `sig` is ignored.
        """
        obj = load_json_object(payload, "an override request")
        if self._hmac_key is not None:
            self._check_signature(obj, self._hmac_key)
        mode = _mode(as_str(require(obj, "mode"), "mode"))
        issued_at = as_instant(require(obj, "issued_at"), "issued_at")
        nonce = as_id(require(obj, "nonce"), "nonce", MAX_NONCE_CHARS)
        expires_at = None
        if mode != "auto":  # ttl_s of an `auto` is ignored (section 7), whatever it holds
            ttl_s = as_int(require(obj, "ttl_s"), "ttl_s")
            if not 1 <= ttl_s <= self.max_ttl_s:
                raise FeedRejected("out_of_range", f"ttl_s: {ttl_s} is outside 1..{self.max_ttl_s}")
            # max_ttl_s is the operator's setting and unbounded: the expiry must still be an
            # instant the override state can print (and 10**400 s not even a float).
            expires_s = issued_at + ttl_s if ttl_s < INSTANT_MAX_S else math.inf
            sent = f"{obj['issued_at']} + {ttl_s} s"
            expires_at = instant_in_window(expires_s, "issued_at + ttl_s", sent)
        limit_kw = None
        if mode == "limit":
            limit_kw = number_in(require(obj, "limit_kw"), "limit_kw", 0.0, MAX_POWER_KW)
        operator = _optional(obj, "operator", as_id)
        reason = _optional(obj, "reason", as_text)
        # Expiry before skew: an override whose time is up is refused as such, which tells the
        # operator more than "clock skew" would.
        if expires_at is not None and expires_at <= now:
            raise FeedRejected("expired", f"expired {now - expires_at:.0f} s before it arrived")
        skew_s = issued_at - now
        if abs(skew_s) > self.max_clock_skew_s:
            raise FeedRejected(
                "clock_skew",
                f"issued_at is {skew_s:+.0f} s from now (limit ±{self.max_clock_skew_s:g} s); "
                "check the sender's clock",
            )
        if nonce in seen_nonces:
            raise FeedRejected("replayed_nonce", f"nonce {nonce!r} was already used")
        return OverrideRequest(
            mode=mode,
            limit_kw=limit_kw,
            expires_at=expires_at,
            operator=operator,
            reason=reason,
            issued_at=issued_at,
            nonce=nonce,
        )

    @staticmethod
    def _check_signature(obj: dict[str, Any], key: bytes) -> None:
        sig = obj.get("sig")
        if sig is None:
            raise FeedRejected("missing_signature", "sig: required (override.hmac_key_file is set)")
        if not isinstance(sig, str) or not sig.isascii():
            raise FeedRejected("bad_signature", "sig: expected hex HMAC-SHA256 text")
        expected = hmac.new(key, canonical_text(obj), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, sig.lower()):
            raise FeedRejected(
                "bad_signature", "sig: does not match (wrong key, or the message was altered)"
            )


def _mode(text: str) -> OverrideMode:
    for mode in MODES:
        if mode == text:
            return mode
    raise FeedRejected("bad_field", f"mode: expected one of {', '.join(MODES)}, got {shown(text)}")


def _optional(obj: dict[str, Any], key: str, check: Callable[[Any, str], str]) -> str:
    value = obj.get(key)
    return "" if value is None or value == "" else check(value, key)
