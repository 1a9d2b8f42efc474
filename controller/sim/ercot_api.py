"""A local fake of ERCOT's public API, for tests and trying `curtaild feed-ercot` without an
account: the B2C token endpoint and the NP6-905-CD / NP6-788-CD report endpoints, with the
envelope (`_meta`, `report`, `fields`, `data`, `links`), filters, paging and sorting of ERCOT's
published OpenAPI spec (ercot/api-specs, pubapi/pubapi-apim-api.json).

Like the real service it enforces the subscription key and the bearer token (401), a per-key
request limit (429 with Retry-After), and it answers 401, 429 or 500 on demand (`fail_next`).
Every request is logged with its wall time, so a test can count what a client sent per minute.
Run it alone: `python -m controller.sim.ercot_api --port 8089` (prints the URLs to configure).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import secrets
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from controller.sim.ercot_params import ParamError, query_rows
from controller.sim.ercot_records import FIELDS, PRODUCTS, REPORTS, Product, RecordStore

TOKEN_PATH = "/ercotb2c.onmicrosoft.com/B2C_1_PUBAPI-ROPC-FLOW/oauth2/v2.0/token"  # noqa: S105
API_PREFIX = "/api/public-reports"
ENDPOINTS: dict[str, Product] = {
    "/np6-905-cd/spp_node_zone_hub": "np6-905-cd",
    "/np6-788-cd/lmp_node_zone_hub": "np6-788-cd",
}
CLIENT_ID = "fec253ea-0d06-4272-a5e6-b478baeecd70"
WINDOW_S = 60.0


@dataclass(slots=True)
class Logged:
    at_s: float  # wall time
    kind: str  # "token" | "api"
    path: str
    status: int


@dataclass(slots=True)
class _Fault:
    status: int
    target: str
    retry_after_s: float | None


@dataclass
class FakeErcotApi:
    """The service's state; `app()` serves it. Times are `clock()` (wall) seconds."""

    username: str = "user@example.com"
    password: str = "pw"  # noqa: S105 (the fake account)
    subscription_key: str = "key"
    points: tuple[str, ...] = ("HB_WEST", "HB_NORTH", "LZ_WEST")
    token_ttl_s: float = 3600.0
    limit_per_min: int = 30
    clock: Callable[[], float] = time.time
    log: list[Logged] = field(default_factory=list)
    over_limit: int = 0  # 429s the limiter gave (a client that respects the limit gets none)
    store: RecordStore = field(init=False)
    _tokens: dict[str, float] = field(default_factory=dict)  # token -> expiry
    _faults: deque[_Fault] = field(default_factory=deque)
    _window: deque[float] = field(default_factory=deque)

    def __post_init__(self) -> None:
        self.store = RecordStore(self.points)

    def fail_next(
        self,
        status: int,
        count: int = 1,
        *,
        target: str = "api",
        retry_after_s: float | None = None,
    ) -> None:
        """The next `count` requests to `target` ("api" or "token") answer `status`."""
        self._faults.extend(_Fault(status, target, retry_after_s) for _ in range(count))

    def expire_tokens(self) -> None:
        """Every token issued so far is refused from now on (the next API call gets 401)."""
        self._tokens.clear()

    def api_requests(self) -> list[Logged]:
        return [entry for entry in self.log if entry.kind == "api"]

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post(TOKEN_PATH, self._token)
        for path in ENDPOINTS:
            app.router.add_get(API_PREFIX + path, self._report)
        return app

    def _take_fault(self, target: str) -> _Fault | None:
        if self._faults and self._faults[0].target == target:
            return self._faults.popleft()
        return None

    def _logged(self, request: web.Request, kind: str, response: web.Response) -> web.Response:
        self.log.append(Logged(self.clock(), kind, request.path, response.status))
        return response

    async def _token(self, request: web.Request) -> web.Response:
        form = await request.post()
        fault = self._take_fault("token")
        if fault is not None:
            return self._logged(request, "token", _fault_response(fault))
        scope = f"openid {CLIENT_ID} offline_access"
        wanted = {"grant_type": "password", "client_id": CLIENT_ID, "response_type": "id_token"}
        if any(form.get(k) != v for k, v in wanted.items()) or form.get("scope") != scope:
            body = {"error": "invalid_request", "error_description": "AADB2C90055: bad request"}
            return self._logged(request, "token", web.json_response(body, status=400))
        if form.get("username") != self.username or form.get("password") != self.password:
            body = {
                "error": "invalid_grant",
                "error_description": "AADB2C90225: The username or password provided in the "
                "request are invalid.",
            }
            return self._logged(request, "token", web.json_response(body, status=400))
        token = secrets.token_urlsafe(24)
        self._tokens[token] = self.clock() + self.token_ttl_s
        ttl = str(round(self.token_ttl_s))  # B2C sends expires_in as a string
        body = {"access_token": token, "token_type": "Bearer", "expires_in": ttl,
                "id_token": token, "id_token_expires_in": ttl}  # fmt: skip
        return self._logged(request, "token", web.json_response(body))

    async def _report(self, request: web.Request) -> web.Response:
        return self._logged(request, "api", self._answer(request))

    def _answer(self, request: web.Request) -> web.Response:
        now = self.clock()
        key = request.headers.get("Ocp-Apim-Subscription-Key") or request.query.get(
            "subscription-key"
        )
        if key != self.subscription_key:
            return _error(401, "Access denied due to missing subscription key. Make sure to "
                          "include subscription key when making requests to an API.")  # fmt: skip
        if (wait_s := self._rate_limited(now)) is not None:
            self.over_limit += 1
            message = f"Rate limit is exceeded. Try again in {wait_s} seconds."
            return _error(429, message, headers={"Retry-After": str(wait_s)})
        fault = self._take_fault("api")
        if fault is not None:
            return _fault_response(fault)
        auth = request.headers.get("Authorization", "")
        expiry = self._tokens.get(auth.removeprefix("Bearer "))
        if not auth.startswith("Bearer ") or expiry is None or expiry <= now:
            return _error(401, "Unauthorized. Access token is missing or invalid.")
        product = ENDPOINTS[request.path.removeprefix(API_PREFIX)]
        try:
            return web.json_response(self._envelope(product, dict(request.query), now))
        except ParamError as exc:
            return _exception(400, "Bad Request", str(exc))

    def _rate_limited(self, now: float) -> int | None:
        """Seconds to wait when this request is over the per-key limit, else None."""
        while self._window and self._window[0] <= now - WINDOW_S:
            self._window.popleft()
        if len(self._window) >= self.limit_per_min:
            return max(1, round(self._window[0] + WINDOW_S - now + 0.5))
        self._window.append(now)
        return None

    def _envelope(self, product: Product, query: dict[str, str], now: float) -> dict[str, Any]:
        query.pop("subscription-key", None)
        rows, page, size, sorted_by = query_rows(product, self.store.visible(product, now), query)
        total_pages = -(-len(rows) // size) if rows else 0
        names = [name for name, _ in FIELDS[product]]
        data = [[row[name] for name in names] for row in rows[(page - 1) * size : page * size]]
        return {
            "_meta": {"totalRecords": len(rows), "pageSize": size, "totalPages": total_pages,
                      "currentPage": page, "query": {"parameterCount": len(query),
                                                     "parameters": query, "sortedBy": sorted_by}},
            "report": REPORTS[product],
            "fields": [{"name": name, "label": name, "cardinality": 0, "dataType": kind,
                        "searchable": True, "sortable": True, "hasRange": kind != "STRING"}
                       for name, kind in FIELDS[product]],
            "data": data,
            "links": [{"rel": "self", "href": f"{API_PREFIX}/{product}"}],
        }  # fmt: skip


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> web.Response:
    """An API Management gateway error (auth, rate limit): `{"statusCode","message"}`."""
    return web.json_response({"statusCode": status, "message": message}, status=status,
                             headers=headers)  # fmt: skip


def _exception(status: int, reason: str, message: str) -> web.Response:
    """The spec's `Exception` schema, which the report service answers 4xx/5xx with."""
    body = {"timestamp": time.strftime("%Y-%m-%dT%H:%M:%S"), "code": status, "status": reason,
            "message": message, "data": {}}  # fmt: skip
    return web.json_response(body, status=status)


def _fault_response(fault: _Fault) -> web.Response:
    if fault.status == 429:  # with a Retry-After only when asked for one
        wait = fault.retry_after_s
        headers = {"Retry-After": f"{wait:g}"} if wait is not None else None
        return _error(429, "Rate limit is exceeded.", headers=headers)
    if fault.status == 401:
        return _error(401, "Unauthorized. Access token is missing or invalid.")
    return _exception(fault.status, "Internal Server Error", "injected fault")


class RunningFake:
    """A FakeErcotApi served on 127.0.0.1; `base_url` and `token_url` go in [ercot_api]."""

    def __init__(self, api: FakeErcotApi, port: int = 0) -> None:
        self.api = api
        self._port = port
        self._runner: web.AppRunner | None = None
        self.port = 0

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}{API_PREFIX}"

    @property
    def token_url(self) -> str:
        return f"http://127.0.0.1:{self.port}{TOKEN_PATH}"

    async def __aenter__(self) -> RunningFake:
        self._runner = web.AppRunner(self.api.app(), access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", self._port)
        await site.start()
        server = site._server  # (aiohttp exposes the bound port nowhere else)
        assert isinstance(server, asyncio.Server)
        self.port = server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *_: object) -> None:
        if self._runner is not None:
            await self._runner.cleanup()


async def post_live(api: FakeErcotApi, every_s: float) -> None:
    """Post new records as ERCOT would, SCED runs sped up: every `every_s` a SCED record
    stamped now for each point, and each 905 interval once it has ended."""
    last_905 = api.store.latest("np6-905-cd")
    last_sced = 0.0
    while True:
        now = api.clock()
        if (stamp := float(int(now))) > last_sced:
            api.store.post_interval("np6-788-cd", stamp, now)
            last_sced = stamp
        next_905 = (last_905 + 900.0) if last_905 is not None else (now // 900.0 - 1) * 900.0
        if next_905 + 900.0 <= now:
            api.store.post_interval("np6-905-cd", next_905, now)
            last_905 = next_905
        await asyncio.sleep(every_s)


async def _serve(args: argparse.Namespace) -> None:
    api = FakeErcotApi(args.username, args.password, args.key, token_ttl_s=args.token_ttl_s,
                       limit_per_min=args.limit_per_min)  # fmt: skip
    api.store.seed(api.clock(), args.history_h, post_delay_s=60.0)
    async with RunningFake(api, args.port) as fake:
        print(f"base_url = {fake.base_url!r}\ntoken_url = {fake.token_url!r}", flush=True)  # noqa: T201
        await post_live(api, args.every_s)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=8089)
    parser.add_argument("--username", default="user@example.com")
    parser.add_argument("--password", default="pw")
    parser.add_argument("--key", default="key", help="the subscription key it accepts")
    parser.add_argument("--token-ttl-s", type=float, default=3600.0)
    parser.add_argument("--limit-per-min", type=int, default=30)
    parser.add_argument("--history-h", type=float, default=2.0, help="records posted at start")
    parser.add_argument("--every-s", type=float, default=5.0, help="a new SCED run this often")
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(parser.parse_args()))


if __name__ == "__main__":
    main()

__all__ = ["PRODUCTS", "FakeErcotApi", "RunningFake", "post_live"]
