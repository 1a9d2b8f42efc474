"""The demo's script: grid events at fixed points of the replay, and the reaction-time record.

Reaction times are measured from outside the daemon, as a grid partner would see them: from
publishing the ECRS instruction to the first and last pool command seen on the broker, and to
the `complied` ack.
"""

from __future__ import annotations

import json
import secrets
import time
from typing import Any

from controller.adapters.mqtt import MqttSession
from controller.app import Daemon
from controller.clock import iso
from controller.config import Config
from controller.sim.site import SimSite

ECRS_ID = "DEMO-ECRS-1"
ECRS_MW = 8.0


class Scenario:
    def __init__(self, config: Config, site: SimSite, daemon: Daemon, feeder: MqttSession):
        self.config = config
        self.site = site
        self.daemon = daemon
        self.feeder = feeder
        self.prefix = config.mqtt.topic_prefix
        self.note = ""
        self._note_until = 0.0
        self._done: set[str] = set()
        self.ecrs_sent_at: float | None = None
        self.ecrs_cmds: list[float] = []
        self.ecrs_complied_at: float | None = None
        self.acks: list[dict[str, Any]] = []
        self._ecrs_at = 2.0  # replay fraction the ECRS went out at (2: not yet)

    def on_message(self, topic: str, payload: bytes, retain: bool) -> None:
        now = time.perf_counter()
        if retain:
            return
        doc = json.loads(payload)
        if topic.endswith("/dispatch/ack"):
            self.acks.append(doc)
            if doc.get("id") == ECRS_ID and doc.get("status") == "complied":
                self.ecrs_complied_at = self.ecrs_complied_at or now
        elif topic.endswith("/cmd") and doc.get("reason") == f"dispatch:{ECRS_ID}":
            self.ecrs_cmds.append(now)

    async def at_progress(self, fraction: float, record: dict[str, Any]) -> None:
        if time.monotonic() > self._note_until:
            self.note = ""
        plan = self.daemon.loop.plan
        fleet_kw = sum(p.max_kw for p in self.config.pools)
        mining_kw = 0.0 if plan is None else plan.mining_measured_kw
        busy = mining_kw >= 0.6 * fleet_kw
        if "ecrs" not in self._done and (fraction >= 0.5 or (fraction >= 0.3 and busy)):
            self._done.add("ecrs")  # deployed while most of the fleet mines, to show the cut
            self._ecrs()
            self._ecrs_at = fraction
        steps = [
            (self._ecrs_at + 0.1, "recall", self._recall),
            (0.55, "override", self._override),
            (0.68, "gpu-surge", self._gpu_surge),
            (0.78, "gpu-normal", self._gpu_normal),
            (0.86, "freq-dip", self._frequency_dip),
            (0.88, "freq-ok", self._frequency_ok),
        ]
        for at, name, action in steps:
            if fraction >= at and name not in self._done:
                self._done.add(name)
                action()

    def _say(self, text: str, seconds: float = 1.5) -> None:
        self.note = f"<< {text}"
        self._note_until = time.monotonic() + seconds

    def _dispatch(self, doc: dict[str, Any]) -> None:
        self.feeder.publish(self.config.feeds.dispatch_topic, json.dumps(doc), 1, False)

    def _ecrs(self) -> None:
        self.ecrs_sent_at = time.perf_counter()
        self._dispatch(
            {
                "id": ECRS_ID,
                "type": "ECRS",
                "mw": ECRS_MW,
                "notified_at": iso(time.time()),
                "deadline_s": 600,
            }
        )
        self._say(f"QSE: ECRS deploy {ECRS_MW:g} MW")

    def _recall(self) -> None:
        self._dispatch(
            {
                "id": f"{ECRS_ID}-recall",
                "type": "RECALL",
                "recall_id": ECRS_ID,
                "notified_at": iso(time.time()),
            }
        )
        self._say("QSE: ECRS recalled")

    def _override(self) -> None:
        doc = {
            "mode": "limit",
            "limit_kw": 12000,
            "ttl_s": 4,
            "operator": "demo",
            "reason": "breaker maintenance",
            "issued_at": iso(time.time()),
            "nonce": secrets.token_hex(6),
        }
        self.feeder.publish(f"{self.prefix}/override/set", json.dumps(doc), 1, False)
        self._say("operator: limit mining to 12 MW for 4 s")

    def _gpu_surge(self) -> None:
        self.site.gpu_kw["tenant-a"] = 24000.0
        self._say("GPU tenant surges to 24 MW (firm 20 MW)")

    def _gpu_normal(self) -> None:
        self.site.gpu_kw["tenant-a"] = 18000.0
        self._say("GPU tenant back to 18 MW")

    def _frequency_dip(self) -> None:
        self.site.set_frequency_hz(59.6)
        self._say("grid frequency 59.6 Hz: ufr pools trip")

    def _frequency_ok(self) -> None:
        self.site.set_frequency_hz(60.0)
        self._say("frequency back to 60 Hz (ufr pools wait 5 s, then the price band)")

    def summary(self) -> str:
        lines = ["", "demo summary"]
        if self.ecrs_sent_at is not None and self.ecrs_cmds:
            first = (self.ecrs_cmds[0] - self.ecrs_sent_at) * 1000
            last = (self.ecrs_cmds[-1] - self.ecrs_sent_at) * 1000
            lines.append(
                f"  ECRS {ECRS_MW:g} MW, seen from a broker client: first pool command "
                f"{first:.1f} ms, last {last:.1f} ms after the instruction was published"
            )
            if self.ecrs_complied_at is not None:
                complied = (self.ecrs_complied_at - self.ecrs_sent_at) * 1000
                lines.append(
                    f"  ECRS complied ack {complied:.0f} ms after the instruction "
                    "(pool agents answer after 0.1 s, PLCs are polled every 0.25 s)"
                )
                timeout_ms = self.config.control.confirm_timeout_s * 1000
                if complied > timeout_ms:
                    lines.append(
                        "    the stuck pool s17-a was running: compliance waited for its PDU "
                        f"cut after confirm_timeout_s ({timeout_ms:.0f} ms), as I9 says"
                    )
        inside = [r for r in self.daemon.observer.reactions if r[0] == "dispatch"]
        if inside:
            _, first_s, last_s = inside[0]
            lines.append(
                f"  inside the daemon: message arrival to first command {first_s * 1e3:.2f} ms,"
                f" to last {last_s * 1e3:.2f} ms"
            )
        protected = sum(
            sum(self.site.pdus[p.name].coil_writes) for p in self.config.pdus if p.protected
        )
        escalations = sum(
            sum(self.site.pdus[n].coil_writes) for n in ("pdu-s17-a-1", "pdu-s17-a-2")
        )
        lines.append(f"  writes to the GPU tenant's protected PDUs: {protected} (I1)")
        lines.append(f"  outlet writes on the stuck pool s17-a's PDUs (escalation): {escalations}")
        statuses: dict[str, list[str]] = {}
        for ack in self.acks:
            statuses.setdefault(str(ack.get("id")), []).append(str(ack.get("status")))
        for msg_id, seen in statuses.items():
            lines.append(f"  dispatch {msg_id}: {' -> '.join(str(s) for s in seen)}")
        return "\n".join(lines)
