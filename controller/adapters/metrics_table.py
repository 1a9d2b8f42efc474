"""Labelled gauges kept as plain dicts and rendered to exposition text once per change (issue 9).

At site scale four families are nine tenths of a scrape: `curtaild_pool_state` (six series a
pool), `curtaild_device_up` (one a PDU, meter and pool), `curtaild_pool_target_watts` and
`curtaild_pool_power_watts` (3,250 of 3,510 series at 1000 PDUs / 200 pools). prometheus-client
keeps every child behind its own lock and formats every sample on every scrape: 35-50 ms holding
the GIL, which the control loop waits for. A `GaugeTable` is a dict the loop writes (no lock, a
version bump) and the server thread renders: only when the version moved since the last render,
from precomputed line prefixes, and the same bytes serve every scrape in between.

Threads: the loop is the only writer. The renderer copies the dict in one C call (str-tuple
keys, float values: no Python code runs, so the GIL is not released mid-copy) and reads the
version before the copy, so a write that races the render makes the next scrape render again.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from math import isnan

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

Labels = tuple[str, ...]


class GaugeTable:
    """One gauge family: label values -> value. Written by one thread, rendered by any."""

    def __init__(self, name: str, doc: str, labelnames: Labels) -> None:
        # Both text formats (0.0.4 and OpenMetrics) escape these alike only when absent.
        if any(c in doc for c in '\\\n"'):
            raise ValueError(f"{name}: help text must not contain a backslash, quote or newline")
        self.name = name
        self.doc = doc
        self.labelnames = labelnames
        self._header = f"# HELP {name} {doc}\n# TYPE {name} gauge\n"
        self._values: dict[Labels, float] = {}
        self._prefixes: dict[Labels, str] = {}  # renderer-owned: 'name{a="x",b="y"} '
        self._version = 0
        self._rendered: tuple[int, bytes] = (-1, b"")

    # -- the writer (the control loop) --------------------------------------------------------

    def set(self, labels: Labels, value: float) -> None:
        old = self._values.get(labels)
        # A new series, or a new value; NaN != NaN, so a NaN kept as NaN is no change.
        if old is None or (old != value and not (isnan(old) and isnan(value))):
            self._values[labels] = value
            self._version += 1

    def remove(self, labels: Labels) -> None:
        if self._values.pop(labels, None) is not None:
            self._version += 1

    def get(self, labels: Labels) -> float | None:
        return self._values.get(labels)

    def __len__(self) -> int:
        return len(self._values)

    # -- the reader (the scrape thread) ---------------------------------------------------------

    def render(self) -> bytes:
        """The family as exposition text; cached until the next write."""
        version = self._version
        done, text = self._rendered
        if done == version:
            return text
        values = self._values.copy()  # one C call: a consistent snapshot (module docstring)
        prefixes = self._prefixes
        if len(prefixes) > 2 * len(values) + 16:  # series dropped on reload: forget their text
            prefixes = self._prefixes = {}
        lines = [self._header]
        for labels, value in values.items():
            prefix = prefixes.get(labels)
            if prefix is None:
                prefix = prefixes[labels] = self._prefix(labels)
            lines.append(f"{prefix}{floatToGoString(value)}\n")  # type: ignore[no-untyped-call]
        text = "".join(lines).encode()
        self._rendered = (version, text)
        return text

    def family(self) -> GaugeMetricFamily:
        """The same series as a prometheus-client family (registry.collect(), tests)."""
        fam = GaugeMetricFamily(self.name, self.doc, labels=self.labelnames)
        for labels, value in self._values.copy().items():
            fam.add_metric(list(labels), value)
        return fam

    def _prefix(self, labels: Labels) -> str:
        pairs = ",".join(
            f'{k}="{_escape(v)}"' for k, v in zip(self.labelnames, labels, strict=True)
        )
        return f"{self.name}{{{pairs}}} "


class TableCollector(Collector):
    """Yields the tables as families, so `registry.collect()` and `get_sample_value` see them."""

    def __init__(self, tables: Iterable[GaugeTable]) -> None:
        self.tables = tuple(tables)

    def collect(self) -> Iterator[GaugeMetricFamily]:
        for table in self.tables:
            yield table.family()


def _escape(value: str) -> str:
    return value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")
