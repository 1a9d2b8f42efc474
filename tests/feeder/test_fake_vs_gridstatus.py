"""The fake ERCOT API checked by an independent client: gridstatus's `ErcotAPI` (the reference
implementation of ERCOT's public API flow), pointed at the fake. Its token request, headers,
parameter formats (parsed from ERCOT's own spec file it ships) and paging must all work, and
what it reads must be what the fake holds."""

from __future__ import annotations

import asyncio
import importlib
from datetime import datetime, timedelta
from typing import Any

import pytest

from controller.feeds.ercot import CENTRAL
from controller.sim.ercot_api import RunningFake


def _client(fake: RunningFake, monkeypatch: pytest.MonkeyPatch) -> Any:
    # Installed by the lock (extra `apitest`): a missing one fails here, it is never skipped.
    module = importlib.import_module("gridstatus.ercot_api.ercot_api")
    monkeypatch.setattr(module, "PUBLIC_BASE_URL", fake.base_url)
    api = module.ErcotAPI(username="user@example.com", password="pw",
                          public_subscription_key="key", sleep_seconds=0.1)  # fmt: skip
    api.token_url = fake.token_url
    return api


async def test_gridstatus_reads_both_reports_through_token_and_pages(
    fake: RunningFake, monkeypatch: pytest.MonkeyPatch
) -> None:
    api = _client(fake, monkeypatch)
    end = datetime.now(CENTRAL).replace(tzinfo=None, microsecond=0)
    lmp = await asyncio.to_thread(
        api.hit_ercot_api, "/np6-788-cd/lmp_node_zone_hub", page_size=5,
        settlementPoint="HB_WEST", SCEDTimestampFrom=end - timedelta(hours=3),
        SCEDTimestampTo=end,
    )  # fmt: skip
    held = [r.row() for r in fake.api.store.visible("np6-788-cd", fake.api.clock())
            if r.point == "HB_WEST"]  # fmt: skip
    assert list(lmp.columns) == ["SCEDTimestamp", "RepeatHourFlag", "SettlementPoint", "LMP"]
    assert list(lmp["SCEDTimestamp"]) == [row["SCEDTimestamp"] for row in held]
    assert list(lmp["LMP"]) == [row["LMP"] for row in held]
    pages = [e for e in fake.api.api_requests() if e.status == 200]
    assert len(pages) == -(-len(held) // 5) > 1  # gridstatus followed _meta.totalPages
    spp = await asyncio.to_thread(
        api.hit_ercot_api, "/np6-905-cd/spp_node_zone_hub", settlementPoint="LZ_WEST",
        deliveryDateFrom=(end - timedelta(days=1)).date(), deliveryDateTo=end.date(),
    )  # fmt: skip
    assert set(spp["SettlementPoint"]) == {"LZ_WEST"} and set(spp["SettlementPointType"]) == {"LZ"}
    assert len(spp) == len([r for r in fake.api.store.visible("np6-905-cd", fake.api.clock())
                            if r.point == "LZ_WEST"])  # fmt: skip


async def test_gridstatus_retries_the_fakes_429(
    fake: RunningFake, monkeypatch: pytest.MonkeyPatch
) -> None:
    api = _client(fake, monkeypatch)
    fake.api.fail_next(429, count=2, retry_after_s=1)
    spp = await asyncio.to_thread(
        api.hit_ercot_api, "/np6-905-cd/spp_node_zone_hub", settlementPoint="HB_WEST"
    )
    assert len(spp) > 0
    assert [e.status for e in fake.api.api_requests()] == [429, 429, 200]
