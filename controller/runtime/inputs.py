"""Inbound messages and readings land here, validated, in slots read by the next decision.

Nothing is acted on in a callback (DESIGN point 10): `on_message` parses, stores and wakes the
control loop; `snapshot()` freezes the slots for one decision and `consume()` drops what that
decision took once it succeeded, so a decision that fails loses no instruction. Bad input is
counted, reported through `on_reject` and dropped (I10): it never reaches a device.

Inputs owns these slots and nothing else writes them: pollers and pool drivers report through
its methods (`set_meter`, `pool_telemetry`, `command_seq`: the `PoolSink` a driver is built
with), a pool's own topics are routed to its driver, which parses them. The loop reads a frozen
`Snapshot`, the feed times (`feed_seen_at`) and the last override outcome (`override_last`)
and never clears them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace

from controller.adapters.mqtt import topic_matches
from controller.clock import Clock
from controller.config import Config
from controller.core.plan import Snapshot
from controller.drivers.pool import MessageHandler, PoolDriver
from controller.feeds.common import FeedRejected
from controller.feeds.dispatch import parse_dispatch
from controller.feeds.override import OverrideValidator
from controller.feeds.price import PriceBook, parse_hashprice, parse_price_payload
from controller.model import DispatchInstruction, OverrideRequest, PoolTelemetry, Reading
from controller.runtime.topics import Topics

RejectHook = Callable[[str, FeedRejected], None]  # (feed, the verdict, with the id when known)


@dataclass(frozen=True, slots=True)
class OverrideOutcome:
    """The last override request's outcome: `error` None when it was accepted, else why it was
    refused. `count` grows with each outcome, so a repeat of the same error is news too."""

    error: str | None
    count: int


@dataclass(slots=True)
class Trigger:
    """The first event not yet served by a decision: what woke the loop and when (monotonic)."""

    name: str
    at: float


class Inputs:
    def __init__(self, config: Config, clock: Clock, on_reject: RejectHook) -> None:
        self.config = config
        self.clock = clock
        self.topics = Topics.of(config)
        self.on_reject = on_reject
        self.prices = PriceBook(config.site.settlement_point)
        self.hashprice: float | None = None
        self.meters_kw: dict[str, Reading] = {}
        self.frequency_hz: Reading | None = None
        self.islanded: Reading | None = None
        self.pools: dict[str, PoolTelemetry] = {}
        self.feed_seen_at: dict[str, float] = {}
        self.dispatch_inbox: list[DispatchInstruction] = []
        self.override_inbox: list[OverrideRequest] = []
        self.override_last = OverrideOutcome(None, 0)
        self.cmd_seq: dict[str, int] = {}
        self._pool_topics: dict[str, MessageHandler] = {}
        self._reporting_pools: set[str] = set()
        # Until the site has been seen at start (startup.wait_for_site), the level "at receipt"
        # of a reduction is not known: pools not heard from would count at max_kw. What arrives
        # then (an instruction the broker queued while the daemon was down) is measured from
        # the site as first seen, just before the first decision (CONTRACT 7 Startup).
        self._baselines_held = False
        self._unmeasured: list[DispatchInstruction] = []
        self._nonces: dict[str, float] = {}  # nonce -> keep until (epoch s), kept in the store
        self._validator: OverrideValidator
        self._pool_max_kw: dict[str, float]
        self.reconfigure(config)
        self.wake = asyncio.Event()
        self.trigger: Trigger | None = None

    def reconfigure(self, config: Config) -> None:
        self.prepare(config)()

    def prepare(self, config: Config) -> Callable[[], None]:
        """Everything a reloaded config needs, built first; the returned commit only assigns
        (a reload is all-or-nothing). Same devices: checked by the caller."""
        key = config.override.hmac_key
        validator = OverrideValidator(
            config.override.max_ttl_s,
            config.override.max_clock_skew_s,
            None if key is None else key.get_secret_value(),
        )
        prices = self.prices
        if config.site.settlement_point != prices.settlement_point:
            prices = PriceBook(config.site.settlement_point)
        pool_max_kw = {p.name: p.max_kw for p in config.pools}

        def commit() -> None:
            self.config, self._validator, self.prices = config, validator, prices
            self._pool_max_kw = pool_max_kw

        return commit

    def attach_pools(self, pools: Iterable[PoolDriver]) -> None:
        """The topics pool drivers hear their pools on; a report there goes to its driver,
        which parses it and comes back through `pool_telemetry` / `command_seq`."""
        drivers = list(pools)
        self._pool_topics = {topic: h for d in drivers for topic, h in d.topics().items()}
        # Pools whose agents report on their own: their reports are the `pool_state` feed.
        self._reporting_pools = {d.name for d in drivers if d.topics()}

    def hold_baselines(self) -> None:
        """At start, before any message: reductions wait for the site to be seen."""
        self._baselines_held = True

    def release_baselines(self) -> None:
        """The site has been seen (or the startup wait ended): instructions that arrived
        before are measured from the mining load now."""
        self._baselines_held = False
        if not self._unmeasured:
            return
        level_kw = self.mining_kw()
        waiting = {id(msg) for msg in self._unmeasured}
        self.dispatch_inbox[:] = [
            replace(msg, mining_kw_at_receipt=level_kw) if id(msg) in waiting else msg
            for msg in self.dispatch_inbox
        ]
        self._unmeasured = []

    def restore_nonces(self, nonces: dict[str, float]) -> None:
        """Used nonces from the state store: a replay after a restart is still a replay."""
        self._nonces.update(nonces)

    @property
    def nonce_keep_s(self) -> float:
        """How long after `issued_at` a nonce is remembered (CONTRACT 7: 2 x max_clock_skew_s);
        older ones fail the skew check anyway."""
        return 2.0 * self.config.override.max_clock_skew_s

    # -- waking the loop ---------------------------------------------------------------------

    def notify(self, name: str) -> None:
        if self.trigger is None:
            self.trigger = Trigger(name, self.clock.monotonic())
        self.wake.set()

    def take_trigger(self) -> Trigger | None:
        trigger, self.trigger = self.trigger, None
        self.wake.clear()
        return trigger

    # -- MQTT --------------------------------------------------------------------------------

    def on_message(self, topic: str, payload: bytes, retain: bool) -> None:
        """Route one message; never raises (a bad message is rejected, not fatal)."""
        t = self.topics
        try:
            if topic == t.override_set:
                self._on_override(payload, retain)
            elif (pool := self._pool_topics.get(topic)) is not None:
                pool(payload, self.clock.time())
            elif topic.startswith(f"{t.prefix}/pools/"):
                return  # not ours (or a polled pool, whose telemetry comes from its device)
            elif topic_matches(t.dispatch, topic):
                self._on_dispatch(payload)
            elif t.hashprice and topic_matches(t.hashprice, topic):
                self.hashprice = parse_hashprice(payload)
                self.feed_seen_at["hashprice"] = self.clock.time()
            elif topic_matches(t.price, topic):
                self._on_price(payload)
        except FeedRejected as exc:
            self.on_reject(_feed_of(topic, t), exc)

    def _on_price(self, payload: bytes) -> None:
        now = self.clock.time()
        acted = False
        for record in parse_price_payload(payload, now):
            if self.prices.accepts(record):
                acted = self.prices.offer(record, now) or acted
        self.feed_seen_at["price"] = now
        if acted:
            self.notify("price")

    def _on_dispatch(self, payload: bytes) -> None:
        now = self.clock.time()
        msg = parse_dispatch(payload, now, self.mining_kw())
        self.dispatch_inbox.append(msg)
        if self._baselines_held:
            self._unmeasured.append(msg)
        self.feed_seen_at["dispatch"] = now
        self.notify("dispatch")

    def _on_override(self, payload: bytes, retain: bool) -> None:
        if retain:
            # An override is a command, not a state: a retained copy replayed after a reconnect
            # must not act again (nor flood last_error with "replayed nonce").
            return
        now = self.clock.time()
        self._prune_nonces(now)
        try:
            request = self._validator.validate(payload, now, self._nonces)
        except FeedRejected as exc:
            self.set_override_outcome(f"{exc.reason}: {exc.detail}")
            raise
        self._nonces[request.nonce] = request.issued_at + self.nonce_keep_s
        self.set_override_outcome(None)
        self.feed_seen_at["override"] = now
        self.override_inbox.append(request)
        self.notify("override")

    def _prune_nonces(self, now: float) -> None:
        if self._nonces and min(self._nonces.values()) < now:
            self._nonces = {n: until for n, until in self._nonces.items() if until >= now}

    def set_override_outcome(self, error: str | None) -> None:
        """An override request was accepted (None) or refused (why): override/state says so."""
        self.override_last = OverrideOutcome(error, self.override_last.count + 1)

    # -- readings (pollers and pool drivers) -------------------------------------------------

    def pool_telemetry(
        self, name: str, telemetry: PoolTelemetry, *, wake: bool | None = None
    ) -> None:
        """A pool's report (PoolSink): from its driver's poll or its agent's message.

        It wakes the loop (`wake=None`) only when it is news to decide(): agents repeat their
        state every few seconds, and at a few hundred pools a decision per repeat kept the
        loop busy back to back, so a dispatch waited behind decisions that changed nothing
        (bench/bench_scale.py). A repeat is still stored: its freshness counts at the tick."""
        last = self.pools.get(name)
        self.pools[name] = telemetry
        if name in self._reporting_pools:
            self.feed_seen_at["pool_state"] = telemetry.at
        if wake is None:
            wake = telemetry_is_news(last, telemetry, self.config.control.pool_stale_s)
        if wake:
            self.notify("pool")

    def command_seq(self, name: str, seq: int) -> None:
        """Our own retained cmd read back (PoolSink): the next seq goes above it."""
        if seq > self.cmd_seq.get(name, -1):
            self.cmd_seq[name] = seq

    def set_meter(self, name: str, reading: Reading) -> Reading | None:
        """A meter's reading; returns the one it replaces."""
        old = self.meters_kw.get(name)
        self.meters_kw[name] = reading
        return old

    def set_site_signals(self, frequency_hz: Reading, islanded: Reading) -> None:
        self.frequency_hz, self.islanded = frequency_hz, islanded

    # -- one decision's view -------------------------------------------------------------------

    def mining_kw(self) -> float:
        """Measured mining load; a pool that has not reported counts at its max_kw (CONTRACT 7
        Startup): the level a reduction deployment is measured from at receipt."""
        pools = self.pools
        return sum(
            t.power_kw if (t := pools.get(name)) is not None else max_kw
            for name, max_kw in self._pool_max_kw.items()
        )

    def snapshot(self, budget_failsafe: bool) -> Snapshot:
        return Snapshot(
            price=self.prices.acting,
            hashprice_usd_per_ph_day=self.hashprice,
            meters_kw=dict(self.meters_kw),
            frequency_hz=self.frequency_hz,
            islanded=self.islanded,
            pools=dict(self.pools),
            dispatch_inbox=tuple(self.dispatch_inbox),
            override_inbox=tuple(self.override_inbox),
            budget_failsafe=budget_failsafe,
            cmd_seq=dict(self.cmd_seq),
        )

    def consume(self, snap: Snapshot) -> None:
        """Drop the inbox items a decision has taken (those of `snap`; newer ones stay)."""
        del self.dispatch_inbox[: len(snap.dispatch_inbox)]
        del self.override_inbox[: len(snap.override_inbox)]


def _feed_of(topic: str, t: Topics) -> str:
    if topic == t.override_set:
        return "override"
    if topic.startswith(f"{t.prefix}/pools/"):
        return "pool_state"
    if topic_matches(t.dispatch, topic):
        return "dispatch"
    if t.hashprice and topic_matches(t.hashprice, topic):
        return "hashprice"
    return "price"


def telemetry_is_news(last: PoolTelemetry | None, new: PoolTelemetry, stale_s: float) -> bool:
    """Whether a pool report can change a decision: the first one, a new applied seq, a change
    of reachability, power or available power moved by more than 1%, or one that ends a
    silence long enough to have made the pool stale."""
    if last is None or last.applied_seq != new.applied_seq or last.online != new.online:
        return True
    if _moved(last.power_kw, new.power_kw) or new.at - last.at >= stale_s:
        return True
    if last.available_kw is None or new.available_kw is None:
        return last.available_kw != new.available_kw
    return _moved(last.available_kw, new.available_kw)


def _moved(before: float, after: float) -> bool:
    return abs(after - before) > 0.01 * max(1.0, abs(before))
