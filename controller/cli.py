"""The `curtaild` command line (CONTRACT section 5). Exit codes: 0 ok, 2 bad input, 1 runtime."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable, Sequence

from controller import __version__
from controller.errors import ConfigError, CurtaildError


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="curtaild", description=__doc__)
    parser.add_argument("--version", action="version", version=f"curtaild {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = sub.add_parser("run", help="run the controller daemon")
    run.add_argument("--config", required=True, help="path to the TOML config")

    check = sub.add_parser("check-config", help="validate a config and print it, redacted")
    check.add_argument("--config", required=True)

    demo = sub.add_parser("demo", help="the daemon against a simulated site on loopback")
    demo.add_argument("--prices", help="an NP6-905-CD CSV to replay (default: synthetic day)")
    demo.add_argument("--from", dest="date_from", help="first delivery date, YYYY-MM-DD")
    demo.add_argument("--to", dest="date_to", help="last delivery date, YYYY-MM-DD")
    demo.add_argument("--speed", type=float, default=0.25, help="wall seconds per interval")
    demo.add_argument("--metrics-port", type=int, default=9108)
    demo.add_argument("--plain", action="store_true", help="log lines instead of a live view")

    back = sub.add_parser("backtest", help="the decision engine over a price history")
    back.add_argument("--config", required=True)
    back.add_argument(
        "--prices",
        required=True,
        help="NP6-905-CD, NP4-190-CD, or the hourly hub-price table (value stack)",
    )
    back.add_argument("--from", dest="date_from", help="first delivery date, YYYY-MM-DD")
    back.add_argument("--to", dest="date_to", help="last delivery date, YYYY-MM-DD")
    back.add_argument("--plot", help="write a PNG chart (the value stack: monthly, by source)")
    back.add_argument(
        "--market",
        choices=["rt", "dam"],
        default="rt",
        help="hourly hub table: real-time hourly means or day-ahead prices",
    )
    back.add_argument(
        "--allow-gaps",
        action="store_true",
        help="hourly hub table: value the hours present, list the missing ones",
    )
    back.add_argument(
        "--reserve-prices",
        action="append",
        metavar="CSV",
        help="DAM clearing prices for capacity, NP4-181-ER or NP4-188-CD "
        "(repeatable): values [[backtest.offers]]",
    )
    back.add_argument(
        "--4cp",
        dest="fourcp",
        metavar="CSV",
        help="the official 4CP intervals: values the 4CP strategies",
    )
    back.add_argument(
        "--load", metavar="CSV", help="ERCOT hourly load, NP6-346-CD: the causal 4CP rule"
    )
    back.add_argument("--json", action="store_true", help="the value stack as JSON")

    ovr = sub.add_parser("override", help="publish an operator override")
    ovr.add_argument("--config", required=True)
    ovr.add_argument("mode", choices=["curtail", "limit", "run", "auto"])
    ovr.add_argument("limit_kw", nargs="?", type=float, help="for `limit`: the mining cap, kW")
    ovr.add_argument("--ttl", default="1h", help="duration: 3600, 90s, 15m, 2h, 1d")
    ovr.add_argument("--reason", default="", help="why (kept in the audit trail)")
    ovr.add_argument("--operator", default=None, help="who (default: $USER)")

    status = sub.add_parser("status", help="show the retained status, plan, override, dispatch")
    status.add_argument("--config", required=True)
    status.add_argument("--json", action="store_true", help="raw JSON")

    audit = sub.add_parser("audit", help="export the audit trail from the state store")
    audit.add_argument("--config", required=True)
    audit.add_argument("--from", dest="date_from", help="ISO 8601, inclusive (bare date: midnight")
    audit.add_argument("--to", dest="date_to", help="ISO 8601, exclusive   America/Chicago)")
    audit.add_argument("--format", choices=["csv", "jsonl"], default="csv")
    audit.add_argument("--kind", dest="kinds", action="append", metavar="KIND",
                       help="only records of this kind (repeatable)")  # fmt: skip
    audit.add_argument("--dispatch", metavar="ID", help="the proof of one dispatch instruction")
    audit.add_argument("--out", metavar="FILE", help="write here instead of stdout")
    audit.add_argument("--also", dest="also", action="append", metavar="DB", default=[],
                       help="another node's curtaild.db to merge in by time ([ha])")  # fmt: skip

    feed = sub.add_parser("feed-ercot", help="poll ERCOT's public API into MQTT price records")
    feed.add_argument("--config", required=True)
    feed.add_argument(
        "--backfill",
        nargs=2,
        metavar=("FROM", "TO"),
        help="instead: write history, delivery dates YYYY-MM-DD, both inclusive",
    )
    feed.add_argument("--csv", metavar="FILE", help="with --backfill: the CSV to write")
    feed.add_argument(
        "--product",
        choices=["np6-905-cd", "np6-788-cd"],
        default="np6-905-cd",
        help="with --backfill: 15-min RT SPP, or SCED LMP (as 15-min means)",
    )
    agent = sub.add_parser("agent", help="the pool agent: drives miners through pyasic (2.7)")
    agent.add_argument("--config", required=True, help="path to AGENT.toml")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    handlers: dict[str, Callable[[argparse.Namespace], int]] = {
        "check-config": _lazy("controller.commands.check_config", "check_config_command"),
        "run": _lazy("controller.commands.run", "run_command"),
        "demo": _lazy("controller.commands.demo", "demo_command"),
        "backtest": _lazy("controller.commands.backtest", "backtest_command"),
        "override": _lazy("controller.commands.override", "override_command"),
        "status": _lazy("controller.commands.status", "status_command"),
        "audit": _lazy("controller.commands.audit", "audit_command"),
        "feed-ercot": _lazy("controller.commands.feed_ercot", "feed_ercot_command"),
        "agent": _lazy("controller.commands.agent", "agent_command"),
    }
    try:
        return handlers[args.command](args)
    except ConfigError as exc:
        print("curtaild: invalid configuration:", file=sys.stderr)
        for problem in exc.problems:
            print(f"  - {problem}", file=sys.stderr)
        return exc.exit_code
    except CurtaildError as exc:
        print(f"curtaild: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130


def _lazy(module: str, name: str) -> Callable[[argparse.Namespace], int]:
    """Import a command's module only when it runs: check-config stays fast and light."""

    def call(args: argparse.Namespace) -> int:
        handler: Callable[[argparse.Namespace], int] = getattr(
            importlib.import_module(module), name
        )
        return handler(args)

    return call
