"""Policies in their fixed order: safety -> dispatch -> override -> frequency -> price.

Each policy module has a `stage` function: it takes the mining cap the previous stage left and
its own inputs, and returns a cap no larger (`Cap.narrow`, DESIGN point 2) with what it decided
and a `Reason` for each narrowing or failsafe. `decide()` runs them in order.
"""

from __future__ import annotations

import math
from typing import NamedTuple


class Cap(NamedTuple):
    """The mining cap and what binds it (a NamedTuple: built on every decision)."""

    kw: float
    binding: str

    def narrow(self, kw: float | None, binding: str) -> Cap:
        """A lower cap set by `binding`, or this one: None or anything not lower never widens."""
        if kw is not None and kw < self.kw:
            return Cap(kw, binding)
        return self


# What the safety stage starts from: its envelope is the first limit.
UNBOUNDED = Cap(math.inf, "safety")
