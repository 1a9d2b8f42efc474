"""`curtaild feed-ercot --config PATH` (CONTRACT 2.6): ERCOT's public API into MQTT price
records, as a process of its own; `--backfill FROM TO --csv FILE` writes history instead."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
from datetime import date
from pathlib import Path

import aiohttp

from controller import __version__, logs
from controller.adapters.metrics_server import start_server
from controller.adapters.mqtt import RECONNECT_BACKOFF, BrokerUnreachable
from controller.adapters.mqtt_oneshot import fetch_retained
from controller.app import run_main
from controller.config import Config, load_config
from controller.config_secrets import load_ercot_api_secrets
from controller.errors import ConfigError, CurtaildError, UsageError
from controller.feeder.budget import RequestBudget
from controller.feeder.client import ErcotClient
from controller.feeder.metrics import FeedMetrics
from controller.feeder.poller import Poller
from controller.feeder.publish import Publisher
from controller.feeder.state import FeedState
from controller.feeder.token import Credentials

logger = logging.getLogger("curtaild.feed_ercot")


def feed_ercot_command(args: argparse.Namespace) -> int:
    logs.configure()
    config = load_config(args.config)
    config, problems = load_ercot_api_secrets(config, os.environ)
    if problems:
        raise ConfigError(problems)
    if args.backfill is not None:
        from controller.feeder.backfill import backfill_command  # noqa: PLC0415

        start, end = (
            _day(text, name) for text, name in zip(args.backfill, ("FROM", "TO"), strict=True)
        )
        if args.csv is None:
            raise UsageError("--backfill needs --csv FILE (where the history is written)")
        return run_main(backfill_command(config, args.product, start, end, Path(args.csv)))
    _check_state_dir(Path(config.control.state_dir))
    return run_main(feed(config))


def _day(text: str, name: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise UsageError(f"--backfill {name}: expected a date YYYY-MM-DD, got {text!r}") from None


def _check_state_dir(path: Path) -> None:
    """Without a writable state_dir every restart would repeat records: refuse to start."""
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / ".feed-ercot-write-test"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise CurtaildError(
            f"control.state_dir {path}: not writable ({exc.strerror}); the feeder keeps what it "
            "published there (set [control] state_dir, or StateDirectory= in the unit)"
        ) from None


def client_for(config: Config, session: aiohttp.ClientSession, metrics: FeedMetrics) -> ErcotClient:
    api = config.ercot_api
    creds = Credentials(api.token_url, api.client_id, api.username, api.password)
    budget = RequestBudget(api.max_requests_per_min)
    return ErcotClient(session, api.base_url, api.subscription_key, creds, budget, metrics.request)


async def _retained(config: Config) -> dict[str, bytes]:
    """What the broker holds on the feeder's topics; waits for the broker (never exits)."""
    topics = [f"{config.ercot_api.publish_topic}/{p}" for p in config.ercot_api.products]
    failures = 0
    while True:
        try:
            return await fetch_retained(config.mqtt, topics, timeout_s=5.0)
        except BrokerUnreachable as exc:
            failures += 1
            logger.warning("reading the retained records: %s; retrying", exc)
            await asyncio.sleep(RECONNECT_BACKOFF.delay_s(failures))


async def feed(config: Config) -> int:
    metrics = FeedMetrics()
    server = start_server(config.ercot_api.metrics_listen, metrics.registry)
    state = FeedState(config.control.state_dir)
    for problem in state.load():
        logger.warning("state: %s", problem)
    publisher = Publisher(config.mqtt, f"{config.mqtt.client_id}-feed-ercot")
    task = asyncio.current_task()
    assert task is not None
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, task.cancel)
    headers = {"User-Agent": f"curtaild/{__version__} feed-ercot"}
    logger.info("feed-ercot %s: %s for %s every %gs, at most %d requests/min", __version__,
                ", ".join(config.ercot_api.products), config.site.settlement_point,
                config.ercot_api.poll_s, config.ercot_api.max_requests_per_min)  # fmt: skip
    try:
        async with aiohttp.ClientSession(headers=headers) as session:
            client = client_for(config, session, metrics)
            poller = Poller(config, client, publisher, state, metrics)
            poller.adopt(await _retained(config))
            await poller.run()
    except asyncio.CancelledError:
        logger.info("feed-ercot stopping")
    finally:
        with contextlib.suppress(Exception):
            await publisher.close()
        server.close()
    return 0
