"""Prometheus metrics (CONTRACT section 6): one `Metrics` object per daemon, served from a thread.

Every contract metric is here under its contract name and labels, in base units: kW from the
core are multiplied by 1000 on the way out. Extras, each chosen to answer a question the contract
metrics cannot:
- `curtaild_pool_state{pool,state}`: 1 for the pool's current plan state (running, curtailed,
  ramping, escalated, faulted, tripped), 0 for the others: "which pools are escalated" is a query.
- `curtaild_binding{binding}`: 1 for the kind of limit that binds the mining cap (safety,
  dispatch, override, eea, 4cp, frequency, price). The plan's "dispatch:ID" is cut to "dispatch":
  an instruction id as a label value would grow the series without bound.
- `curtaild_safety_envelope_watts`: the envelope of I2, to compare the cap against.
- `curtaild_commands_total{driver}`: commands written per driver kind (mqtt, modbus, pdu).
- `curtaild_internal_errors_total{where}`: exceptions contained in a stage (message, decision,
  store, apply, publish, metrics, poll, reload, events, replica); the daemon went on (I10).
- `curtaild_command_failures_total{driver}`: commands a device refused or did not answer, per
  driver kind (the device's health and `curtaild_device_up` say which device).
- `curtaild_mqtt_connected`: the broker session is up (every feed depends on it).
- `curtaild_ha_leader{node}`, `curtaild_ha_epoch{node}`: with `[ha] enabled`, 1 and the epoch
  while this node leads its pair, 0 and 0 while it stands by (docs/ha.md); a pair should show
  one 1. No series without `[ha]`.
- `curtaild_mqtt_reconnects_total`: broker sessions established again after a loss (the MQTT
  adapter's reconnect loop reports them): a steady rate is a flapping link.
- `curtaild_dispatch_deadline_timestamp_seconds`: the earliest deadline (epoch s) of a deployment
  (RRS, ECRS, NSRS, ERS10, ERS30) not complied yet; NaN when there is none. One series, not one
  per instruction id: ids are unbounded, and "some deployment is late" is the question an alert
  asks (`time() > ...`); which one is on `dispatch/state`. A timestamp rather than "seconds
  left": it stays right between decisions and after the daemon stops updating it.
- `curtaild_poi_limit_watts`: the POI import limit of the config, to compare the site meter with.
- `curtaild_build_info{version}`: always 1; joins a version onto any other series.
- the standard `process_*` and `python_*` collectors (memory, CPU, fds, start time).
There is no `curtaild_decisions_total`: `curtaild_decision_duration_seconds_count` is that count.

Cost on the hot path: labelled children are cached in dicts (an observe on a cached child is
about 1 us, `.labels()` each time about 2.7 us). The four per-pool and per-device families are
`GaugeTable`s (metrics_table.py): plain dicts the loop writes, rendered to text only when they
changed, so a scrape at site scale costs a few ms of GIL rather than tens (issue 9).
This adapter knows gauges and counters, not decisions: the runtime's `MetricsView` turns each
Decision and Snapshot into the calls below, for what changed only (DESIGN point 11).

`_created` series are off unless PROMETHEUS_DISABLE_CREATED_SERIES is set explicitly: they add
one series per counter and histogram child that Prometheus 2.x scrapes as a plain gauge and
nothing here uses (counter resets are detected without them). The switch is process-wide in
prometheus-client; the daemon is the only user of the library in its process.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from typing import TypeVar, get_args

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    GCCollector,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    disable_created_metrics,
)
from prometheus_client.exposition import choose_encoder
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from controller import __version__
from controller.adapters.metrics_server import MetricsServer, start_server
from controller.adapters.metrics_table import GaugeTable, TableCollector
from controller.clock import Clock, SystemClock
from controller.config import Config
from controller.model import AWARD_PRODUCTS, DispatchType, PriceProduct

W_PER_KW = 1000.0
NAN = float("nan")

FAILSAFE_REASONS = ("price_stale", "dispatch_stale", "site_meter_stale", "decision_budget")
# The plan states of CONTRACT 7 (the core's PoolStateName; tests/unit/test_metrics.py checks).
POOL_STATES = ("running", "curtailed", "ramping", "escalated", "faulted", "tripped")
BINDINGS = ("safety", "dispatch", "override", "eea", "4cp", "frequency", "price")
DISPATCH_TYPES = tuple(
    t.value for t in DispatchType if t not in (DispatchType.RECALL, DispatchType.HEARTBEAT)
)
PRICE_PRODUCTS: tuple[str, ...] = get_args(PriceProduct)
FEEDS = ("price", "dispatch", "override", "pool_state", "hashprice")
TRIGGERS = ("price", "dispatch", "override", "pool", "frequency", "tick")
# The closed label set of CONTRACT section 6 (driver kinds; outlet writes count as "pdu"): a
# label, never a branch. tests/drivers/test_registry.py checks it against drivers/kinds.py.
DRIVERS = ("mqtt", "modbus", "pdu")
# Where an unexpected exception was contained (I10, CONTRACT 7 Faults inside the daemon).
INTERNAL_ERROR_STAGES = (
    "message", "decision", "store", "apply", "publish", "metrics", "poll", "reload", "events",
)  # fmt: skip


def _buckets(low_exp: int, high_exp: int) -> tuple[float, ...]:
    """1, 2.5, 5 per decade from 10**low_exp up to 10**high_exp (parsed: exact bucket labels)."""
    steps = [float(f"{m}e{e}") for e in range(low_exp, high_exp) for m in ("1", "2.5", "5")]
    return (*steps, float(f"1e{high_exp}"))


# A decision is pure arithmetic over a few hundred pools (tens of us) with a 1 s budget.
DECISION_BUCKETS_S = _buckets(-5, 0)  # 10 us .. 1 s
# Message arrival to commands on the wire: sub-ms on loopback, seconds when something waits.
EVENT_BUCKETS_S = _buckets(-4, 1)  # 100 us .. 10 s
# Command to telemetry confirming it: agents report about every second; timeouts are seconds.
CONFIRM_BUCKETS_S = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0)


class Metrics:
    """Every curtaild metric in its own registry (tests build many; nothing global is touched)."""

    def __init__(
        self,
        config: Config | None = None,
        *,
        clock: Clock | None = None,
        version: str = __version__,
    ) -> None:
        if "PROMETHEUS_DISABLE_CREATED_SERIES" not in os.environ:
            disable_created_metrics()  # type: ignore[no-untyped-call]
        # `_rest`: what prometheus-client renders per scrape (a few hundred series); `registry`:
        # every family, the tables included, for collect() and get_sample_value (tests, docs).
        self._rest = r = CollectorRegistry(auto_describe=True)
        self._clock = clock or SystemClock()
        self._started_at = self._clock.time()
        ProcessCollector(registry=r)
        PlatformCollector(registry=r)
        GCCollector(registry=r)

        def gauge(name: str, doc: str, *labels: str) -> Gauge:
            return Gauge(name, doc, labels, registry=r)

        def counter(name: str, doc: str, *labels: str) -> Counter:
            return Counter(name, doc, labels, registry=r)

        def histogram(name: str, doc: str, buckets: tuple[float, ...], *labels: str) -> Histogram:
            return Histogram(name, doc, labels, buckets=buckets, registry=r)

        self.price = gauge("curtaild_price_usd_per_mwh", "Newest price record, $/MWh", "product")
        self.site_power = gauge("curtaild_site_power_watts", "Site meter: import at the POI")
        self.gpu_power = gauge("curtaild_gpu_power_watts", "GPU tenant meters", "tenant")
        self.gpu_reserved = gauge("curtaild_gpu_reserved_watts", "Sum of max(firm, measured) (I3)")
        self.mining_power = gauge("curtaild_mining_power_watts", "Mining load, measured")
        self.mining_cap = gauge("curtaild_mining_cap_watts", "Least of every limit (I2)")
        self.mining_target = gauge("curtaild_mining_target_watts", "Sum of pool targets")
        self.envelope = gauge("curtaild_safety_envelope_watts", "Safety envelope (I2)")
        self.pool_target = GaugeTable("curtaild_pool_target_watts", "Pool target", ("pool",))
        self.pool_power = GaugeTable("curtaild_pool_power_watts", "Pool load, measured", ("pool",))
        self.pool_state = GaugeTable(
            "curtaild_pool_state", "1 for the plan state", ("pool", "state")
        )
        self.dispatch_active = gauge("curtaild_dispatch_active", "Active obligations", "type")
        self.shortfall = gauge("curtaild_dispatch_shortfall_watts", "Reduction not delivered")
        self.award = gauge(
            "curtaild_award_watts", "Ancillary-service awards active, per product", "product"
        )
        self.override_active = gauge("curtaild_override_active", "1 while an override is in force")
        self.failsafe = gauge("curtaild_failsafe_active", "1 while a fail-safe holds", "reason")
        self.binding = gauge("curtaild_binding", "1 for the limit setting the cap", "binding")
        self.device_up = GaugeTable("curtaild_device_up", "1 reachable, 0 down", ("device",))
        self._tables = (self.pool_state, self.pool_target, self.pool_power, self.device_up)
        self.registry = CollectorRegistry(auto_describe=True)
        self.registry.register(TableCollector(self._tables))
        self.registry.register(_Chain(r))
        self.feed_age = gauge(
            "curtaild_feed_age_seconds", "Since the last valid message (or start)", "feed"
        )
        self.mqtt_connected = gauge("curtaild_mqtt_connected", "1 while the broker session is up")
        # Labelled by node so that a single daemon ([ha] off) exports no series at all: the
        # pair's alert rules then see nothing to judge.
        self.ha_leader = gauge(
            "curtaild_ha_leader", "1 while this node leads its active/standby pair", "node"
        )
        self.ha_epoch = gauge(
            "curtaild_ha_epoch", "The epoch this node leads under (0: standby)", "node"
        )
        self.poi_limit = gauge("curtaild_poi_limit_watts", "POI import limit (config)")
        self.deadline = gauge(
            "curtaild_dispatch_deadline_timestamp_seconds",
            "Earliest deadline of a deployment not complied yet (epoch s); NaN when none",
        )
        self.build_info = gauge("curtaild_build_info", "Always 1; the version label", "version")
        self.rejected = counter(
            "curtaild_messages_rejected", "Inbound messages dropped", "feed", "reason"
        )
        self.protected_refused = counter(
            "curtaild_protected_write_refused", "Writes aimed at a protected PDU, refused (I1)"
        )
        self.commands = counter("curtaild_commands", "Commands written", "driver")
        self.command_failures = counter(
            "curtaild_command_failures", "Commands a device refused or missed", "driver"
        )
        self.mqtt_reconnects = counter(
            "curtaild_mqtt_reconnects", "Broker sessions established again after a loss"
        )
        self.internal_errors = counter(
            "curtaild_internal_errors",
            "Exceptions contained, by stage; the daemon went on",
            "where",
        )
        self.decisions_over_budget = counter(
            "curtaild_decisions_over_budget",
            "Decisions slower than control.decision_budget_ms, or that raised",
        )
        self.decision_duration = histogram(
            "curtaild_decision_duration_seconds", "decide() wall time", DECISION_BUCKETS_S
        )
        self.event_to_command = histogram(
            "curtaild_event_to_command_seconds",
            "Message arrival to commands on the wire",
            EVENT_BUCKETS_S,
            "trigger",
        )
        self.command_confirm = histogram(
            "curtaild_command_confirm_seconds",
            "Command to the telemetry confirming it",
            CONFIRM_BUCKETS_S,
            "driver",
        )

        self.build_info.labels(version).set(1)
        # Closed label sets are created up front: a series that exists at 0 makes rate() and
        # alerts work from the first event, and the dashboards show every reason.
        self._failsafe = {k: self.failsafe.labels(k) for k in FAILSAFE_REASONS}
        self._binding = {k: self.binding.labels(k) for k in BINDINGS}
        self._dispatch = {k: self.dispatch_active.labels(k) for k in DISPATCH_TYPES}
        self._award = {k: self.award.labels(k) for k in AWARD_PRODUCTS}
        self._price = {k: self.price.labels(k) for k in PRICE_PRODUCTS}
        for child in self._price.values():
            child.set(NAN)  # no price yet: unknown, not $0
        self._triggers = {k: self.event_to_command.labels(k) for k in TRIGGERS}
        self._confirm = {k: self.command_confirm.labels(k) for k in DRIVERS}
        self._commands = {k: self.commands.labels(k) for k in DRIVERS}
        self._command_failures = {k: self.command_failures.labels(k) for k in DRIVERS}
        self._internal = {k: self.internal_errors.labels(k) for k in INTERNAL_ERROR_STAGES}
        self._feed_seen_at: dict[str, float] = {}
        self._feed_age = {k: self._age_child(k) for k in FEEDS}
        self._rejected: dict[tuple[str, str], Counter] = {}
        self._gpu: dict[str, Gauge] = {}
        self.site_power.set(NAN)
        self.poi_limit.set(NAN)
        self.deadline.set(NAN)
        self._deadline_s = NAN

        self._pool_states: dict[str, set[str]] = {}  # the state labels each pool has a series for
        self._pool_power: set[str] = set()
        self._devices: set[str] = set()
        self._failsafe_now: frozenset[str] = frozenset()
        self._binding_now = ""
        self._shortfall_w = 0.0
        if config is not None:
            self.configure(config)

    # -- configuration -------------------------------------------------------------------------

    def configure(self, config: Config) -> None:
        """On reload, drop the series of pools, tenants and devices now gone."""
        tenants = {t.name for t in config.gpu_tenants}
        pools = {p.name for p in config.pools}
        devices = {m.name for m in config.meters} | {p.name for p in config.pdus} | pools
        self.poi_limit.set(config.site.poi_limit_kw * W_PER_KW)
        for name in [n for n in self._pool_states if n not in pools]:
            self.pool_target.remove((name,))
            for state in self._pool_states.pop(name):
                self.pool_state.remove((name, state))
        _drop_rows(self.pool_power, self._pool_power, pools)
        _drop(self.gpu_power, self._gpu, tenants)
        _drop_rows(self.device_up, self._devices, devices)

    # -- the plan (the runtime's MetricsView calls these on changes only) ------------------------

    def set_plan_kw(
        self, cap_kw: float, target_kw: float, measured_kw: float, gpu_reserved_kw: float,
        envelope_kw: float,
    ) -> None:  # fmt: skip
        self.mining_cap.set(cap_kw * W_PER_KW)
        self.mining_target.set(target_kw * W_PER_KW)
        self.mining_power.set(measured_kw * W_PER_KW)
        self.gpu_reserved.set(gpu_reserved_kw * W_PER_KW)
        self.envelope.set(envelope_kw * W_PER_KW)

    def set_binding(self, binding: str) -> None:
        """The plan's binding; "dispatch:ID" shows as "dispatch" (ids would grow the series)."""
        if binding == self._binding_now:
            return
        kind = binding.partition(":")[0]
        old = self._binding_now.partition(":")[0]
        self._binding_now = binding
        if kind == old:  # one dispatch instruction gave way to another
            return
        if old in self._binding:
            self._binding[old].set(0.0)
        _child(self._binding, kind, self.binding, kind).set(1.0)

    def set_failsafe(self, active: frozenset[str]) -> None:
        if active != self._failsafe_now:
            for reason, child in self._failsafe.items():
                child.set(1.0 if reason in active else 0.0)
            self._failsafe_now = active

    def set_pool_plan(self, pool: str, target_kw: float, state: str, was: str | None) -> None:
        """A pool's target and plan state (`was`: the state shown so far, None at first)."""
        table = self.pool_state
        states = self._pool_states.get(pool)
        if states is None:  # every known state exists at 0 from the pool's first plan
            states = self._pool_states[pool] = set(POOL_STATES)
            for s in POOL_STATES:
                table.set((pool, s), 0.0)
        self.pool_target.set((pool,), target_kw * W_PER_KW)
        if was != state:
            if was is not None and was in states:
                table.set((pool, was), 0.0)
            states.add(state)  # a state this module does not know yet: show it anyway
            table.set((pool, state), 1.0)

    def set_dispatch_active(self, counts: Mapping[str, int]) -> None:
        """Active obligations per type; the types not named are 0."""
        for kind in {*self._dispatch, *counts}:
            _child(self._dispatch, kind, self.dispatch_active, kind).set(counts.get(kind, 0))

    def set_award_kw(self, by_product: Mapping[str, float]) -> None:
        """The awarded load of the active awards per product; the products not named are 0."""
        for product, child in self._award.items():
            child.set(by_product.get(product, 0.0) * W_PER_KW)

    def set_shortfall_kw(self, kw: float) -> None:
        shortfall_w = kw * W_PER_KW
        if shortfall_w != self._shortfall_w:
            self.shortfall.set(shortfall_w)
            self._shortfall_w = shortfall_w

    def set_dispatch_deadline(self, deadline_s: float | None) -> None:
        """The earliest deadline (epoch s) of a deployment not complied yet; None: there is none."""
        value = NAN if deadline_s is None else deadline_s
        if value != self._deadline_s:  # NaN != NaN: at worst one redundant set
            self.deadline.set(value)
            self._deadline_s = value

    def set_override_active(self, active: bool) -> None:
        self.override_active.set(1.0 if active else 0.0)

    # -- events ----------------------------------------------------------------------------------

    def observe_decision(self, duration_s: float) -> None:
        self.decision_duration.observe(duration_s)

    def decision_over_budget(self) -> None:
        self.decisions_over_budget.inc()

    def observe_event_to_command(self, trigger: str, seconds: float) -> None:
        _child(self._triggers, trigger, self.event_to_command, trigger).observe(seconds)

    def observe_command_confirm(self, driver: str, seconds: float) -> None:
        _child(self._confirm, driver, self.command_confirm, driver).observe(seconds)

    def command_sent(self, driver: str, n: int = 1) -> None:
        _child(self._commands, driver, self.commands, driver).inc(n)

    def command_failed(self, driver: str, n: int = 1) -> None:
        _child(self._command_failures, driver, self.command_failures, driver).inc(n)

    def mqtt_reconnected(self) -> None:
        self.mqtt_reconnects.inc()

    def message_rejected(self, feed: str, reason: str) -> None:
        _child(self._rejected, (feed, reason), self.rejected, feed, reason).inc()

    def internal_error(self, where: str) -> None:
        _child(self._internal, where, self.internal_errors, where).inc()

    def protected_write_refused(self) -> None:
        self.protected_refused.inc()

    def feed_seen(self, feed: str, at: float | None = None) -> None:
        """A valid message arrived on `feed` (epoch s); the age is computed at scrape time."""
        self._feed_seen_at[feed] = self._clock.time() if at is None else at
        if feed not in self._feed_age:
            self._feed_age[feed] = self._age_child(feed)

    # -- values set directly ---------------------------------------------------------------------

    def set_price(self, product: str, usd_per_mwh: float) -> None:
        _child(self._price, product, self.price, product).set(usd_per_mwh)

    def set_site_power_kw(self, kw: float | None) -> None:
        self.site_power.set(_watts(kw))

    def set_gpu_power_kw(self, tenant: str, kw: float | None) -> None:
        _child(self._gpu, tenant, self.gpu_power, tenant).set(_watts(kw))

    def set_pool_power_kw(self, pool: str, kw: float | None) -> None:
        self._pool_power.add(pool)
        self.pool_power.set((pool,), _watts(kw))

    def set_device_up(self, device: str, up: bool) -> None:
        """From the health transition callback; a device appears at its first verdict."""
        self._devices.add(device)
        self.device_up.set((device,), 1.0 if up else 0.0)

    def set_ha(self, node: str, epoch: int | None) -> None:
        self.ha_leader.labels(node).set(0.0 if epoch is None else 1.0)
        self.ha_epoch.labels(node).set(0.0 if epoch is None else float(epoch))

    def set_mqtt_connected(self, connected: bool) -> None:
        self.mqtt_connected.set(1.0 if connected else 0.0)

    # -- serving -----------------------------------------------------------------------------------

    def start_server(self, listen: str) -> MetricsServer:
        """Serve `render` on `listen`; raises MetricsServerError (see metrics_server)."""
        return start_server(listen, self.render)

    def render(self, accept: str = "") -> tuple[bytes, str]:
        """A scrape's body and Content-Type. Runs on the server thread: the tables' cached text
        (re-rendered only for a family that changed since the last scrape), then the few
        hundred prometheus-client series (OpenMetrics' `# EOF` stays last)."""
        encoder, content_type = choose_encoder(accept)
        rest = encoder(self._rest)
        return b"".join([*(t.render() for t in self._tables), rest]), content_type

    def exposition(self) -> bytes:
        """The text format a scrape returns (tests, `curtaild status`)."""
        return self.render()[0]

    # -- helpers -----------------------------------------------------------------------------------

    def _age_child(self, feed: str) -> Gauge:
        child = self.feed_age.labels(feed)
        seen, clock, started = self._feed_seen_at, self._clock, self._started_at
        # Runs in the scrape thread: one dict read, no lock needed under the GIL.
        child.set_function(lambda: clock.time() - seen.get(feed, started))
        return child


K = TypeVar("K")
M = TypeVar("M", Gauge, Counter, Histogram)


def _child(cache: dict[K, M], key: K, metric: M, *labels: str) -> M:
    """The cached child for `key`, created with `labels` on first use."""
    child = cache.get(key)
    if child is None:
        child = cache[key] = metric.labels(*labels)
    return child


def _drop(metric: Gauge, children: dict[str, Gauge], keep: set[str]) -> None:
    for name in [n for n in children if n not in keep]:
        del children[name]
        metric.remove(name)


def _drop_rows(table: GaugeTable, names: set[str], keep: set[str]) -> None:
    for name in [n for n in names if n not in keep]:
        names.discard(name)
        table.remove((name,))


class _Chain(Collector):
    """Another registry's families, so `Metrics.registry` lists every family."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self._registry = registry

    def collect(self) -> Iterator[Metric]:
        yield from self._registry.collect()


def _watts(kw: float | None) -> float:
    return NAN if kw is None else kw * W_PER_KW  # None: unknown, shown as NaN rather than 0
