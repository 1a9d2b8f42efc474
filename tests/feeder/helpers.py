"""Shared by the feeder tests: a config pointed at the fake API, a client, a recording sink."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from controller.backoff import BackoffPolicy
from controller.config import Config, load_config
from controller.config_secrets import load_ercot_api_secrets
from controller.feeder.budget import RequestBudget
from controller.feeder.client import ErcotClient, RetryPolicy
from controller.feeder.metrics import FeedMetrics
from controller.feeder.token import Credentials
from controller.sim.ercot_api import RunningFake

SITE = """
[site]
poi_limit_kw = 30000
settlement_point = "HB_WEST"
[control]
state_dir = "{state}"
[ercot_api]
base_url = "{base}"
token_url = "{token}"
username = "user@example.com"
max_requests_per_min = {limit}
poll_s = {poll_s}
[[pools]]
name = "c01"
driver = "mqtt"
max_kw = 3000
efficiency_j_per_th = 21.5
"""
SECRETS_ENV = {"CURTAILD_ERCOT_API__PASSWORD": "pw", "CURTAILD_ERCOT_API__SUBSCRIPTION_KEY": "key"}
# Retries without the real waits: tests count tries, not seconds.
QUICK = RetryPolicy(attempts=4, backoff=BackoffPolicy(initial_s=0.01, max_s=0.05, jitter=0.5))


def feeder_config(
    tmp_path: Path, fake: RunningFake, limit: int = 30, poll_s: float = 60.0
) -> Config:
    text = SITE.format(state=tmp_path / "state", base=fake.base_url, token=fake.token_url,
                       limit=limit, poll_s=poll_s)  # fmt: skip
    path = tmp_path / "feeder.toml"
    path.write_text(text)
    config, problems = load_ercot_api_secrets(load_config(path, SECRETS_ENV), SECRETS_ENV)
    assert problems == []
    return config


def client(
    session: aiohttp.ClientSession,
    config: Config,
    metrics: FeedMetrics | None = None,
    policy: RetryPolicy = QUICK,
    budget: RequestBudget | None = None,
) -> ErcotClient:
    api = config.ercot_api
    return ErcotClient(
        session, api.base_url, api.subscription_key,
        Credentials(api.token_url, api.client_id, api.username, api.password),
        budget or RequestBudget(api.max_requests_per_min),
        (metrics or FeedMetrics()).request, policy,
    )  # fmt: skip


@dataclass
class ListSink:
    """Records what the poller publishes, as the broker would receive it."""

    messages: list[tuple[str, dict[str, Any]]] = field(default_factory=list)

    async def publish(self, topic: str, payload: bytes) -> None:
        self.messages.append((topic, json.loads(payload)))

    def prices(self, product: str) -> list[float]:
        key = "LMP" if product == "np6-788-cd" else "settlementPointPrice"
        return [doc[key] for topic, doc in self.messages if topic.endswith(product)]
