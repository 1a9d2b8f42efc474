"""The steady-walk memo changes no decision (controller/core/memo.py).

Every step of a random scenario is decided twice: by the plant, whose state carries the memo
from step to step (as the daemon's does), and by decide() on a freshly compiled site, with which
that memo (made with the plant's site) is never used. The two decisions must be equal in every field: plan, next state, reasons, acks and
flags. The STEADY step profile draws long quiet stretches, where the memo is used, broken by
every kind of input change and by gaps that turn the dwell, confirm, escalation and staleness
timers; the default profile adds the busier sequences of the other properties.
"""

from __future__ import annotations

from hypothesis import event, given

from controller.core.decide import decide
from controller.core.site import compile_site
from tests.unit.properties.strategies import STEADY, Scenario, scenarios
from tests.unit.properties.world import fail, run


def _check(scenario: Scenario) -> int:
    """Assert memo and fresh decisions agree on every step; return how many used the memo."""
    config = scenario.site.config
    used = 0
    for rec in run(scenario):
        fresh = decide(rec.snap, rec.state, rec.now, compile_site(config))
        # The memo hands back the very dict it was given: that is how a reuse shows.
        used += rec.decision.next_state.pools is rec.state.pools
        assert rec.decision == fresh, fail(
            rec,
            "decide() with the memo differs from decide() without it:\n"
            f"  memo:  {rec.decision!r}\n  fresh: {fresh!r}",
        )
    return used


@given(scenarios(prof=STEADY, min_steps=10, max_steps=40))
def test_property_memo_changes_no_decision_in_quiet_sequences(scenario: Scenario) -> None:
    used = _check(scenario)
    event("memo used" if used else "memo not used")


@given(scenarios(max_steps=30))
def test_property_memo_changes_no_decision_in_busy_sequences(scenario: Scenario) -> None:
    used = _check(scenario)
    event("memo used" if used else "memo not used")
