"""The B2C ROPC token of ERCOT's public API (CONTRACT 2.6, LIBRARY-NOTES): a form POST whose
`id_token` is the bearer of every API call. Renewed before `expires_in` runs out, and at once
when the API answers 401 (the caller `invalidate()`s it)."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from pydantic import SecretStr

# Renew this long before expiry (ERCOT's tokens last an hour), at most a fifth of the lifetime
# so that short-lived tokens (tests) are still used for most of it.
RENEW_BEFORE_S = 300.0
DEFAULT_EXPIRES_IN_S = 3600.0  # when the answer carries no usable expires_in


class TokenError(Exception):
    """The token endpoint refused us or answered something unusable (status "parse" or code)."""

    def __init__(self, status: str, detail: str) -> None:
        self.status = status
        super().__init__(detail)


@dataclass(frozen=True)
class Credentials:
    token_url: str
    client_id: str
    username: str
    password: SecretStr

    def form(self) -> dict[str, str]:
        return {
            "grant_type": "password",
            "username": self.username,
            "password": self.password.get_secret_value(),
            "client_id": self.client_id,
            "scope": f"openid {self.client_id} offline_access",
            "response_type": "id_token",
        }


# (url, form) -> (HTTP status, decoded JSON body or None); the client supplies it so that the
# token request goes through the same budget and metrics as every other request.
PostForm = Callable[[str, dict[str, str]], Awaitable[tuple[int, Any]]]


class TokenSource:
    def __init__(
        self, creds: Credentials, post: PostForm, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._creds = creds
        self._post = post
        self._clock = clock
        self._token: str | None = None
        self._renew_at = 0.0
        self.renewals = 0

    def invalidate(self) -> None:
        self._token = None

    def current(self) -> str | None:
        """The token if it is not yet due for renewal; None otherwise (no I/O)."""
        return self._token if self._clock() < self._renew_at else None

    async def bearer(self) -> str:
        """A token valid for a while yet; fetches one when there is none or it is due."""
        if (token := self.current()) is not None:
            return token
        asked_at = self._clock()
        status, body = await self._post(self._creds.token_url, self._creds.form())
        if status != 200:
            # B2C's error body names the cause (AADB2C90225: bad username or password) and
            # holds no secret; it is what a user needs to fix the account.
            detail = body.get("error_description") if isinstance(body, dict) else None
            raise TokenError(str(status), f"token request answered {status}: {detail or body}")
        token = body.get("id_token") if isinstance(body, dict) else None
        if not isinstance(token, str) or not token:
            raise TokenError("parse", "token answer has no id_token")
        lifetime = _seconds(body.get("expires_in"))
        self._token = token
        self._renew_at = asked_at + lifetime - min(RENEW_BEFORE_S, lifetime / 5)
        self.renewals += 1
        return token


def _seconds(value: Any) -> float:
    """B2C sends expires_in as a string ("3600"); accept a number too."""
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        return DEFAULT_EXPIRES_IN_S
    return seconds if seconds > 0 else DEFAULT_EXPIRES_IN_S
