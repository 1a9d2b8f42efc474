"""mosquitto restarted (no persistence: every retained message gone) in the middle of an ECRS
deployment: the daemon republishes what it owns and the deployment goes on (section 7)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from tests.integration.documents import ecrs, sced
from tests.integration.faults import Sampler, at_most
from tests.integration.site import FLEET_KW, live_site
from tests.support import MosquittoBroker, MqttProbe

MQTT_POOLS = ("a1", "a2", "a3")


async def test_broker_restart_mid_deployment(fresh_broker: MosquittoBroker, tmp_path: Path) -> None:
    mqtt = fresh_broker.mqtt_config()
    async with live_site(mqtt, tmp_path) as site:
        prefix = site.prefix
        await site.run_every_pool(FLEET_KW)
        mark = site.probe.mark()
        await site.dispatch(ecrs("E1", 5.0))
        cap_kw = (await site.ack("E1", "accepted", since=mark))["target_kw"]
        await site.ack("E1", "complied", since=mark)
        await asyncio.sleep(0.5)
        before = site.last(f"{prefix}/dispatch/state")["obligations"]
        # Pools the daemon has commanded (one never commanded has no cmd to republish).
        cmds = {pool: site.cmds(pool)[-1][1] for pool in MQTT_POOLS if site.cmds(pool)}
        assert cmds, "the ECRS commanded no agent pool"

        async with Sampler(site.sim.mining_kw) as mining:
            await asyncio.to_thread(fresh_broker.restart, 1.0)
            # The site's probe went down with the broker; a new client sees what came back.
            async with MqttProbe(mqtt.host, mqtt.port, [f"{prefix}/#"]) as after:
                wanted = {f"{prefix}/{t}" for t in ("status", "plan", "override/state",
                                                    "dispatch/state")}  # fmt: skip
                wanted |= {f"{prefix}/pools/{pool}/cmd" for pool in cmds}

                def seen() -> dict[str, bytes]:
                    return {m.topic: m.payload for m in after.messages if m.payload}

                deadline = time.monotonic() + 10
                while not wanted <= set(seen()):
                    missing = wanted - set(seen())
                    assert time.monotonic() < deadline, f"not republished: {sorted(missing)}"
                    await asyncio.sleep(0.05)
                got = {topic: after.on(topic)[-1].json() for topic in wanted}
                # A cheap price once the broker is back: the deployment still holds (I5).
                await after.publish(f"{prefix}-ercot/prices/rt", sced(-25.0))
                await asyncio.sleep(1.5)
        assert got[f"{prefix}/status"]["state"] == "online"
        assert got[f"{prefix}/dispatch/state"]["obligations"] == before
        assert got[f"{prefix}/plan"]["binding"] == "dispatch:E1"
        for pool in cmds:
            again = got[f"{prefix}/pools/{pool}/cmd"]
            assert (again["seq"], again["target_kw"]) == (cmds[pool]["seq"],
                                                          cmds[pool]["target_kw"])  # fmt: skip
        peak_kw = mining.peak()[1]
        assert peak_kw <= at_most(cap_kw), f"mining {peak_kw:.0f} kW over the ECRS cap {cap_kw}"
        assert site.sim.mining_kw() >= cap_kw * 0.98  # complied, not over-curtailed
