"""SIGHUP reload (section 7 "Config"): all or nothing, READY again either way, and a valid
reload reaching every part of the daemon (the cap, escalation timing, stale-price policy)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from controller.config import MqttConfig
from tests.integration.documents import edit_toml, override
from tests.integration.faults import expect
from tests.integration.site import FLEET_KW, live_site
from tests.support import eventually

KEY = b"reload-test-key"


async def test_reload_with_unreadable_key_file_is_refused_as_a_whole(
    mqtt_cfg: MqttConfig, tmp_path: Path
) -> None:
    key_file = tmp_path / "override.key"
    key_file.write_bytes(KEY + b"\n")
    async with live_site(
        mqtt_cfg, tmp_path, notify=True, override={"hmac_key_file": str(key_file)}
    ) as site:
        assert site.notify is not None
        await site.run_every_pool(FLEET_KW)
        site.config_path.write_text(edit_toml(site.config_path.read_text(), {
            "override.hmac_key_file": str(tmp_path / "no-such.key"),
            "site.margin_kw": 2500.0,  # must not apply either: the file is refused whole
        }))  # fmt: skip
        mark, notified = site.probe.mark(), site.notify.mark()
        site.reload()
        refused = await expect(
            site.probe.wait_json(
                f"{site.prefix}/events", lambda e: e["event"] == "reload_refused", since=mark
            ),
            "SIGHUP with an unreadable hmac_key_file: no reload_refused event",
        )
        assert any("hmac_key_file" in p for p in refused["problems"]), refused
        reloading_at = await site.notify.wait_for("RELOADING=1", 3.0, since=notified)
        ready_at = await site.notify.wait_for("READY=1", 3.0, since=notified)
        assert reloading_at <= ready_at
        assert site.alive()
        await site.wait_metric("curtaild_mining_cap_watts", lambda w: w == pytest.approx(18.5e6))
        # The running key still verifies overrides.
        mark = site.probe.mark()
        await site.send_override(override("limit", ttl_s=60, key=KEY, limit_kw=4000))
        state = await site.probe.wait_json(
            f"{site.prefix}/override/state", lambda d: d["active"] or d["last_error"], since=mark
        )
        assert (state["active"], state["mode"], state["last_error"]) == (True, "limit", None)
        await eventually(lambda: site.sim.mining_kw() <= 4000 * 1.02 + 1, 5)


async def test_valid_reload_takes_effect_everywhere(mqtt_cfg: MqttConfig, tmp_path: Path) -> None:
    stale_s = 6.0
    async with live_site(
        mqtt_cfg, tmp_path, notify=True, stuck=frozenset({"a3"}),
        feeds={"price_stale_s": stale_s, "on_price_stale": "hold"},
    ) as site:  # fmt: skip
        assert site.notify is not None
        await site.run_every_pool(FLEET_KW)
        site.config_path.write_text(edit_toml(site.config_path.read_text(), {
            "site.margin_kw": 1500.0,
            "control.confirm_timeout_s": 3.0,
            "feeds.on_price_stale": "curtail",
        }))  # fmt: skip
        mark, notified = site.probe.mark(), site.notify.mark()
        site.reload()
        await site.probe.wait_json(
            f"{site.prefix}/events", lambda e: e["event"] == "reloaded", since=mark
        )
        await site.notify.wait_for("RELOADING=1", 3.0, since=notified)
        await site.notify.wait_for("READY=1", 3.0, since=notified)
        # margin_kw: 30000 - 10000 GPU - 1000 aux - 1500 margin.
        await site.plan(lambda p: p["mining_cap_kw"] == pytest.approx(17500), since=mark)
        await site.wait_metric("curtaild_mining_cap_watts", lambda w: w == pytest.approx(17.5e6))

        # confirm_timeout_s: the stuck pool a3 is cut 3 s after its command, not 1 s.
        await site.price(20.0)
        mark = site.probe.mark()
        await site.send_override(override("curtail", ttl_s=60))
        await site.probe.wait_json(f"{site.prefix}/pools/a3/cmd", lambda d: d["target_kw"] == 0,
                                   since=mark)  # fmt: skip
        commanded_at = site.cmds("a3", mark)[-1][0]
        await eventually(lambda: not any(site.sim.pdus["pdu-a3"].outlets_on), 6)
        cut_after_s = time.monotonic() - commanded_at
        assert cut_after_s >= 3.0 - 0.2, f"escalated {cut_after_s:.2f} s after the command"

        # on_price_stale = "curtail": once the last price is stale, mining is curtailed.
        mark = site.probe.mark()
        await site.price(20.0)
        await site.send_override(override("auto", ttl_s=None))
        await site.probe.wait_json(f"{site.prefix}/override/state",
                                   lambda d: d["active"] is False, since=mark)  # fmt: skip
        await eventually(lambda: site.sim.agents["a1"].power_kw == 3000.0, 5)
        await site.plan(lambda p: "price_stale" in p["failsafe"]
                        and all(t == 0 for t in site.targets(p).values()),
                        stale_s + 3.0, since=mark)  # fmt: skip
        await eventually(lambda: site.sim.agents["a1"].power_kw == 0.0, 3)
