"""AGENT.toml (CONTRACT 2.7): `[mqtt]` as the daemon's, `[agent]` and its `[[agent.pools]]`."""

from __future__ import annotations

import ipaddress
import os
import tomllib
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator

from controller.config import MqttConfig
from controller.errors import ConfigError

# A CIDR block or range larger than this is a typo (a /8), not a container of miners.
MAX_MINERS_PER_POOL = 65_536


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class AgentPool(_Strict):
    name: Annotated[str, Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")]
    miners: list[str]

    @field_validator("miners")
    @classmethod
    def _expandable(cls, value: list[str]) -> list[str]:
        expand_miners(value)
        return value

    @property
    def ips(self) -> list[str]:
        return expand_miners(self.miners)


class AgentSection(_Strict):
    topic_prefix: Annotated[str, Field(min_length=1)] = "curtaild/site"
    poll_s: Annotated[float, Field(gt=0)] = 5.0
    miner_timeout_s: Annotated[float, Field(gt=0)] = 10.0
    state_dir: str = "/var/lib/curtaild-agent"
    miner_nominal_w: Annotated[float, Field(gt=0)] = 3250.0
    miner_j_per_th: Annotated[float, Field(gt=0)] = 30.0
    concurrency: Annotated[int, Field(ge=1, le=4096)] = 256  # pyasic calls in flight at once
    metrics_listen: str = "127.0.0.1:9110"  # "" turns the metrics server off
    pools: list[AgentPool] = Field(min_length=1)

    @field_validator("poll_s", "miner_timeout_s", "miner_nominal_w", "miner_j_per_th",
                     mode="before")  # fmt: skip
    @classmethod
    def _int_is_a_number(cls, value: Any) -> Any:
        return float(value) if isinstance(value, int) and not isinstance(value, bool) else value


class AgentConfig(_Strict):
    mqtt: MqttConfig = Field(default_factory=MqttConfig)
    agent: AgentSection


def expand_miners(specs: list[str]) -> list[str]:
    """Addresses, `a-b` ranges (inclusive) and CIDR blocks (hosts only), in order, deduplicated."""
    seen: dict[str, None] = {}
    for spec in specs:
        text = spec.strip()
        if "/" in text:
            network = ipaddress.ip_network(text, strict=False)
            if network.num_addresses > MAX_MINERS_PER_POOL:
                raise ValueError(f"{text}: more than {MAX_MINERS_PER_POOL} addresses")
            hosts = list(network.hosts()) if network.num_addresses > 2 else list(network)
            seen.update((str(ip), None) for ip in hosts)
        elif "-" in text:
            low_text, high_text = text.split("-", 1)
            low, high = ipaddress.ip_address(low_text), ipaddress.ip_address(high_text)
            if int(high) < int(low) or int(high) - int(low) >= MAX_MINERS_PER_POOL:
                raise ValueError(f"{text}: not a range of at most {MAX_MINERS_PER_POOL} addresses")
            seen.update((str(low + i), None) for i in range(int(high) - int(low) + 1))
        else:
            seen[str(ipaddress.ip_address(text))] = None
    return list(seen)


def load_agent_config(path: str | Path) -> AgentConfig:
    file = Path(path)
    if not file.is_file():
        raise ConfigError([f"config file {file}: not found (pass --config PATH to a TOML file)"])
    try:
        data = tomllib.loads(file.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([f"config file {file}: {exc}"]) from None
    # The daemon's own file may be shared: its other sections are not the agent's business.
    data = {key: data[key] for key in ("mqtt", "agent") if key in data}
    try:
        config = AgentConfig.model_validate(data)
    except ValidationError as exc:
        problems = [f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors()]
        raise ConfigError(problems) from None
    return _with_password(config)


def _with_password(config: AgentConfig) -> AgentConfig:
    """The MQTT password, as the daemon finds it: env CURTAILD_MQTT__PASSWORD, else
    `password_file`, else the systemd credential $CREDENTIALS_DIRECTORY/mqtt_password."""
    secret = os.environ.get("CURTAILD_MQTT__PASSWORD")
    file = config.mqtt.password_file
    credentials = os.environ.get("CREDENTIALS_DIRECTORY")
    if not file and credentials and (Path(credentials) / "mqtt_password").is_file():
        file = str(Path(credentials) / "mqtt_password")
    if secret is None and file:
        try:
            secret = Path(file).read_text(encoding="utf-8").rstrip("\r\n")
        except OSError as exc:
            raise ConfigError([f"mqtt.password_file: {exc}"]) from None
    if secret is None:
        return config
    mqtt = config.mqtt.model_copy(update={"password": SecretStr(secret)})
    return config.model_copy(update={"mqtt": mqtt})
