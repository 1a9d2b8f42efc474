"""I10: every payload a parser accepts can be carried all the way out without an exception.

For each feed, adversarial payloads (`tests.unit.properties.payloads`) go through the parser.
An accepted one is pushed through everything downstream, using public entry points only:
`decide()` (the input in a Snapshot; then a step that commands every pool, and one past every
deadline and expiry the input set), every `controller.runtime.payloads` document that applies,
`Metrics` (update, then the exposition), the rows the loop writes to the state store (through
the real store), and each output must be UTF-8 JSON without NaN, Infinity or lone surrogates. A rejected one must carry a
reason of the closed set, a short publishable detail, and still be answerable (`rejected_ack`).
"""

from __future__ import annotations

import dataclasses
import json
import math
import tempfile
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path
from typing import Any, get_args

from hypothesis import event, given, settings
from hypothesis import strategies as st

from controller.adapters.metrics import Metrics
from controller.adapters.store import DB_NAME, AuditRecord, StateStore, StoreDelta
from controller.clock import iso
from controller.core.decide import decide
from controller.core.plan import Decision, DispatchAck, Snapshot
from controller.core.site import compile_site
from controller.core.state import ControllerState, initial_state
from controller.drivers.mqtt_pool import cmd_payload
from controller.feeds.common import FeedRejected, RejectReason, peek_field, peek_id
from controller.feeds.dispatch import parse_dispatch
from controller.feeds.override import OverrideValidator
from controller.feeds.pool_state import parse_pool_state
from controller.feeds.price import PriceBook, parse_hashprice, parse_price_payload
from controller.model import DispatchInstruction, OverrideRequest, PoolTelemetry
from controller.runtime import payloads, persist
from controller.runtime.apply import command_of
from controller.runtime.metrics_view import MetricsView
from controller.sim.configs import build_config, mixed_site
from tests.unit.factories import (
    acting_price,
    override,
    reading,
    telemetry,
)
from tests.unit.properties.payloads import (
    SETTLEMENT_POINT,
    Case,
    dispatch_cases,
    hashprice_cases,
    override_cases,
    pool_state_cases,
    price_cases,
)

CONFIG = build_config(
    mixed_site(3, tenants=1, sections={"site": {"settlement_point": SETTLEMENT_POINT}})
)
MQTT_POOL = next(p for p in CONFIG.pools if p.driver == "mqtt")
REJECT_REASONS = frozenset(get_args(RejectReason))
MAX_DETAIL_CHARS = 1024
# One registry for the whole run, as the daemon has: its caches see every example in turn.
SITE = compile_site(CONFIG)
METRICS = Metrics(CONFIG)
METRICS_VIEW = MetricsView(METRICS, CONFIG)
# The daemon's own store, on a file of this run: every accepted input's rows are written through
# it (obligations with their baselines, override, nonces, pool seq, audit records).
STORE = StateStore.open(Path(tempfile.mkdtemp(prefix="curtaild-prop-")) / DB_NAME)
# A third of the profile's examples: each one runs up to three decisions and a scrape, and the
# five properties take about 8 s together at the default profile (`make fuzz` still scales
# them up through HYPOTHESIS_PROFILE).
EXAMPLES = max(20, settings().max_examples // 3)


# --- the world around one input ---------------------------------------------------------------


def snapshot(now: float, **inputs: Any) -> Snapshot:
    """The example site at `now`: fresh meters, every pool at half load, a cheap price."""
    pools = {p.name: telemetry(p.max_kw / 2, now, available_kw=p.max_kw) for p in CONFIG.pools}
    gpu_kw = sum(t.firm_kw for t in CONFIG.gpu_tenants)
    site_kw = gpu_kw + CONFIG.site.aux_kw + sum(t.power_kw for t in pools.values())
    meters = {m.name: reading(site_kw if m.role == "site" else gpu_kw, now) for m in CONFIG.meters}
    base: dict[str, Any] = {"price": acting_price(30.0, now), "meters_kw": meters, "pools": pools}
    return Snapshot(**{**base, **inputs})


def fresh_state(now: float) -> ControllerState:
    # The one place that builds a state: the rewrite of core/ may change how.
    return initial_state(now - 3600.0)


def run(now: float, later_s: float | None, **inputs: Any) -> list[Decision]:
    """The input's decision, a step that commands every pool down (a curtail override), and,
    when the input set a time (deadline, end, expiry), a step just past it."""
    first = decide(snapshot(now, **inputs), fresh_state(now), now, SITE)
    at = now + CONFIG.control.tick_s
    command_all = snapshot(at, override_inbox=(override("curtail", at, nonce="prop"),))
    decisions = [first, decide(command_all, first.next_state, at, SITE)]
    if later_s is not None and later_s > at:
        after = later_s + 1.0
        decisions.append(decide(snapshot(after), decisions[-1].next_state, after, SITE))
    return decisions


# --- every way out ------------------------------------------------------------------------------


def outputs(decision: Decision) -> list[bytes]:
    """Every document of runtime/payloads that a decision gives rise to."""
    plan, state = decision.plan, decision.next_state
    reasons = [r._asdict() for r in decision.reasons]
    docs = [
        payloads.plan(plan),
        payloads.dispatch_state(state.obligations),
        payloads.override_state(state.override, None),
        payloads.status("failsafe" if plan.failsafe else "online", plan.at, plan.failsafe),
        payloads.event("commands", plan.at, binding=plan.binding, reasons=reasons),
    ]
    docs += [cmd_payload(command_of(ps, plan.at)) for ps in plan.pools.values()]
    for ack in decision.acks:
        docs += [payloads.ack(ack), payloads.rejected_ack(ack.id, "id_conflict", ack.at)]
    return docs


def event_fields(value: DispatchInstruction | OverrideRequest | PoolTelemetry) -> dict[str, Any]:
    """A parsed input as an audit event carries it: its fields, instants printed."""
    fields = dataclasses.asdict(value)
    for key in ("notified_at", "received_at", "start", "end", "issued_at", "expires_at", "at"):
        if key in fields:
            fields[key] = iso(fields[key])
    return {k: getattr(v, "value", v) for k, v in fields.items()}


def assert_json(doc: bytes) -> None:
    """UTF-8 JSON with no NaN/Infinity, whose every string could be written as UTF-8 too."""
    value = json.loads(doc.decode("utf-8"), parse_constant=_refuse)
    json.dumps(value, allow_nan=False, ensure_ascii=False).encode("utf-8")


def _refuse(name: str) -> None:
    raise AssertionError(f"{name} in an output document")


def assert_metrics(decisions: Iterable[Decision], snap: Snapshot) -> None:
    for decision in decisions:
        METRICS_VIEW.update_from_decision(decision)
    METRICS_VIEW.update_from_snapshot(snap)
    for line in METRICS.exposition().decode("utf-8").splitlines():
        if not line.startswith("#"):
            # NaN is "unknown" by design (no price yet); an infinity is a value gone wrong.
            assert line.rsplit(" ", 1)[1] not in ("+Inf", "-Inf"), line


def audit(*docs: bytes) -> list[AuditRecord]:
    """Event records (the other documents are not kept) as the observer keeps them."""
    records = []
    for doc in docs:
        obj = json.loads(doc)
        if "event" not in obj:
            continue
        records.append(AuditRecord(datetime.fromisoformat(obj["at"]).timestamp(), obj["event"],
                                   doc.decode()))  # fmt: skip
    return records


def store_rows(decisions: list[Decision], records: list[AuditRecord], snap: Snapshot) -> None:
    """Each decision's change as the loop writes it: one transaction per decision."""
    before = fresh_state(decisions[0].plan.at)
    for decision in decisions:
        acks = [payloads.event("ack", decision.plan.at, **_ack_fields(a)) for a in decision.acks]
        STORE.write(
            persist.delta(
                before,
                decision.next_state,
                overrides_accepted=snap.override_inbox,
                nonce_keep_s=2.0 * CONFIG.override.max_clock_skew_s,
                audit=[*records, *audit(*acks)],
            )
        )
        records = []
        before = decision.next_state


def _ack_fields(a: DispatchAck) -> dict[str, Any]:
    fields = payloads.ack_fields(a)
    del fields["at"]
    return fields


def carried_out(decisions: list[Decision], snap: Snapshot, *events: bytes) -> None:
    event("accepted")
    docs = [doc for decision in decisions for doc in outputs(decision)]
    for doc in [*docs, *events]:
        assert_json(doc)
    assert_metrics(decisions, snap)
    store_rows(decisions, audit(*events), snap)


def rejected(feed: str, case: Case, exc: FeedRejected) -> None:
    """A rejection: a known reason, a short publishable detail, an answer that still encodes."""
    event(f"rejected: {exc.reason}")
    assert exc.reason in REJECT_REASONS, exc.reason
    assert len(exc.detail) <= MAX_DETAIL_CHARS, len(exc.detail)
    exc.detail.encode("utf-8")
    why = f"{exc.reason}: {exc.detail}"
    assert_json(payloads.rejected_ack(peek_id(case.payload), why, case.now))
    raw = payloads.rejected_ack(peek_field(case.payload, "id"), why, case.now)
    json.loads(raw.decode("utf-8"))  # the raw id may hold a lone surrogate: ASCII-escaped here
    assert_json(
        payloads.event("rejected", case.now, feed=feed, reason=exc.reason, detail=exc.detail)
    )
    METRICS.message_rejected(feed, exc.reason)
    fields = {"feed": feed, "reason": exc.reason, "detail": exc.detail}
    msg_id = peek_id(case.payload)
    record = payloads.event("rejected", case.now, **fields, **({"id": msg_id} if msg_id else {}))
    STORE.write(StoreDelta(audit=audit(record)))


# --- the properties ---------------------------------------------------------------------------


@settings(max_examples=EXAMPLES)
@given(dispatch_cases())
def test_property_accepted_dispatch_instructions_reach_every_output(case: Case) -> None:
    mining_kw = sum(p.max_kw / 2 for p in CONFIG.pools)
    try:
        msg = parse_dispatch(case.payload, case.now, mining_kw)
    except FeedRejected as exc:
        rejected("dispatch", case, exc)
        return
    start = msg.start if msg.start is not None else msg.notified_at
    later = max(start + msg.deadline_s, msg.end or start)
    decisions = run(case.now, later, dispatch_inbox=(msg,))
    record = payloads.event("dispatch", case.now, **payloads.instruction_fields(msg))
    carried_out(decisions, snapshot(case.now, dispatch_inbox=(msg,)), record)


@settings(max_examples=EXAMPLES)
@given(override_cases())
def test_property_accepted_overrides_reach_every_output(case: Case) -> None:
    max_ttl_s = 10**12 if case.lax else CONFIG.override.max_ttl_s
    validator = OverrideValidator(max_ttl_s, CONFIG.override.max_clock_skew_s, None)
    try:
        request = validator.validate(case.payload, case.now, frozenset())
    except FeedRejected as exc:
        rejected("override", case, exc)
        return
    decisions = run(case.now, request.expires_at, override_inbox=(request,))
    docs = [
        payloads.override_state(request, None),
        payloads.override_state(None, f"replayed_nonce: nonce {request.nonce!r} was already used"),
        payloads.event("override", case.now, **payloads.override_fields(request)),
    ]
    carried_out(decisions, snapshot(case.now, override_inbox=(request,)), *docs)


@settings(max_examples=EXAMPLES)
@given(price_cases())
def test_property_accepted_price_records_reach_every_output(case: Case) -> None:
    try:
        records = parse_price_payload(case.payload, case.now)
    except FeedRejected as exc:
        rejected("price", case, exc)
        return
    book = PriceBook(CONFIG.site.settlement_point)
    for record in records:
        book.offer(record, case.now)
        METRICS.set_price(record.product, record.price_usd_per_mwh)
    events = [
        payloads.event(
            "price", case.now, record={**dataclasses.asdict(r), "at": iso(r.interval_start)}
        )
        for r in records
    ]
    price = book.acting
    inputs: dict[str, Any] = {} if price is None else {"price": price}
    decisions = run(case.now, None, **inputs)
    carried_out(decisions, snapshot(case.now, **inputs), *events)


@settings(max_examples=EXAMPLES)
@given(hashprice_cases())
def test_property_accepted_hashprices_reach_every_output(case: Case) -> None:
    try:
        hashprice = parse_hashprice(case.payload)
    except FeedRejected as exc:
        rejected("hashprice", case, exc)
        return
    decisions = run(case.now, None, hashprice_usd_per_ph_day=hashprice)
    audit = payloads.event("hashprice", case.now, usd_per_ph_day=hashprice)
    carried_out(decisions, snapshot(case.now, hashprice_usd_per_ph_day=hashprice), audit)


@settings(max_examples=EXAMPLES)
@given(st.data())
def test_property_accepted_pool_states_reach_every_output(data: st.DataObject) -> None:
    case = data.draw(pool_state_cases(MQTT_POOL.max_kw))
    try:
        report = parse_pool_state(case.payload, MQTT_POOL.max_kw, case.now)
    except FeedRejected as exc:
        rejected("pool_state", case, exc)
        return
    pools = {**snapshot(case.now).pools, MQTT_POOL.name: report}
    # Our own retained cmd may carry the agent's seq too: our next seq goes above both.
    seqs = {MQTT_POOL.name: report.applied_seq}
    decisions = run(case.now, None, pools=pools, cmd_seq=seqs)
    audit = payloads.event("pool_state", case.now, pool=MQTT_POOL.name, report=event_fields(report))
    carried_out(decisions, snapshot(case.now, pools=pools), audit)
    assert all(math.isfinite(d.plan.mining_measured_kw) for d in decisions)
