"""Pieces of the cgminer-style RPC replies both simulated firmwares share."""

from __future__ import annotations

import time
from typing import Any

from controller.sim.miners.state import SimMinerState


def status(code: int, msg: str, ok: bool = True) -> list[dict[str, Any]]:
    return [
        {"STATUS": "S" if ok else "E", "When": int(time.time()), "Code": code, "Msg": msg,
         "Description": ""}
    ]  # fmt: skip


def error(msg: str) -> dict[str, Any]:
    return {"STATUS": status(14, msg, ok=False), "id": 1}


def summary(miner: SimMinerState, elapsed_s: int) -> dict[str, Any]:
    ghs = round(miner.hashrate_ths() * 1000.0, 2)
    return {
        "STATUS": status(11, "Summary"),
        "SUMMARY": [{"Elapsed": elapsed_s, "GHS 5s": ghs, "GHS av": ghs, "Accepted": 0,
                     "Rejected": 0, "Hardware Errors": 0}],
        "id": 1,
    }  # fmt: skip


def pools() -> dict[str, Any]:
    return {
        "STATUS": status(7, "1 Pool(s)"),
        "POOLS": [{"POOL": 0, "URL": "stratum+tcp://pool.invalid:3333", "User": "site.worker",
                   "Status": "Alive", "Stratum Active": True, "Accepted": 0, "Rejected": 0,
                   "Get Failures": 0, "Remote Failures": 0, "GROUP": 0, "Priority": 0}],
        "id": 1,
    }  # fmt: skip


def stats(miner: SimMinerState, miner_key: str, elapsed_s: int) -> dict[str, Any]:
    ideal_ghs = round(miner.expected_ths * 1000.0, 2)
    return {
        "STATUS": status(70, "CGMiner stats"),
        "STATS": [
            {miner_key: "1.0.0", "Miner": "uart_trans.1.3", "Type": miner.model},
            {"STATS": 0, "ID": "BC50", "Elapsed": elapsed_s, "total_rateideal": ideal_ghs,
             "rate_unit": "GH", "total_rate": round(miner.hashrate_ths() * 1000.0, 2),
             "fan_num": 4, "fan1": 5400, "fan2": 5400, "fan3": 5400, "fan4": 5400},
        ],
        "id": 1,
    }  # fmt: skip


def multi(handle: Any, command: str, request: dict[str, Any]) -> dict[str, Any]:
    """cgminer's "a+b" multi-command: each reply wrapped in a list under its command name."""
    reply: dict[str, Any] = {"id": 1}
    for part in command.split("+"):
        reply[part] = [handle({**request, "command": part})]
    return reply
