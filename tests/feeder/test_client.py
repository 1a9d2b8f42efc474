"""The API client against the fake: token renewal (before expiry and once on a 401), 429 with
Retry-After pausing the whole budget, 5xx and network errors retried then given up as a
FetchError, 4xx not retried, paging, and every request counted in the metrics."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import aiohttp
import pytest

from controller.feeder.budget import RequestBudget
from controller.feeder.client import FetchError
from controller.feeder.metrics import FeedMetrics
from controller.sim.configs import free_port
from controller.sim.ercot_api import RunningFake
from tests.feeder.helpers import client, feeder_config

LMP = "/np6-788-cd/lmp_node_zone_hub"
POINT = {"settlementPoint": "HB_WEST"}


def _count(metrics: FeedMetrics, product: str, status: str) -> float:
    value = metrics.registry.get_sample_value(
        "curtaild_feed_requests_total", {"product": product, "status": status}
    )
    return value or 0.0


async def test_paging_reads_every_row_once(fake: RunningFake, tmp_path: Path) -> None:
    config = feeder_config(tmp_path, fake)
    metrics = FeedMetrics()
    async with aiohttp.ClientSession() as session:
        api = client(session, config, metrics)
        names, rows = await api.fetch_all("np6-788-cd", LMP, POINT, page_size=4)
    held = [r.row() for r in fake.api.store.visible("np6-788-cd", time.time())
            if r.point == "HB_WEST"]  # fmt: skip
    assert names == ["SCEDTimestamp", "repeatHourFlag", "settlementPoint", "LMP"]
    assert [r[0] for r in rows] == [h["SCEDTimestamp"] for h in held]
    pages = -(-len(held) // 4)
    assert _count(metrics, "np6-788-cd", "200") == pages
    assert _count(metrics, "token", "200") == 1  # one token for every page


async def test_a_401_renews_the_token_once_and_the_call_succeeds(
    fake: RunningFake, tmp_path: Path
) -> None:
    config = feeder_config(tmp_path, fake)
    metrics = FeedMetrics()
    async with aiohttp.ClientSession() as session:
        api = client(session, config, metrics)
        await api.get_json("np6-788-cd", LMP, POINT)
        fake.api.expire_tokens()
        await api.get_json("np6-788-cd", LMP, POINT)
        assert api.tokens.renewals == 2
        assert _count(metrics, "np6-788-cd", "401") == 1
        fake.api.fail_next(401, count=3)  # a 401 again after renewing: not renewed twice
        with pytest.raises(FetchError) as info:
            await api.get_json("np6-788-cd", LMP, POINT)
        assert info.value.status == "401" and api.tokens.renewals == 3


async def test_the_token_is_renewed_before_it_expires(fake: RunningFake, tmp_path: Path) -> None:
    fake.api.token_ttl_s = 2.0  # renewed 0.4 s early: room for a loaded machine's stalls
    config = feeder_config(tmp_path, fake)
    metrics = FeedMetrics()
    async with aiohttp.ClientSession() as session:
        api = client(session, config, metrics)
        for _ in range(4):
            await api.get_json("np6-788-cd", LMP, POINT)
            await asyncio.sleep(0.9)
    assert api.tokens.renewals >= 2
    assert _count(metrics, "np6-788-cd", "401") == 0  # renewed in time: never refused


async def test_retry_after_pauses_every_request_and_5xx_is_retried(
    fake: RunningFake, tmp_path: Path
) -> None:
    config = feeder_config(tmp_path, fake)
    metrics = FeedMetrics()
    async with aiohttp.ClientSession() as session:
        api = client(session, config, metrics)
        await api.get_json("np6-788-cd", LMP, POINT)
        fake.api.fail_next(429, retry_after_s=1)
        fake.api.fail_next(500, count=2)
        started = time.monotonic()
        await api.get_json("np6-788-cd", LMP, POINT)
        assert time.monotonic() - started >= 1.0  # Retry-After held the retry
        log = fake.api.api_requests()
        after_429 = next(i for i, e in enumerate(log) if e.status == 429)
        assert log[after_429 + 1].at_s - log[after_429].at_s >= 0.95
        assert [e.status for e in log[after_429:]] == [429, 500, 500, 200]
        fake.api.fail_next(500, count=10)  # more than the tries: given up, not raised raw
        with pytest.raises(FetchError) as info:
            await api.get_json("np6-788-cd", LMP, POINT)
        assert info.value.status == "500" and _count(metrics, "np6-788-cd", "500") == 6


async def test_a_bad_request_is_not_retried(fake: RunningFake, tmp_path: Path) -> None:
    config = feeder_config(tmp_path, fake)
    async with aiohttp.ClientSession() as session:
        api = client(session, config)
        with pytest.raises(FetchError) as info:
            await api.get_json("np6-788-cd", LMP, {"settlementPt": "HB_WEST"})
    assert info.value.status == "400" and "settlementPt" in str(info.value)
    assert [e.status for e in fake.api.api_requests()] == [400]


async def test_network_errors_are_counted_and_given_up(fake: RunningFake, tmp_path: Path) -> None:
    config = feeder_config(tmp_path, fake)
    api_cfg = config.ercot_api.model_copy(
        update={"base_url": f"http://127.0.0.1:{free_port()}/api/public-reports"}
    )
    config = config.model_copy(update={"ercot_api": api_cfg})
    metrics = FeedMetrics()
    async with aiohttp.ClientSession() as session:
        api = client(session, config, metrics)
        with pytest.raises(FetchError) as info:
            await api.get_json("np6-788-cd", LMP, POINT)
    assert info.value.status == "network"
    assert _count(metrics, "np6-788-cd", "network") == 4  # QUICK: 4 tries


async def test_a_wrong_password_fails_the_call_with_the_b2c_reason(
    fake: RunningFake, tmp_path: Path
) -> None:
    fake.api.password = "changed"
    config = feeder_config(tmp_path, fake)
    async with aiohttp.ClientSession() as session:
        api = client(session, config, budget=RequestBudget(30))
        with pytest.raises(FetchError) as info:
            await api.get_json("np6-788-cd", LMP, POINT)
    assert info.value.status == "400" and "AADB2C90225" in str(info.value)
    assert "pw" not in str(info.value)  # the secret is never in a message


async def test_a_token_that_falls_due_while_waiting_for_the_budget_is_renewed_first(
    fake: RunningFake, tmp_path: Path
) -> None:
    """Two requests per 3 s and 2 s tokens: every call waits for the budget long enough for
    its token to fall due; it must leave with a fresh one, never be refused."""
    fake.api.token_ttl_s = 2.0
    config = feeder_config(tmp_path, fake)
    async with aiohttp.ClientSession() as session:
        api = client(session, config, budget=RequestBudget(2, window_s=3.0))
        for _ in range(4):
            await api.get_json("np6-788-cd", LMP, POINT)
    log = fake.api.log
    assert [e.status for e in log if e.kind == "api"] == [200] * 4
    times = [e.at_s for e in log]
    assert max(sum(1 for u in times if t - 3.0 < u <= t) for t in times) <= 2


async def test_a_429_without_retry_after_backs_off_and_succeeds(
    fake: RunningFake, tmp_path: Path
) -> None:
    config = feeder_config(tmp_path, fake)
    sleeps: list[float] = []

    async def sleep(seconds: float) -> None:
        sleeps.append(seconds)

    async with aiohttp.ClientSession() as session:
        api = client(session, config)
        api._sleep = sleep  # record the backoff instead of waiting it
        fake.api.fail_next(429, count=2)  # no Retry-After header
        await api.get_json("np6-788-cd", LMP, POINT)
    assert len(sleeps) == 2 and 0 < sleeps[0] <= sleeps[1] <= 0.05  # QUICK's backoff, growing
