"""Pool agent state reports (CONTRACT 2.4): what an MQTT pool agent says it applied and draws."""

from __future__ import annotations

from controller.feeds.common import (
    FeedRejected,
    as_bool,
    as_instant,
    as_int,
    load_json_object,
    number_in,
    peek_field,
    require,
    shown,
)
from controller.model import PoolTelemetry

# A report far above the pool's rating is a broken agent or unit mix-up (W for kW), not a
# reading to act on; 10x leaves room for a mis-sized max_kw without trusting nonsense.
MAX_REPORT_FACTOR = 10.0
# Our next cmd's seq continues above the agent's (CONTRACT 7 Startup), the store keeps seq as
# SQLite's 64-bit signed INTEGER, and JSON readers in other languages lose integers past 2**53.
# At one command a second, 2**53 lasts 285 million years: a larger seq is a broken agent.
MAX_SEQ = 2**53


def parse_pool_state(payload: bytes, max_kw: float, received_at: float) -> PoolTelemetry:
    """Validate `{"seq", "power_kw", "available_kw", "online"?, "at"?}` from a pool agent.

    `at` is checked when present but the telemetry is stamped `received_at`: staleness is
    judged on the controller's clock, never on an agent's.
    """
    obj = load_json_object(payload, "a pool state report")
    seq = as_int(require(obj, "seq"), "seq")
    if not 0 <= seq <= MAX_SEQ:
        raise FeedRejected("out_of_range", f"seq: {shown(seq)} is outside 0..2**53")
    ceiling_kw = MAX_REPORT_FACTOR * max_kw
    power_kw = number_in(require(obj, "power_kw"), "power_kw", 0.0, ceiling_kw)
    available_kw = number_in(require(obj, "available_kw"), "available_kw", 0.0, ceiling_kw)
    online = True if obj.get("online") is None else as_bool(obj["online"], "online")
    if obj.get("at") is not None:
        as_instant(obj["at"], "at")
    return PoolTelemetry(
        power_kw=power_kw,
        available_kw=available_kw,
        online=online,
        applied_seq=seq,
        at=received_at,
    )


def peek_seq(payload: bytes) -> int | None:
    """The `seq` of one of our own retained cmd documents when it is an integer in 0..MAX_SEQ,
    else None; never raises. Anyone allowed to publish on a cmd topic can plant a retained
    2**70 there, and our next seq continues above it (CONTRACT 7 Startup): a number that would
    then overflow the store's 64-bit INTEGER is not a seq to continue from."""
    seq = peek_field(payload, "seq")
    valid = isinstance(seq, int) and not isinstance(seq, bool) and 0 <= seq <= MAX_SEQ
    return seq if valid else None
