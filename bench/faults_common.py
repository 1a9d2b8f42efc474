"""What every fault scenario of bench/bench_faults.py shares: a round's record, waits that return
when something was seen (on the broker, on a simulated device), and the audit-trail check.

Every time is time.monotonic() of this process: probe arrivals (tests.support.MqttProbe), device
samples, sd_notify datagrams (tests.integration.faults.NotifyListener) and the moment a fault was
injected all share that clock, so a recovery time is a difference of two of them.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiomqtt

from controller.adapters.store import DB_NAME, StateStore
from tests.integration.site import LiveSite, live_site
from tests.support import MosquittoBroker, MqttProbe, Received

POLL_S = 0.005  # device state is sampled this often (as tests.integration.faults.Sampler does)


class NotSeenError(Exception):
    """What a round waited for did not happen in time: the round failed."""


@dataclass
class Round:
    """One round of one scenario: seconds per measured interval, and what was lost or wrong."""

    times: dict[str, float] = field(default_factory=dict)
    lost: list[str] = field(default_factory=list)  # empty: nothing lost, every check held
    notes: list[str] = field(default_factory=list)  # facts worth reporting, not failures

    def took(self, label: str, start: float, end: float) -> None:
        self.times[label] = end - start

    def check(self, ok: bool, problem: str) -> None:
        if not ok:
            self.lost.append(problem)


@dataclass
class Env:
    """What the scenarios run on: mosquitto (shared; a scenario may start its own) and a
    scratch directory for configs, state dirs and logs."""

    binary: str
    broker: MosquittoBroker
    workdir: Path

    def scratch(self) -> Path:
        """A directory of its own (removed with the workdir when the bench ends)."""
        return Path(tempfile.mkdtemp(prefix="round-", dir=self.workdir))


@contextlib.asynccontextmanager
async def site_round(
    env: Env,
    rnd: Round,
    broker: MosquittoBroker | None = None,
    extra: list[Received] | None = None,
    **kw: Any,
) -> AsyncIterator[LiveSite]:
    """tests.integration.site.live_site on a scratch dir; once the daemon has stopped, the state
    store's audit trail is compared with what was published on `events` (see audit_gaps), as
    seen by the site's probe and the messages a scenario adds to `extra` (a second probe)."""
    tmp = env.scratch()
    site: LiveSite | None = None
    try:
        async with live_site((broker or env.broker).mqtt_config(), tmp, **kw) as site:
            yield site
        seen = [*site.probe.messages, *(extra or [])]
        audit_gaps(tmp / "state" / DB_NAME, seen, site.prefix, rnd)
    except BaseException:
        if site is not None:
            rnd.notes.append("daemon log tail: " + site.log()[-600:].replace("\n", " | "))
        raise


def audit_gaps(db: Path, messages: Iterable[Received], prefix: str, rnd: Round) -> None:
    """Every record published on `{prefix}/events` must be in the store's audit trail (the same
    JSON text: the store keeps the published document). Records in the store that no
    subscriber received are reported as notes (published while the broker was down...)."""
    topic = f"{prefix}/events"
    seen = {m.payload.decode() for m in messages if m.topic == topic and m.payload}
    with StateStore.open(db, create=False) as store:
        stored = {r.doc for r in store.audit()}
    missing = seen - stored
    if missing:
        rnd.lost.append(f"{len(missing)} published event record(s) missing from the store audit "
                        f"({_kinds(missing)})")  # fmt: skip
    unseen = stored - seen
    if unseen:
        rnd.notes.append(f"{len(unseen)} audit record(s) no subscriber received ({_kinds(unseen)})")


def db_of(site: LiveSite) -> Path:
    return Path(site.config.control.state_dir) / DB_NAME


def stored_audit(db: Path) -> list[dict[str, Any]]:
    """The audit trail as `curtaild audit` reads it: one JSON record per event."""
    with StateStore.open(db, create=False) as store:
        return [json.loads(r.doc) for r in store.audit()]


def _kinds(docs: Iterable[str]) -> str:
    counts = Counter(str(json.loads(d).get("event")) for d in docs)
    return ", ".join(f"{k} x{n}" if n > 1 else k for k, n in sorted(counts.items()))


async def arrival(
    probe: MqttProbe,
    topic: str,
    predicate: Callable[[Any], bool] = lambda _doc: True,
    timeout_s: float = 5.0,
    since: int = 0,
    what: str = "",
) -> float:
    """time.monotonic() of the first message on `topic` (wildcards allowed) from index `since`
    whose JSON passes `predicate`, waiting for it."""

    def match(m: Received) -> bool:
        if not m.payload or not aiomqtt.Topic(m.topic).matches(topic):
            return False
        try:
            return bool(predicate(m.json()))
        except (ValueError, KeyError, TypeError):
            return False

    try:
        return (await probe.wait_for(match, timeout_s, since)).at
    except AssertionError:
        raise NotSeenError(f"{what or topic}: not seen within {timeout_s:g} s") from None


async def until(predicate: Callable[[], bool], timeout_s: float, what: str) -> float:
    """time.monotonic() when `predicate` (device state) first held, polled every 5 ms."""
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise NotSeenError(f"{what}: not within {timeout_s:g} s")
        await asyncio.sleep(POLL_S)
    return time.monotonic()


def event_is(kind: str, **fields: Any) -> Callable[[Any], bool]:
    return lambda e: e["event"] == kind and all(e.get(k) == v for k, v in fields.items())


async def ack_arrival(
    site: LiveSite, msg_id: str, status: str, since: int, timeout_s: float = 5.0
) -> float:
    return await arrival(
        site.probe,
        f"{site.prefix}/dispatch/ack",
        lambda d: d["id"] == msg_id and d["status"] == status,
        timeout_s,
        since,
        f"`{status}` ack of {msg_id}",
    )


def failed(rnd: Round, exc: Exception) -> None:
    rnd.lost.append(f"round failed: {type(exc).__name__}: {exc}".splitlines()[0][:300])


OneRound = Callable[[Env, Round, int], Awaitable[None]]


async def repeat(env: Env, rounds: int, one: OneRound) -> list[Round]:
    """`rounds` rounds of `one`; a round that fails is recorded as lost, the next one runs."""
    out = []
    for n in range(rounds):
        rnd = Round()
        out.append(rnd)
        try:
            await one(env, rnd, n)
        except Exception as exc:  # noqa: BLE001 - a failed round is a finding; the next one runs
            failed(rnd, exc)
    return out
