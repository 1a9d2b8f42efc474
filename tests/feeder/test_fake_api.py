"""The fake ERCOT API answers as the published spec and the live service do: token flow,
envelope, filters, paging, sorting, and 401 / 429 Retry-After / 500 on demand."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import aiohttp

from controller.feeds.ercot import CENTRAL
from controller.sim.ercot_api import CLIENT_ID, RunningFake

SPP = "/np6-905-cd/spp_node_zone_hub"
LMP = "/np6-788-cd/lmp_node_zone_hub"
FORM = {"grant_type": "password", "username": "user@example.com", "password": "pw",
        "client_id": CLIENT_ID, "scope": f"openid {CLIENT_ID} offline_access",
        "response_type": "id_token"}  # fmt: skip


async def _token(session: aiohttp.ClientSession, fake: RunningFake, **form: str) -> Any:
    async with session.post(fake.token_url, data={**FORM, **form}) as resp:
        return resp.status, await resp.json()


async def _get(
    session: aiohttp.ClientSession, fake: RunningFake, path: str, token: str, **params: str
) -> tuple[int, Any, Any]:
    headers = {"Authorization": f"Bearer {token}", "Ocp-Apim-Subscription-Key": "key"}
    async with session.get(fake.base_url + path, params=params, headers=headers) as resp:
        return resp.status, await resp.json(), resp.headers


async def test_the_token_flow_gives_an_id_token_and_refuses_a_wrong_password(
    fake: RunningFake,
) -> None:
    async with aiohttp.ClientSession() as session:
        status, body = await _token(session, fake)
        assert status == 200 and body["id_token"] and body["expires_in"] == "3600"
        status, body = await _token(session, fake, password="wrong")
        assert status == 400 and "AADB2C90225" in body["error_description"]
        status, _ = await _token(session, fake, scope="openid")
        assert status == 400


async def test_the_envelope_filters_by_point_and_window_and_pages(fake: RunningFake) -> None:
    async with aiohttp.ClientSession() as session:
        _, token = await _token(session, fake)
        token = token["id_token"]
        status, body, _ = await _get(session, fake, LMP, token, settlementPoint="HB_WEST")
        assert status == 200
        assert set(body) == {"_meta", "report", "fields", "data", "links"}
        assert body["report"]["reportEMIL"] == "NP6-788-CD"
        names = [f["name"] for f in body["fields"]]
        assert names == ["SCEDTimestamp", "repeatHourFlag", "settlementPoint", "LMP"]
        rows = body["data"]
        assert len(rows) >= 20 and {row[2] for row in rows} == {"HB_WEST"}
        assert body["_meta"]["totalRecords"] == len(rows) and body["_meta"]["totalPages"] == 1
        # A window: SCEDTimestampFrom/To, inclusive, naive Central time.
        start = rows[-5][0]
        _, windowed, _ = await _get(session, fake, LMP, token, settlementPoint="HB_WEST",
                                    SCEDTimestampFrom=start, SCEDTimestampTo=rows[-2][0])  # fmt: skip
        assert [r[0] for r in windowed["data"]] == [r[0] for r in rows[-5:-1]]
        # Pages of 7: every row exactly once, in order, and the meta says so.
        seen: list[Any] = []
        for page in (1, 2, 3, 4, 5, 6):
            _, paged, _ = await _get(session, fake, LMP, token, settlementPoint="HB_WEST",
                                     size="7", page=str(page))  # fmt: skip
            assert paged["_meta"]["currentPage"] == page and paged["_meta"]["pageSize"] == 7
            assert paged["_meta"]["totalPages"] == -(-len(rows) // 7)
            seen += paged["data"]
        assert seen == rows[: len(seen)] and len(seen) == min(len(rows), 42)


async def test_905_rows_are_interval_records_and_sort_desc(fake: RunningFake) -> None:
    today = datetime.now(CENTRAL).date().isoformat()
    async with aiohttp.ClientSession() as session:
        _, token = await _token(session, fake)
        status, body, _ = await _get(session, fake, SPP, token["id_token"], settlementPoint=
                                     "HB_NORTH", deliveryDateTo=today, sort="deliveryHour",
                                     dir="desc")  # fmt: skip
        assert status == 200
        rows = body["data"]
        assert rows and all(r[3] == "HB_NORTH" and r[4] == "HU" and 1 <= r[2] <= 4 for r in rows)
        hours = [r[1] for r in rows]
        assert hours == sorted(hours, reverse=True)
        status, body, _ = await _get(session, fake, SPP, token["id_token"], settlementPt="X")
        assert status == 400 and "settlementPt" in body["message"]


async def test_keys_tokens_limit_and_faults(fake: RunningFake) -> None:
    fake.api.limit_per_min = 5
    async with aiohttp.ClientSession() as session:
        _, token = await _token(session, fake)
        token = token["id_token"]
        async with session.get(fake.base_url + SPP) as resp:
            assert resp.status == 401  # no subscription key
        status, body, _ = await _get(session, fake, SPP, "not-a-token")
        assert "Access token" in body["message"]
        assert status == 401
        fake.api.fail_next(500)
        assert (await _get(session, fake, SPP, token))[0] == 500
        fake.api.fail_next(429, retry_after_s=7)
        status, _, headers = await _get(session, fake, SPP, token)
        assert status == 429 and headers["Retry-After"] == "7"
        fake.api.expire_tokens()
        assert (await _get(session, fake, SPP, token))[0] == 401
        _, token = await _token(session, fake)
        assert (await _get(session, fake, SPP, token["id_token"]))[0] == 200
        # The per-key limit: 5 requests with the key above; the sixth in the minute is refused.
        status, _, headers = await _get(session, fake, SPP, token["id_token"])
        assert status == 429 and int(headers["Retry-After"]) >= 1
        assert fake.api.over_limit == 1
    assert [e.status for e in fake.api.api_requests()] == [401, 401, 500, 429, 401, 200, 429]
