"""The demo's live console view: price, cap, binding and one glyph per pool."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from controller.core.plan import Plan

CENTRAL = ZoneInfo("America/Chicago")
GLYPH = {
    "running": "#",
    "ramping": "/",
    "curtailed": ".",
    "escalated": "E",
    "faulted": "F",
    "tripped": "T",
}
LEGEND = "pools: # running  / ramping  . curtailed  E escalated (PDU cut)  F faulted  T tripped"


def interval_label(record: dict[str, object] | None) -> str:
    if record is None:
        return "-"
    hour = int(str(record["deliveryHour"])) - 1
    minute = (int(str(record["deliveryInterval"])) - 1) * 15
    return f"{record['deliveryDate']} {hour:02d}:{minute:02d}"


def render_line(
    plan: Plan | None, record: dict[str, object] | None, gpu_kw: float, note: str
) -> str:
    if plan is None:
        return "waiting for the first decision..."
    price = "   -   " if plan.price_usd_per_mwh is None else f"{plan.price_usd_per_mwh:8.2f}"
    glyphs = "".join(GLYPH.get(ps.state, "?") for ps in plan.pools.values())
    failsafe = f" FAILSAFE:{','.join(sorted(plan.failsafe))}" if plan.failsafe else ""
    return (
        f"{interval_label(record)}  ${price}/MWh  cap {plan.mining_cap_kw / 1000:6.2f} MW "
        f"({plan.binding:<14}) mining {plan.mining_measured_kw / 1000:6.2f} MW  "
        f"GPU {gpu_kw / 1000:5.1f} MW  [{glyphs}]{failsafe}  {note}"
    )


def now_central() -> str:
    return datetime.now(UTC).astimezone(CENTRAL).strftime("%H:%M:%S")
