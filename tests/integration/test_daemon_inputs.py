"""The real daemon against bad input and operator overrides (I1, I10, CONTRACT 2.3)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from controller.config import MqttConfig
from controller.feeds.override import sign_override
from tests.integration.site import iso_now, live_site
from tests.support import eventually

KEY = b"site-secret-key"


def override(mode: str, nonce: str, ttl_s: int | None = 60, **extra: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {"mode": mode, "operator": "jdoe", "reason": "test",
                           "issued_at": iso_now(), "nonce": nonce, **extra}  # fmt: skip
    if ttl_s is not None:
        doc["ttl_s"] = ttl_s
    return doc


async def test_signed_override_ttl_expiry_and_rejections(
    mqtt_cfg: MqttConfig, tmp_path: Path
) -> None:
    key_file = tmp_path / "override.key"
    key_file.write_bytes(KEY + b"\n")
    async with live_site(mqtt_cfg, tmp_path, override={"hmac_key_file": str(key_file)}) as site:
        topic, state_topic = f"{site.prefix}/override/set", f"{site.prefix}/override/state"
        await site.price(20.0)
        await eventually(lambda: site.sim.mining_kw() == pytest.approx(11216), 5)

        async def send(doc: dict[str, Any], expect: str | None) -> Any:
            """Publish; the override/state answering it (refused with `expect`, or accepted)."""
            mark = site.probe.mark()
            await site.probe.publish(topic, json.dumps(doc))

            def answers(state: Any) -> bool:
                error = state["last_error"] or ""
                return expect in error if expect else state["active"] and not error

            return await site.probe.wait_json(state_topic, answers, since=mark)

        unsigned = await send(override("curtail", "n1"), "missing_signature")
        assert unsigned["active"] is False
        await send({**override("curtail", "n2"), "sig": "00" * 32}, "bad_signature")
        stale = sign_override(override("curtail", "n3", issued_at=iso_now(-3600)), KEY)
        await send(stale, "expired")
        skewed = sign_override(override("curtail", "n5", ttl_s=7200, issued_at=iso_now(-600)), KEY)
        await send(skewed, "clock_skew")
        assert site.sim.mining_kw() == pytest.approx(11216)  # I10: nothing moved

        good = sign_override(override("curtail", "n4", ttl_s=2), KEY)
        accepted = await send(good, None)
        assert (accepted["mode"], accepted["operator"]) == ("curtail", "jdoe")
        await eventually(lambda: site.sim.mining_kw() == 0.0, 5)
        replay = await send(good, "replayed_nonce")
        assert replay["active"] is True  # the refused replay leaves the override as it was
        # The TTL runs out: the override clears itself and mining returns through the band.
        await site.probe.wait_json(state_topic, lambda d: d["active"] is False, 5)
        await eventually(lambda: site.sim.mining_kw() == pytest.approx(11216), 5)


async def test_malformed_burst_touches_no_device(mqtt_cfg: MqttConfig, tmp_path: Path) -> None:
    async with live_site(mqtt_cfg, tmp_path) as site:
        await site.price(20.0)
        await eventually(lambda: site.sim.mining_kw() == pytest.approx(11216), 5)
        await asyncio.sleep(0.5)
        coil_writes = [list(p.coil_writes) for p in site.sim.pdus.values()]
        plc_writes = site.sim.plcs["plc1"].setpoint_writes
        commands = {n: a.commands_received for n, a in site.sim.agents.items()}
        price_topic = f"{site.prefix}-ercot/prices/rt"
        bad: list[tuple[str, bytes]] = [
            (price_topic, b"{not json"),
            (price_topic, b'{"SCEDTimestamp":"x","repeatHourFlag":false,"settlementPoint":"HB_WEST","LMP":"9"}'),
            (price_topic, b'{"SCEDTimestamp":"2024-01-01T00:00:00","repeatHourFlag":false,"settlementPoint":"HB_WEST","LMP":NaN}'),
            (price_topic, b"[1,2,3]"),
            (site.config.feeds.dispatch_topic, b'{"id":"x","type":"ECRS","mw":-5,"notified_at":"2024-01-01T00:00:00+00:00"}'),
            (site.config.feeds.dispatch_topic, b'{"id":"y","type":"WARP","notified_at":"2024-01-01T00:00:00+00:00"}'),
            (site.config.feeds.dispatch_topic, b'{"id":"z","type":"CLR","mw":true,"notified_at":"2024-01-01T00:00:00+00:00"}'),
            (f"{site.prefix}/override/set", b'{"mode":"curtail","ttl_s":60.0}'),
            (f"{site.prefix}/override/set", b"\xff\xfe"),
            (f"{site.prefix}/pools/a1/state", b'{"seq":true,"power_kw":1,"available_kw":1}'),
            (f"{site.prefix}/pools/a1/state", b'{"seq":1,"power_kw":1e12,"available_kw":1}'),
        ] * 20  # fmt: skip
        for topic, payload in bad:
            await site.probe.publish(topic, payload)
        events, acks = f"{site.prefix}/events", f"{site.prefix}/dispatch/ack"

        def rejected_feeds() -> set[str]:
            docs = [m.json() for m in site.probe.on(events)]
            return {d["feed"] for d in docs if d["event"] == "rejected"}

        def rejected_acks() -> set[str]:
            docs = [m.json() for m in site.probe.on(acks)]
            return {d["id"] for d in docs if d["status"] == "rejected"}

        # Every rejection is reported on events; each bad dispatch instruction is acked.
        await eventually(
            lambda: rejected_feeds() >= {"price", "dispatch", "override", "pool_state"}, 10
        )
        await eventually(lambda: rejected_acks() == {"x", "y", "z"}, 10)
        await asyncio.sleep(0.5)  # let anything the burst would have caused reach the devices
        assert site.process.poll() is None  # still running
        assert [list(p.coil_writes) for p in site.sim.pdus.values()] == coil_writes
        assert site.sim.plcs["plc1"].setpoint_writes == plc_writes
        assert {n: a.commands_received for n, a in site.sim.agents.items()} == commands
        assert site.sim.mining_kw() == pytest.approx(11216)
