"""The real daemon holding an ancillary-service award (CONTRACT 2.2 AWARD, I12): through a price
spike, a LIMIT that cuts into it (shortfall, then complied), and a kill -9."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from controller.config import MqttConfig
from tests.integration.documents import award, limit, recall
from tests.integration.faults import Sampler
from tests.integration.site import FLEET_KW, live_site
from tests.support import eventually

SPIKE = 5000.0  # over every pool's breakeven: without an award the site would go to 0


async def test_award_holds_through_a_spike_reports_a_limit_and_survives_kill9(
    mqtt_cfg: MqttConfig, tmp_path: Path
) -> None:
    async with live_site(mqtt_cfg, tmp_path) as site:
        await site.run_every_pool(FLEET_KW)
        mark = site.probe.mark()
        await site.dispatch(award("AS-1", "RRS", 2.0))
        accepted = await site.ack("AS-1", "accepted", since=mark)
        assert accepted["target_kw"] == pytest.approx(2000.0)
        await site.ack("AS-1", "complied", since=mark)

        # A price spike: 2 MW stay on, on a2 (the ufr pool), at part load; the rest curtail.
        await site.price(SPIKE)
        plan = await site.plan(lambda p: site.targets(p)["a1"] == 0.0, since=mark)
        assert site.targets(plan) == {"a1": 0.0, "a2": 2000.0, "a3": 0.0, "plc1": 0.0, "px": 0.0}
        assert plan["pools"]["a2"]["reason"] == "dispatch:AS-1"
        await eventually(lambda: site.sim.mining_kw() == pytest.approx(2000.0), 5)
        state = site.last(f"{site.prefix}/dispatch/state")
        (listed,) = state["obligations"]
        assert (listed["type"], listed["product"], listed["cap_kw"]) == ("AWARD", "RRS", None)
        assert (listed["floor_kw"], listed["status"]) == (2000.0, "complied")
        view = await site.wait_metric("curtaild_award_watts", lambda w: w == 2e6, product="RRS")
        assert view.value("curtaild_dispatch_active", type="AWARD") == 1.0

        # A LIMIT leaving 500 kW of mining (12 MW - 0.5 margin - 10 GPU - 1 aux): shortfall.
        mark = site.probe.mark()
        await site.dispatch(limit("L1", 12.0))
        short = await site.ack("AS-1", "shortfall", since=mark)
        assert short["target_kw"] == pytest.approx(2000.0)
        assert short["reason"].startswith("missing ")
        await eventually(lambda: site.sim.mining_kw() <= 500.0 + 1e-6, 5)
        await site.wait_metric("curtaild_dispatch_shortfall_watts", lambda w: w >= 1.4e6)
        await site.dispatch(recall("L1"))
        await site.ack("AS-1", "complied", since=mark)
        await eventually(lambda: site.sim.mining_kw() == pytest.approx(2000.0), 5)

        # kill -9 and restart in the spike: the award is read back and still holds its floor.
        async with Sampler(site.sim.mining_kw) as mining:
            await site.kill9()
            restarted = site.probe.mark()
            await site.restart()
            await site.price(SPIKE)
            await asyncio.sleep(2.0)
        low_kw = min(kw for _, kw in mining.samples)
        assert low_kw >= 2000.0 - 1e-6, f"mining fell to {low_kw:.0f} kW around the restart"
        state = await site.probe.wait_json(
            f"{site.prefix}/dispatch/state", lambda d: d["obligations"], since=restarted
        )
        assert [(o["id"], o["status"]) for o in state["obligations"]] == [("AS-1", "complied")]
        assert site.sim.mining_kw() == pytest.approx(2000.0)

        # A RECALL ends the award: price curtails everything.
        await site.dispatch(recall("AS-1"))
        await eventually(lambda: site.sim.mining_kw() == 0.0, 5)
        assert site.protected_writes() == 0
