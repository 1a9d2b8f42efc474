"""The fake ERCOT API, served on a free loopback port for each test that asks for it."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import pytest

from controller.sim.ercot_api import FakeErcotApi, RunningFake


@pytest.fixture
async def fake() -> AsyncIterator[RunningFake]:
    """Two hours of history for HB_WEST, HB_NORTH and LZ_WEST, posted a minute after each
    interval or SCED run."""
    api = FakeErcotApi()
    api.store.seed(time.time(), hours=2.0, post_delay_s=60.0)
    async with RunningFake(api) as running:
        yield running
