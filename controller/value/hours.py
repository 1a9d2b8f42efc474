"""ERCOT hour stamps as epoch hours, their labels, and the hours a file is missing.

Every value-stack input is hourly and keyed here by the epoch second its hour starts at: the
Central offsets are whole hours, so an hour's start is a multiple of 3600 in epoch seconds too,
and a 15-minute interval belongs to the hour `start - start % 3600`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from controller.feeds.ercot import CENTRAL, file_interval_start_epoch

HOUR_S = 3600.0


def hour_start_epoch(day: date, hour_ending: int, repeated: bool = False) -> float:
    """Start of ERCOT hour ending `hour_ending` of `day` (`repeated`: the fall-back second pass).

    Raises ValueError for the spring-forward hour that does not exist, a flag outside the
    repeated hour, an hour outside 1-24 or a date outside the feeds' window."""
    return file_interval_start_epoch(day, hour_ending, 1, repeated)


def hour_of(epoch_s: float) -> float:
    """The start of the hour holding `epoch_s`."""
    return epoch_s - epoch_s % HOUR_S


def local(epoch_s: float) -> datetime:
    """Central prevailing time (fold = 1 in the repeated fall-back hour)."""
    return datetime.fromtimestamp(epoch_s, UTC).astimezone(CENTRAL)


def hour_ending(epoch_s: float) -> int:
    """ERCOT's hour ending (1-24) of the hour starting at `epoch_s`."""
    return local(epoch_s).hour + 1


def month_key(epoch_s: float) -> str:
    """`YYYY-MM` of the Central day the hour starting at `epoch_s` belongs to."""
    return f"{local(epoch_s):%Y-%m}"


def label(epoch_s: float) -> str:
    """`2024-03-10 HE02`, `2024-11-03 HE02*` for the repeated hour: what ERCOT files print."""
    when = local(epoch_s)
    return f"{when:%Y-%m-%d} HE{when.hour + 1:02d}" + ("*" if when.fold else "")


def is_repeated_hour(epoch_s: float) -> bool:
    """The second pass through the fall-back hour: a file without a DST flag cannot hold it."""
    return local(epoch_s).fold == 1


def day_start_epoch(day: date) -> float:
    """Midnight Central at the start of `day`."""
    return datetime(day.year, day.month, day.day, tzinfo=CENTRAL).timestamp()


def day_end_epoch(day: date) -> float:
    """Midnight Central at the end of `day` (its last hour starts one hour before)."""
    return day_start_epoch(day + timedelta(days=1))


@dataclass(frozen=True)
class Gap:
    """Hours missing from a file: `hours` of them from `first` (epoch), after `line`."""

    first: float
    hours: int
    line: int  # the file line the gap follows (or precedes, at the start)

    def describe(self) -> str:
        last = self.first + (self.hours - 1) * HOUR_S
        span = label(self.first) if self.hours == 1 else f"{label(self.first)} .. {label(last)}"
        return f"{self.hours} hour(s) missing: {span}"


def find_gaps(
    present: Iterable[tuple[float, int]], lo: float, hi: float, flagless: bool
) -> list[Gap]:
    """The hours in [lo, hi) that `present` (epoch hour start, file line) lacks.

    `flagless`: the file has no DST flag, so it cannot hold the fall-back repeated hour, and its
    absence is not a gap."""
    by_hour = dict(present)
    gaps: list[Gap] = []
    prev_line = min(by_hour.values(), default=1)
    t, first, count = lo, 0.0, 0
    while t < hi:
        line = by_hour.get(t)
        if line is not None or (flagless and is_repeated_hour(t)):
            if count:
                gaps.append(Gap(first, count, prev_line))
                count = 0
            prev_line = line or prev_line
        else:
            if not count:
                first = t
            count += 1
        t += HOUR_S
    if count:
        gaps.append(Gap(first, count, prev_line))
    return gaps
