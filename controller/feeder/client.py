"""ERCOT public API client on aiohttp: every request through the budget, retries with backoff
and jitter, the token renewed once on a 401, paging through `_meta.totalPages`.

A call either returns a decoded page or raises FetchError after its tries; it never raises
anything else for an HTTP, network or parse problem, so the poller logs, counts and carries on.
Secrets travel only in headers and the token form, which are never logged.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any

import aiohttp
from pydantic import SecretStr

from controller.backoff import BackoffPolicy
from controller.feeder.budget import RequestBudget
from controller.feeder.token import Credentials, TokenError, TokenSource

MAX_PAGES = 1000  # a window of one settlement point is a page or two; more is a runaway


class FetchError(Exception):
    """A request that did not succeed: `status` is the last HTTP code, "network" or "parse"."""

    def __init__(self, status: str, detail: str) -> None:
        self.status = status
        super().__init__(detail)


class _NetworkError(Exception):
    pass


# 2, 4, 8, 16 s, each 50-100 % of that: clients that failed together do not retry in step.
API_BACKOFF = BackoffPolicy(initial_s=2.0, factor=2.0, max_s=60.0, jitter=0.5)


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 5  # per call; the next poll starts afresh
    backoff: BackoffPolicy = API_BACKOFF
    timeout_s: float = 30.0


@dataclass(frozen=True)
class Page:
    names: list[str]
    rows: list[list[Any]]
    total_pages: int


class ErcotClient:
    def __init__(
        self,
        session: aiohttp.ClientSession,
        base_url: str,
        subscription_key: SecretStr,
        creds: Credentials,
        budget: RequestBudget,
        on_request: Callable[[str, str], None] = lambda product, status: None,
        policy: RetryPolicy = RetryPolicy(),
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._session = session
        self._base_url = base_url.rstrip("/")
        self._key = subscription_key
        self.budget = budget
        self._on_request = on_request
        self._policy = policy
        self._sleep = sleep
        self.tokens = TokenSource(creds, self._post_token, clock)

    async def _send(
        self, product: str, method: str, url: str, *, slot_taken: bool = False, **kwargs: Any
    ) -> tuple[int, Any, float | None]:
        """One request through the budget: (status, decoded JSON or None, Retry-After s)."""
        if not slot_taken:
            await self.budget.acquire()
        timeout = aiohttp.ClientTimeout(total=self._policy.timeout_s)
        try:
            async with self._session.request(method, url, timeout=timeout, **kwargs) as resp:
                raw = await resp.read()
                status, retry_after = resp.status, _retry_after_s(resp.headers)
        except (aiohttp.ClientError, TimeoutError) as exc:
            self._on_request(product, "network")
            raise _NetworkError(f"{type(exc).__name__}: {exc}") from None
        self._on_request(product, str(status))
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        return status, body, retry_after

    async def _post_token(self, url: str, form: dict[str, str]) -> tuple[int, Any]:
        status, body, retry_after = await self._send("token", "POST", url, data=form)
        if status == 429 and retry_after is not None:
            self.budget.pause(retry_after)
        return status, body

    async def _bearer_and_slot(self) -> str:
        """A token and a budget slot for the call that follows at once. The wait for a slot can
        be long (a full budget, a Retry-After): a token that fell due meanwhile is renewed
        first and the slot given back, so a call never leaves with a token about to expire."""
        while True:
            bearer = await self.tokens.bearer()
            await self.budget.acquire()
            if self.tokens.current() == bearer:
                return bearer
            self.budget.give_back()

    async def get_json(self, product: str, path: str, params: Mapping[str, str]) -> dict[str, Any]:
        """GET `base_url + path`; the decoded object, or FetchError after the tries."""
        url = f"{self._base_url}{path}"
        failures, reauthorized, last = 0, False, "network"
        while True:
            pause_given = False
            try:
                bearer = await self._bearer_and_slot()
                headers = {"Authorization": f"Bearer {bearer}",
                           "Ocp-Apim-Subscription-Key": self._key.get_secret_value()}  # fmt: skip
                status, body, retry_after = await self._send(
                    product, "GET", url, slot_taken=True, params=dict(params), headers=headers
                )
            except TokenError as exc:
                last = f"token {exc.status}"
                if not (exc.status == "429" or exc.status.startswith("5")):
                    raise FetchError(exc.status, str(exc)) from None
            except _NetworkError as exc:
                last = f"network ({exc})"
            else:
                if status == 200:
                    if not isinstance(body, dict):
                        raise FetchError("parse", f"{path}: the answer is not a JSON object")
                    return body
                last = str(status)
                if status == 401 and not reauthorized:  # expired or revoked: renew once, now
                    self.tokens.invalidate()
                    reauthorized = True
                    continue
                if status == 429 and retry_after is not None:
                    self.budget.pause(retry_after)  # every request of the process waits
                    pause_given = True
                elif status != 429 and status < 500:
                    raise FetchError(str(status), f"{path} answered {status}: {_message(body)}")
            failures += 1
            if failures >= self._policy.attempts:
                raise FetchError(last.split()[0], f"{path}: gave up after {failures} tries, "
                                  f"last {last}")  # fmt: skip
            if not pause_given:
                await self._sleep(self._policy.backoff.delay_s(failures))

    async def fetch_all(
        self, product: str, path: str, params: Mapping[str, str], page_size: int = 1000
    ) -> tuple[list[str], list[list[Any]]]:
        """Every row of a query, page after page; the field names and the rows."""
        names: list[str] | None = None
        rows: list[list[Any]] = []
        page = 1
        while True:
            query = {**params, "page": str(page), "size": str(page_size)}
            got = parse_page(await self.get_json(product, path, query), path)
            if names is not None and got.names != names:
                raise FetchError("parse", f"{path}: fields changed between pages")
            names = got.names
            rows.extend(got.rows)
            if page >= min(got.total_pages, MAX_PAGES):
                return names, rows
            page += 1


def parse_page(body: dict[str, Any], path: str) -> Page:
    """The envelope of CONTRACT 2.6: `_meta.totalPages`, `fields[].name`, `data` rows."""
    meta, fields, data = body.get("_meta"), body.get("fields"), body.get("data")
    if not isinstance(meta, dict) or not isinstance(fields, list) or not isinstance(data, list):
        raise FetchError("parse", f"{path}: expected _meta, fields and data in the answer")
    names = [f.get("name") if isinstance(f, dict) else None for f in fields]
    total = meta.get("totalPages")
    if not all(isinstance(n, str) for n in names) or not isinstance(total, int):
        raise FetchError("parse", f"{path}: fields without names or no _meta.totalPages")
    if not all(isinstance(row, list) and len(row) == len(names) for row in data):
        raise FetchError("parse", f"{path}: a data row does not match the fields")
    return Page([str(n) for n in names], data, total)


def _retry_after_s(headers: Mapping[str, str]) -> float | None:
    """Retry-After as seconds: delta-seconds or an HTTP date (RFC 9110 10.2.3)."""
    text = headers.get("Retry-After")
    if text is None:
        return None
    try:
        return max(0.0, float(text))
    except ValueError:
        pass
    try:
        return max(0.0, parsedate_to_datetime(text).timestamp() - time.time())
    except (TypeError, ValueError):
        return None


def _message(body: Any) -> str:
    if isinstance(body, dict):
        return str(body.get("message") or body.get("error_description") or body)[:200]
    return "no JSON body"
