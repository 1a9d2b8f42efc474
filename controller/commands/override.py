"""`curtaild override --config PATH {curtail|limit KW|run|auto} --ttl DURATION --reason TEXT`.

Builds the message of CONTRACT 2.3 (signed when `hmac_key_file` is set), publishes it and prints
the override state the daemon answers with. Exit 1 when the daemon refuses it or is silent.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import re
import secrets
import time
from typing import Any

from controller.adapters.mqtt_oneshot import request_reply
from controller.clock import iso
from controller.config import Config, load_config
from controller.errors import CurtaildError, UsageError
from controller.feeds.override import load_hmac_key, sign_override
from controller.runtime.topics import Topics

_DURATION = re.compile(r"^\s*(\d+)\s*([smhd]?)\s*$")
_UNIT_S = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}
REPLY_TIMEOUT_S = 5.0


def parse_duration_s(text: str) -> int:
    match = _DURATION.match(text)
    if match is None:
        raise UsageError(f"--ttl {text!r}: expected seconds or a duration like 90s, 15m, 2h, 1d")
    return int(match.group(1)) * _UNIT_S[match.group(2)]


def build_request(args: argparse.Namespace, config: Config, now: float) -> dict[str, Any]:
    if args.mode == "limit" and args.limit_kw is None:
        raise UsageError("override limit needs the mining cap in kW: curtaild override limit 5000")
    if args.mode != "limit" and args.limit_kw is not None:
        raise UsageError(f"override {args.mode} takes no kW value")
    request: dict[str, Any] = {
        "mode": args.mode,
        "limit_kw": args.limit_kw,
        "operator": args.operator or getpass.getuser(),
        "reason": args.reason,
        "issued_at": iso(now),
        "nonce": secrets.token_hex(8),
    }
    if args.mode != "auto":
        ttl_s = parse_duration_s(args.ttl)
        if not 1 <= ttl_s <= config.override.max_ttl_s:
            raise UsageError(f"--ttl {args.ttl}: must be 1 s .. {config.override.max_ttl_s} s")
        request["ttl_s"] = ttl_s
    if config.override.hmac_key_file:
        request = sign_override(request, load_hmac_key(config.override.hmac_key_file))
    return request


def override_command(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    request = build_request(args, config, time.time())
    topics = Topics.of(config)
    reply = asyncio.run(
        request_reply(
            config.mqtt,
            topics.override_set,
            json.dumps(request, separators=(",", ":")),
            topics.override_state,
            REPLY_TIMEOUT_S,
        )
    )
    if reply is None:
        raise CurtaildError(
            f"no answer on {topics.override_state} within {REPLY_TIMEOUT_S:g} s: is curtaild "
            "running with this config's [mqtt] topic_prefix? (curtaild status --config ...)"
        )
    state = json.loads(reply)
    print(json.dumps(state, indent=2))
    if state.get("last_error"):
        print(f"curtaild refused the override: {state['last_error']}")
        return 1
    return 0
