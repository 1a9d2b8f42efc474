"""Tables of the scale benchmark: per event kind at each size, the floor beside it, and ratios."""

from __future__ import annotations

import math
import statistics

from bench.scale_events import Sample
from bench.scale_run import SizeResult

KINDS = ("ECRS", "RECALL", "override", "trip")
FROM = {
    "ECRS": "ECRS publish",
    "RECALL": "RECALL publish",
    "override": "override publish",
    "trip": "meter read showing 59.5 Hz",
}


def pct(values: list[float], q: float) -> float:
    """Linear-interpolated percentile (q in 0..1); NaN for no values."""
    xs = sorted(v for v in values if not math.isnan(v))
    if not xs:
        return math.nan
    pos = q * (len(xs) - 1)
    lo, hi = math.floor(pos), math.ceil(pos)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


def ratio(a: float, b: float) -> str:
    return "-" if math.isnan(a) or math.isnan(b) or b <= 0 else f"{a / b:.1f}x"


def _f(x: float) -> str:
    return "-" if math.isnan(x) else f"{x:.1f}"


def detail(result: SizeResult) -> list[str]:
    """Every figure of one size."""
    lines = [
        (
            f"### {result.size.label} (PDUs/pools): {result.size.protected} protected, "
            f"{result.size.ufr_pdus} in ufr outlet pools; daemon RSS {result.rss_mb:.0f} MB "
            f"(peak {result.hwm_mb:.0f} MB); all pools running {result.startup_s:.1f} s after "
            f"start; 1-minute load average {result.load_at_start:.2f} at start"
        ),
        "",
        (
            "| event (n) | from | cmds + writes | first p50/p99/max ms | last p50/p99/max ms "
            "| confirmed p50/p99/max ms | floor first p50/p99 | floor last p50/p99 "
            "| last / floor p50, p99 |"
        ),
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for kind in KINDS:
        s = [x for x in result.samples if x.kind == kind]
        if s:
            lines.append(_row(kind, s))
    if result.scraped:
        lines.append(_row("ECRS, /metrics scraped", result.scraped))
    return lines


def _row(kind: str, s: list[Sample]) -> str:
    def three(xs: list[float]) -> str:
        return f"{_f(pct(xs, 0.5))} / {_f(pct(xs, 0.99))} / {_f(max(xs))}"

    first = [x.first_ms for x in s]
    last = [x.last_ms for x in s]
    f_first = [x.floor_first_ms for x in s]
    f_last = [x.floor_last_ms for x in s]
    cmds, writes = statistics.median(x.cmds for x in s), statistics.median(x.writes for x in s)
    sent = f"{cmds:.0f} + {writes:.0f}"
    return (
        f"| {kind} ({len(s)}) | {FROM.get(kind, FROM['ECRS'])} | {sent} | {three(first)} "
        f"| {three(last)} | {three([x.confirmed_ms for x in s])} "
        f"| {_f(pct(f_first, 0.5))} / {_f(pct(f_first, 0.99))} "
        f"| {_f(pct(f_last, 0.5))} / {_f(pct(f_last, 0.99))} "
        f"| {ratio(pct(last, 0.5), pct(f_last, 0.5))}, "
        f"{ratio(pct(last, 0.99), pct(f_last, 0.99))} |"
    )


def scaling(results: list[SizeResult]) -> list[str]:
    """Event to last command on the wire, p50 (p99), against the floor, at every size."""
    lines = [
        "| PDUs/pools | "
        + " | ".join(f"{k} last p50 (p99) ms, x floor" for k in KINDS)
        + " | ECRS scraped p50 ms | RSS MB |",
        "| --- |" + " --- |" * (len(KINDS) + 2),
    ]
    for r in results:
        cells = []
        for kind in KINDS:
            s = [x for x in r.samples if x.kind == kind]
            last = [x.last_ms for x in s]
            f_last = [x.floor_last_ms for x in s]
            p50, p99 = pct(last, 0.5), pct(last, 0.99)
            cells.append(f"{_f(p50)} ({_f(p99)}), {ratio(p50, pct(f_last, 0.5))}")
        scraped = _f(pct([x.last_ms for x in r.scraped], 0.5))
        lines.append(
            f"| {r.size.label} | " + " | ".join(cells) + f" | {scraped} | {r.rss_mb:.0f} |"
        )
    return lines


def report(results: list[SizeResult], scrape_interval_s: float) -> str:
    scrapes = ", ".join(f"{r.size.label}: {r.scrapes} at {_f(r.scrape_ms)} ms" for r in results)
    lines = [
        (
            "Rounds (n in each table) of: an ECRS curtailing half the mining, its RECALL, "
            "an override `limit` at half the mining, a frequency trip (59.5 Hz). Times from "
            "outside the daemon: Modbus writes as the PDU server parses them, pool cmds as a "
            "subscriber receives them (broker hop included). The floor replays each event's own "
            "writes and cmds from a bare uvloop script (pymodbus + aiomqtt, connections open, "
            "all at once) in the same run; ratios are daemon / floor. Raises wait for the next "
            "1 s tick by design (RECALL). 2 shared, noisy cores: compare ratios, not absolute "
            "figures across runs."
        ),
        "",
        "Scaling (event to last command on the wire):",
        "",
        *scaling(results),
        "",
        *targets(results),
        (
            f"Scrapes of /metrics every {scrape_interval_s} s during the scraped ECRS: {scrapes} "
            "(count, mean scrape time)."
        ),
        "",
    ]
    for r in results:
        lines += [*detail(r), ""]
    return "\n".join(lines)


def targets(results: list[SizeResult]) -> list[str]:
    """Issue 9's targets at 1,000 PDUs / 200 pools, each met or missed by how much."""
    at = [r for r in results if (r.size.pdus, r.size.pools) == (1000, 200)]
    if not at:
        return []
    r = at[0]
    lines = ["Targets at 1000/200 (issue 9):", ""]

    def verdict(value: float, limit: float, unit: str) -> str:
        if math.isnan(value):
            return "not measured"
        if value <= limit:
            return f"{value:.1f}{unit}: met (target {limit:g}{unit})"
        return (
            f"{value:.1f}{unit}: **missed** by {value - limit:.1f}{unit} (target {limit:g}{unit})"
        )

    for kind, label in (("ECRS", "ECRS fan-out"), ("trip", "frequency-trip cut")):
        s = [x for x in r.samples if x.kind == kind]
        last = [x.last_ms for x in s]
        f_last = [x.floor_last_ms for x in s]
        p50, p99 = pct(last, 0.5), pct(last, 0.99)
        f50, f99 = pct(f_last, 0.5), pct(f_last, 0.99)
        lines.append(f"- {label}, event to last command p99: {verdict(p99, 250, ' ms')}")
        lines.append(f"- {label}, x floor at p50: {verdict(p50 / f50, 1.5, 'x')}")
        lines.append(f"- {label}, x floor at p99: {verdict(p99 / f99, 1.5, 'x')}")
    lines.append(f"- daemon resident memory at the end: {verdict(r.rss_mb, 200, ' MB')}")
    plain = pct([x.last_ms for x in r.samples if x.kind == "ECRS"], 0.5)
    scraped = pct([x.last_ms for x in r.scraped], 0.5)
    lines.append(
        f"- ECRS last command p50 while /metrics is scraped in a loop: {_f(scraped)} ms "
        f"against {_f(plain)} ms without ({ratio(scraped, plain)}; each scrape "
        f"{_f(r.scrape_ms)} ms)"
    )
    lines += [
        "",
        "Where the time goes and what would close each miss: bench/profiles/README.md.",
        "",
    ]
    return lines
