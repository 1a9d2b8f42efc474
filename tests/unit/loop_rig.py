"""A control loop with real components and no network: for tests of containment and the store.

The loop, inputs, applier, observer, metrics and a real SQLite state store are the daemon's
own; MQTT publishes land in a list, and the clock is moved by hand. Pools are MQTT pools, so
every command is a publish the test can read.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from controller.adapters.metrics import Metrics
from controller.adapters.store import DB_NAME, AsyncStateStore
from controller.backoff import BackoffPolicy
from controller.clock import FakeClock
from controller.config import Config
from controller.drivers.health import HealthBoard
from controller.drivers.mqtt_pool import MqttPool
from controller.drivers.outlets import OutletGroup
from controller.feeds.common import FeedRejected
from controller.runtime.apply import Applier
from controller.runtime.inputs import Inputs
from controller.runtime.loop import ControlLoop
from controller.runtime.observe import Observer
from controller.runtime.topics import Topics
from controller.sim.plant import Plant

Publish = Callable[[str, bytes, int, bool], bool]


@dataclass
class Wire:
    """The rig's MQTT: publishes land in `sent`; a test may put a `hook` in front of it."""

    sent: list[tuple[str, bytes, bool]] = field(default_factory=list)
    hook: Publish | None = None

    def __call__(self, topic: str, payload: bytes, qos: int, retain: bool) -> bool:
        if self.hook is not None:
            return self.hook(topic, payload, qos, retain)
        return self.send(topic, payload, qos, retain)

    def send(self, topic: str, payload: bytes, qos: int, retain: bool) -> bool:
        self.sent.append((topic, payload, retain))
        return True


@dataclass
class Rig:
    config: Config
    clock: FakeClock
    loop: ControlLoop
    inputs: Inputs
    metrics: Metrics
    store: AsyncStateStore
    wire: Wire
    plant: Plant

    @property
    def sent(self) -> list[tuple[str, bytes, bool]]:
        return self.wire.sent

    @property
    def prefix(self) -> str:
        return self.config.mqtt.topic_prefix

    def json_on(self, suffix: str) -> list[Any]:
        topic = f"{self.prefix}/{suffix}"
        return [json.loads(p) for t, p, _ in self.sent if t == topic]

    def cmds(self, pool: str) -> list[Any]:
        return self.json_on(f"pools/{pool}/cmd")

    def counter(self, name: str, **labels: str) -> float:
        return self.metrics.registry.get_sample_value(name, labels) or 0.0

    def telemetry(self, power_kw: dict[str, float], seq: dict[str, int] | None = None) -> None:
        """Every pool reports (at `now`) what it is given (else 0 kW, seq 0), the meters too."""
        self.plant.power_kw = {p.name: power_kw.get(p.name, 0.0) for p in self.config.pools}
        self.plant.applied_seq = {p.name: (seq or {}).get(p.name, 0) for p in self.config.pools}
        self._report()

    def follow(self) -> None:
        """Every pool carries out its last command (the plan's targets)."""
        assert self.loop.plan is not None
        self.plant.apply(self.loop.plan)
        self._report()

    def _report(self) -> None:
        self.plant.now = self.clock.now
        self.inputs.pools.update(self.plant.telemetry())
        self.inputs.meters_kw.update(self.plant.meters_kw())

    def message(self, suffix_or_topic: str, doc: dict[str, Any]) -> None:
        self.inputs.on_message(suffix_or_topic, json.dumps(doc).encode(), False)


async def make_rig(config: Config, state_dir: Path, clock: FakeClock | None = None) -> Rig:
    clock = clock or FakeClock()
    publish = Wire()
    metrics = Metrics(config, clock=clock)
    topics = Topics.of(config)
    observer = Observer(topics, clock, metrics, publish, config)

    def on_reject(feed: str, verdict: FeedRejected) -> None:
        observer.rejected(feed, verdict.reason, verdict.detail)

    inputs = Inputs(config, clock, on_reject)
    health = HealthBoard(clock.monotonic, policy=BackoffPolicy())
    # MQTT pools without their PDUs: every command is a publish, none a Modbus write.
    prefix = config.mqtt.topic_prefix
    pools = {
        p.name: MqttPool(
            p, OutletGroup([], health), publish=publish, topic_prefix=prefix, sink=inputs
        )
        for p in config.pools
    }
    inputs.attach_pools(pools.values())
    applier = Applier(pools, clock)
    loop = ControlLoop(config, clock, inputs, applier, publish, observer)
    store = await AsyncStateStore.open(state_dir / DB_NAME)
    loop.store = store
    loop.report.ready = True
    plant = Plant(config, clock.now, tenant_kw={t.name: 9000.0 for t in config.gpu_tenants})
    return Rig(config, clock, loop, inputs, metrics, store, publish, plant)
