"""MQTT topic names of CONTRACT section 2, derived once from the config."""

from __future__ import annotations

from dataclasses import dataclass

from controller.config import Config


@dataclass(frozen=True, slots=True)
class Topics:
    prefix: str
    price: str
    dispatch: str
    hashprice: str

    @classmethod
    def of(cls, config: Config) -> Topics:
        return cls(
            config.mqtt.topic_prefix.rstrip("/"),
            config.feeds.price_topic,
            config.feeds.dispatch_topic,
            config.feeds.hashprice_topic,
        )

    @property
    def status(self) -> str:
        return f"{self.prefix}/status"

    @property
    def plan(self) -> str:
        return f"{self.prefix}/plan"

    @property
    def events(self) -> str:
        return f"{self.prefix}/events"

    @property
    def override_set(self) -> str:
        return f"{self.prefix}/override/set"

    @property
    def override_state(self) -> str:
        return f"{self.prefix}/override/state"

    @property
    def dispatch_ack(self) -> str:
        return f"{self.prefix}/dispatch/ack"

    @property
    def dispatch_state(self) -> str:
        return f"{self.prefix}/dispatch/state"

    def pool_cmd(self, pool: str) -> str:
        return f"{self.prefix}/pools/{pool}/cmd"

    def pool_state(self, pool: str) -> str:
        return f"{self.prefix}/pools/{pool}/state"

    @property
    def pool_state_filter(self) -> str:
        return f"{self.prefix}/pools/+/state"

    @property
    def pool_cmd_filter(self) -> str:
        return f"{self.prefix}/pools/+/cmd"

    def subscriptions(self) -> list[str]:
        # Our own cmd topics too: their retained seq seeds the next seq after a restart.
        subs = [
            self.price,
            self.dispatch,
            self.override_set,
            self.pool_state_filter,
            self.pool_cmd_filter,
        ]
        if self.hashprice:
            subs.append(self.hashprice)
        return subs
