"""Hypothesis profiles for the unit properties.

`default`: 1,000 examples per property, the everyday run (`make unit`, `make test`).
`fuzz`: 20,000 examples per property, `make fuzz` (HYPOTHESIS_PROFILE=fuzz).
`ci-quick`: 100 examples, for a fast local loop.

No deadline: a decision sequence of 30 steps on a 12-pool site is not a latency test
(performance lives in bench/). Failures print the reproduction blob, so a counterexample
found by a long fuzz run can be replayed with `@reproduce_failure` or the example database.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

# A fuzz run of one property takes minutes: lift pytest-timeout's 120 s for the properties.
FUZZ_TIMEOUT_S = 3600


def _register(name: str, max_examples: int) -> None:
    settings.register_profile(
        name,
        max_examples=max_examples,
        deadline=None,
        print_blob=True,
        derandomize=False,
        # Sequences are drawn step by step; a 12-pool site takes a few ms to generate.
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )


_register("default", 1000)
_register("fuzz", 20000)
_register("ci-quick", 100)
PROFILE = os.environ.get("HYPOTHESIS_PROFILE", "default")
settings.load_profile(PROFILE)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if PROFILE != "fuzz":
        return
    here = Path(__file__).parent
    for item in items:
        if "property" in item.name and item.path.is_relative_to(here):
            item.add_marker(pytest.mark.timeout(FUZZ_TIMEOUT_S))
