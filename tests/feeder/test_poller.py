"""The poll loop against the fake: first start publishes the last hour, later polls only what
is new, a correction is published again (and the newest put back on top), a restart from the
saved state neither repeats nor skips, and a failing API never raises out of a poll."""

from __future__ import annotations

import json
import time
from pathlib import Path

import aiohttp

from controller.config import Config
from controller.feeder.metrics import FeedMetrics
from controller.feeder.poller import Poller
from controller.feeder.state import FeedState
from controller.sim.ercot_api import FakeErcotApi, RunningFake
from tests.feeder.helpers import ListSink, client, feeder_config


async def _poll(config: Config, sink: ListSink, metrics: FeedMetrics | None = None) -> bool:
    state = FeedState(config.control.state_dir)
    assert state.load() == []
    metrics = metrics or FeedMetrics()
    async with aiohttp.ClientSession() as session:
        poller = Poller(config, client(session, config, metrics), sink, state, metrics)
        return await poller.poll_once()


def _times(sink: ListSink, product: str) -> list[str]:
    key = "SCEDTimestamp" if product == "np6-788-cd" else "deliveryHour"
    return [str(doc[key]) if key == "SCEDTimestamp" else
            f"{doc['deliveryDate']} {doc['deliveryHour']:02} {doc['deliveryInterval']}"
            for topic, doc in sink.messages if topic.endswith(product)]  # fmt: skip


async def test_first_start_publishes_the_last_hour_in_order_then_only_new_records(
    fake: RunningFake, tmp_path: Path
) -> None:
    config = feeder_config(tmp_path, fake)
    sink = ListSink()
    assert await _poll(config, sink)
    now = time.time()
    held = [r for r in fake.api.store.visible("np6-788-cd", now)
            if r.point == "HB_WEST" and r.at_s >= now - 3600]  # fmt: skip
    assert sink.prices("np6-788-cd") == [r.price for r in held]
    times = _times(sink, "np6-788-cd")
    assert times == sorted(times) and len(times) >= 11
    assert {topic for topic, _ in sink.messages} == {
        "ercot/prices/np6-788-cd", "ercot/prices/np6-905-cd"}  # fmt: skip
    assert all(doc["settlementPoint"] == "HB_WEST" for _, doc in sink.messages)
    # Nothing new: nothing published. Then one new SCED run: exactly it.
    sink.messages.clear()
    assert await _poll(config, sink) and sink.messages == []
    fake.api.store.post("np6-788-cd", "HB_WEST", float(int(now)), now, price=123.45)
    fake.api.store.post("np6-788-cd", "HB_NORTH", float(int(now)), now, price=99.0)
    assert await _poll(config, sink)
    assert [doc["LMP"] for _, doc in sink.messages] == [123.45]


async def test_a_correction_is_published_and_the_newest_stays_retained(
    fake: RunningFake, tmp_path: Path
) -> None:
    config = feeder_config(tmp_path, fake)
    sink = ListSink()
    await _poll(config, sink)
    rows = [doc for topic, doc in sink.messages if topic.endswith("np6-788-cd")]
    visible = fake.api.store.visible("np6-788-cd", time.time())
    older = [r for r in visible if r.point == "HB_WEST"][-3]  # two runs back
    sink.messages.clear()
    fake.api.store.post("np6-788-cd", "HB_WEST", older.at_s, time.time(), price=777.0)
    await _poll(config, sink)
    assert [doc["LMP"] for _, doc in sink.messages] == [777.0, rows[-1]["LMP"]]
    assert sink.messages[-1][1] == rows[-1]  # the newest record back on top, unchanged
    sink.messages.clear()
    await _poll(config, sink)  # the same correction again is not new
    assert sink.messages == []


async def test_a_restart_neither_repeats_nor_skips(fake: RunningFake, tmp_path: Path) -> None:
    config = feeder_config(tmp_path, fake)
    first = ListSink()
    await _poll(config, first)
    now = time.time()
    for i in range(3):  # posted while the feeder is down
        fake.api.store.post("np6-788-cd", "HB_WEST", float(int(now)) + i, now, price=50.0 + i)
    second = ListSink()
    await _poll(config, second)  # a new Poller and FeedState: the restart
    assert second.prices("np6-788-cd") == [50.0, 51.0, 52.0]
    assert second.prices("np6-905-cd") == []


async def test_a_failing_api_is_logged_and_counted_never_raised(
    fake: RunningFake, tmp_path: Path
) -> None:
    config = feeder_config(tmp_path, fake)
    metrics = FeedMetrics()
    fake.api.fail_next(500, count=100)
    sink = ListSink()
    assert await _poll(config, sink, metrics) is False
    assert metrics.registry.get_sample_value("curtaild_feed_up") == 0
    assert sink.messages == []
    fake.api._faults.clear()
    assert await _poll(config, sink, metrics) is True
    assert metrics.registry.get_sample_value("curtaild_feed_up") == 1
    age = metrics.registry.get_sample_value(
        "curtaild_feed_record_age_seconds", {"product": "np6-788-cd"}
    )
    assert age is not None and 0 < age < 600


async def test_rows_the_daemon_would_reject_are_counted_not_published(
    fake: RunningFake, tmp_path: Path
) -> None:
    config = feeder_config(tmp_path, fake)
    now = time.time()
    fake.api.store.post("np6-788-cd", "HB_WEST", float(int(now)), now, price=250_000.0)
    metrics = FeedMetrics()
    sink = ListSink()
    assert await _poll(config, sink, metrics)
    assert 250_000.0 not in sink.prices("np6-788-cd")  # above the daemon's $100,000 bound
    assert (
        metrics.registry.get_sample_value(
            "curtaild_feed_rows_rejected_total", {"product": "np6-788-cd"}
        )
        == 1
    )


async def test_the_brokers_newer_retained_record_counts_as_published(
    fake: RunningFake, tmp_path: Path
) -> None:
    """A kill -9 after the broker's PUBACK but before the state save: the restart reads the
    retained record and does not send it again."""
    config = feeder_config(tmp_path, fake)
    first = ListSink()
    await _poll(config, first)
    last_topic, last_doc = first.messages[-1]
    state = FeedState(config.control.state_dir)
    state.load()
    del state.products[last_topic.rsplit("/", 1)[1]]  # as if the save never happened
    state.save()
    second = ListSink()
    metrics = FeedMetrics()
    async with aiohttp.ClientSession() as session:
        poller = Poller(config, client(session, config, metrics), second, state, metrics)
        poller.adopt({last_topic: json.dumps(last_doc).encode(), "other/topic": b"{}"})
        await poller.poll_once()
    assert second.messages == []


async def test_a_first_start_with_no_record_in_the_last_hour_publishes_the_latest(
    tmp_path: Path,
) -> None:
    api = FakeErcotApi()
    now = time.time()
    api.store.seed(now - 3 * 3600, hours=2.0, post_delay_s=60.0)  # history ending 3 h ago
    async with RunningFake(api) as fake:
        config = feeder_config(tmp_path, fake)
        sink = ListSink()
        assert await _poll(config, sink)
    for product in ("np6-788-cd", "np6-905-cd"):
        newest = max((r for r in api.store.visible(product, now) if r.point == "HB_WEST"),
                     key=lambda r: r.at_s)  # fmt: skip
        assert sink.prices(product) == [newest.price]
