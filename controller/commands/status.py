"""`curtaild status --config PATH`: the retained status, plan, override and dispatch state."""

from __future__ import annotations

import argparse
import asyncio
import json
from typing import Any

from controller.adapters.mqtt_oneshot import fetch_retained
from controller.config import load_config
from controller.errors import CurtaildError
from controller.runtime.topics import Topics


def status_command(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    t = Topics.of(config)
    wanted = {
        "status": t.status,
        "plan": t.plan,
        "override": t.override_state,
        "dispatch": t.dispatch_state,
    }
    got = asyncio.run(fetch_retained(config.mqtt, list(wanted.values())))
    docs: dict[str, Any] = {}
    for key, topic in wanted.items():
        if topic in got:
            try:
                docs[key] = json.loads(got[topic])
            except ValueError:
                docs[key] = {"unparsable": got[topic].decode(errors="replace")}
    if not docs:
        raise CurtaildError(
            f"nothing retained under {t.prefix}/: curtaild has never run against this broker "
            "with this [mqtt] topic_prefix"
        )
    if args.json:
        print(json.dumps(docs, indent=2))
    else:
        print(render(docs))
    return 0


def render(docs: dict[str, Any]) -> str:
    lines = []
    status = docs.get("status", {})
    lines.append(
        f"status:   {status.get('state', '?')} since {status.get('since', '?')}"
        f"  (version {status.get('version', '?')})"
    )
    if status.get("failsafe"):
        lines.append(f"failsafe: {', '.join(status['failsafe'])}")
    plan = docs.get("plan")
    if plan:
        lines.append(
            f"plan:     at {plan.get('at')}  price {plan.get('price_usd_per_mwh')} $/MWh  "
            f"cap {plan.get('mining_cap_kw')} kW ({plan.get('binding')})  "
            f"GPU reserved {plan.get('gpu_reserved_kw')} kW"
        )
        lines.extend(
            f"  {name:<16} {pool.get('state', '?'):<10} "
            f"{pool.get('target_kw', 0):>10.1f} kW  {pool.get('reason', '')}"
            for name, pool in sorted(plan.get("pools", {}).items())
        )
    override = docs.get("override")
    if override:
        if override.get("active"):
            lines.append(
                f"override: {override.get('mode')} limit={override.get('limit_kw')} "
                f"until {override.get('expires_at')} by {override.get('operator')}: "
                f"{override.get('reason')}"
            )
        else:
            lines.append("override: none")
        if override.get("last_error"):
            lines.append(f"          last refused: {override['last_error']}")
    dispatch = docs.get("dispatch")
    if dispatch is not None:
        obligations = dispatch.get("obligations", [])
        lines.append(f"dispatch: {len(obligations)} active")
        lines.extend(
            f"  {ob.get('id'):<20} {ob.get('type'):<6} cap {ob.get('cap_kw')} kW  "
            f"{ob.get('status')}  deadline {ob.get('deadline')}"
            for ob in obligations
        )
    return "\n".join(lines)
