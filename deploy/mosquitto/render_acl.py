"""Render the mosquitto ACL for a curtaild site from its config (deploy/README.md, section 3).

    /opt/curtaild/.venv/bin/python deploy/mosquitto/render_acl.py \
        --config /etc/curtaild/curtaild.toml --operator op-jdoe > curtaild.acl

Topics come from the config exactly as the daemon reads it (`[mqtt] topic_prefix`, `[feeds]`
topics, the `driver = "mqtt"` pools), so the ACL cannot drift from what curtaild subscribes to.
Accounts: the controller is `[mqtt] username` (or `curtaild`); the price feed, QSE gateway and
monitor have default names; each mqtt pool gets its own agent account `pool-<pool>` unless
`--agent USER=POOL[,POOL...]` says which agent serves which pools (one agent may run several
pools, CONTRACT 2.7). `deploy/mosquitto/curtaild.acl.example` is this script's output for
`config.example.toml` (the integration tests check that and run the rendered ACL in mosquitto).

Exit codes: 0 rendered (on stdout), 2 bad config or arguments.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from controller.config import Config, load_config
from controller.errors import ConfigError

WILDCARDS = frozenset("+#")


@dataclass(frozen=True, slots=True)
class Accounts:
    """Who connects as whom; `agents` maps an agent account to the pools it runs."""

    controller: str
    feed: str = "ercot-feed"
    qse: str = "qse-gateway"
    agents: dict[str, list[str]] = field(default_factory=dict)
    operators: list[str] = field(default_factory=list)
    monitor: str = ""


def render(config: Config, accounts: Accounts, source: str) -> str:
    prefix = config.mqtt.topic_prefix.rstrip("/")
    feeds = config.feeds
    blocks = [
        _header(source, prefix),
        _block(
            "the controller",
            [
                "Owns everything under its prefix: pools/<pool>/cmd (and reads them back at start",
                "to continue seq), plan, status (and its will), events, dispatch/ack,",
                "dispatch/state, override/state; reads pools/+/state and override/set there.",
            ],
            accounts.controller,
            [
                ("readwrite", f"{prefix}/#"),
                ("read", feeds.price_topic),
                ("read", feeds.dispatch_topic),
            ]
            + ([("read", feeds.hashprice_topic)] if feeds.hashprice_topic else []),
        ),
        _block(
            "price publisher (curtaild feed-ercot or the QSE's price relay)",
            [
                "Reads its own retained records back at start: `curtaild feed-ercot` takes the",
                "broker's newest as published, so a restart neither repeats nor skips one.",
            ],
            accounts.feed,
            [("readwrite", feeds.price_topic)]
            + ([("write", feeds.hashprice_topic)] if feeds.hashprice_topic else []),
        ),
        _block(
            "the site's QSE gateway",
            ["Writes instructions; reads the controller's answers."],
            accounts.qse,
            [
                ("write", feeds.dispatch_topic),
                ("read", f"{prefix}/dispatch/ack"),
                ("read", f"{prefix}/dispatch/state"),
                ("read", f"{prefix}/status"),
            ],
        ),
    ]
    agent_note = [
        "Each agent reads its pools' cmd and writes their state, nothing else: an agent that",
        "could write another pool's state could fake that pool's confirmation (I9).",
    ]
    for user, pools in accounts.agents.items():
        grants: list[tuple[str, str]] = []
        for pool in pools:
            grants += [("read", f"{prefix}/pools/{pool}/cmd"),
                       ("write", f"{prefix}/pools/{pool}/state")]  # fmt: skip
        blocks.append(_block(f"pool agent {user}", agent_note, user, grants))
        agent_note = []
    operator_note = [
        "`curtaild override` and `curtaild status` from their own machines: read everything",
        "the controller publishes, write only override requests. With [override] hmac_key_file",
        "set an override also needs the key: the ACL is the first gate, the signature the second.",
    ]
    if not accounts.operators:
        operator_note.append("No operator account: nobody can publish override/set.")
        blocks.append(_block("operators", operator_note, "", []))
    for user in accounts.operators:
        grants = [("read", f"{prefix}/#"), ("write", f"{prefix}/override/set")]
        blocks.append(_block(f"operator {user}", operator_note, user, grants))
        operator_note = []
    if accounts.monitor:
        blocks.append(
            _block("monitoring: broker health only", [], accounts.monitor, [("read", "$SYS/#")])
        )
    return "\n".join(blocks)


def _header(source: str, prefix: str) -> str:
    return (
        f"# mosquitto ACL for curtaild, rendered by deploy/mosquitto/render_acl.py from {source}\n"
        f'# (topic_prefix "{prefix}"). Re-render it after changing topics, pools or accounts\n'
        "# rather than editing it; install it as /etc/mosquitto/curtaild.acl (deploy/README.md).\n"
        "# Anything not granted here is denied. A denied publish still looks like success to the\n"
        "# client (the broker drops it silently): check grants from the receiving side.\n"
    )


def _block(title: str, notes: list[str], user: str, grants: list[tuple[str, str]]) -> str:
    lines = [f"# --- {title} " + "-" * max(3, 92 - len(title))]
    lines += [f"# {note}" for note in notes]
    if user:
        lines.append(f"user {user}")
        lines += [f"topic {access} {topic}" for access, topic in grants]
    return "\n".join(lines) + "\n"


def check(config: Config, accounts: Accounts) -> list[str]:
    """Every problem with the accounts against the config, one line each."""
    problems: list[str] = []
    prefix = config.mqtt.topic_prefix
    if WILDCARDS & set(prefix):
        problems.append(f"[mqtt] topic_prefix {prefix!r} contains an MQTT wildcard (+ or #)")
    users = [accounts.controller, accounts.feed, accounts.qse, *accounts.agents,
             *accounts.operators] + ([accounts.monitor] if accounts.monitor else [])  # fmt: skip
    problems += [
        f"account name {user!r}: must be non-empty without spaces"
        for user in users
        if not user or any(c.isspace() for c in user)
    ]
    seen = set()
    for user in users:
        if user in seen:
            problems.append(f"account {user!r} is given two roles: one account per party")
        seen.add(user)
    mqtt_pools = {p.name for p in config.pools if p.driver == "mqtt"}
    served = {pool for pools in accounts.agents.values() for pool in pools}
    problems += [
        f'--agent names pool {pool!r}, which is not a driver = "mqtt" pool'
        for pool in sorted(served - mqtt_pools)
    ]
    problems += [
        f'pool {pool!r} (driver = "mqtt") has no agent account: add --agent'
        for pool in sorted(mqtt_pools - served)
    ]
    return problems


def parse_agents(specs: Sequence[str], config: Config) -> dict[str, list[str]]:
    if not specs:
        return {f"pool-{p.name}": [p.name] for p in config.pools if p.driver == "mqtt"}
    agents: dict[str, list[str]] = {}
    for spec in specs:
        user, sep, pools = spec.partition("=")
        names = [name.strip() for name in pools.split(",") if name.strip()]
        if not sep or not names:
            raise ConfigError([f"--agent {spec!r}: expected USER=POOL[,POOL...]"])
        agents.setdefault(user.strip(), []).extend(names)
    return agents


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", required=True, help="the site's curtaild.toml")
    parser.add_argument("--feed", default="ercot-feed", help="price publisher account")
    parser.add_argument("--qse", default="qse-gateway", help="QSE gateway account")
    parser.add_argument(
        "--agent",
        action="append",
        default=[],
        metavar="USER=POOL[,POOL]",
        help="an agent account and the mqtt pools it runs (repeatable; "
        "default: pool-<pool> for each mqtt pool)",
    )
    parser.add_argument(
        "--operator",
        action="append",
        default=[],
        metavar="USER",
        help="an operator account allowed to publish overrides (repeatable)",
    )
    parser.add_argument("--monitor", default="", metavar="USER", help="an account for $SYS/#")
    args = parser.parse_args(argv)
    try:
        config = load_config(args.config)
        accounts = Accounts(
            controller=config.mqtt.username or "curtaild",
            feed=args.feed,
            qse=args.qse,
            agents=parse_agents(args.agent, config),
            operators=list(args.operator),
            monitor=args.monitor,
        )
    except ConfigError as exc:
        return _refuse(args.config, exc.problems)
    problems = check(config, accounts)
    if problems:
        return _refuse(args.config, problems)
    sys.stdout.write(render(config, accounts, Path(args.config).name))
    return 0


def _refuse(config_path: str, problems: list[str]) -> int:
    lines = [f"render_acl: cannot render the ACL from {config_path}:"]
    lines += [f"  - {problem}" for problem in problems]
    sys.stderr.write("\n".join(lines) + "\n")
    return 2


if __name__ == "__main__":
    sys.exit(main())
