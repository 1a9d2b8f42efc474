"""Bitmain's stock Antminer firmware (S19 generation): can only sleep, reports no wattage.

As pyasic drives it: `get_miner` sees the web server's Digest realm `antMiner Configuration`
on port 80 and `"Type": "Antminer ..."` in RPC `version` on 4028, reads the model from
`/cgi-bin/get_system_info.cgi`; `stop_mining`/`resume_mining` read `get_miner_conf.cgi` and
post it back to `set_miner_conf.cgi` with `miner-mode` 1 (sleep) or 0 (normal); `is_mining`
reads `bitmain-work-mode`; hashrate comes from RPC `summary` (`GHS 5s`), the ideal from
`stats` (`total_rateideal`). `/kaonsu/v1/brief` (Marathon's marker) is absent.
"""

from __future__ import annotations

import time
from typing import Any

from controller.sim.miners import rpc_common as rc
from controller.sim.miners.state import SimMinerState
from controller.sim.miners.wire import DigestGuard, HttpRequest, HttpResponse

REALM = "antMiner Configuration"


class StockAntminer:
    family = "stock_antminer"
    web_password = "root"  # noqa: S105 (the factory default pyasic logs in with)

    def __init__(self, state: SimMinerState) -> None:
        self.state = state
        self.started = time.monotonic()
        self.guard = DigestGuard(REALM, "root", self.web_password)
        self.requests = 0

    def _elapsed(self) -> int:
        return int(time.monotonic() - self.started)

    # -- RPC (bmminer) ---------------------------------------------------------------------

    def rpc(self, request: dict[str, Any]) -> dict[str, Any]:
        self.requests += 1
        command = str(request.get("command", ""))
        if "+" in command:
            return rc.multi(self.rpc, command, request)
        miner = self.state
        if command == "version":
            return {
                "STATUS": rc.status(22, "BMMiner versions"),
                "VERSION": [{"BMMiner": "1.0.0", "API": "3.1", "Miner": "uart_trans.1.3",
                             "CompileTime": "Thu Jul 13 12:00:00 CST 2023",
                             "Type": miner.model}],
                "id": 1,
            }  # fmt: skip
        if command == "summary":
            return rc.summary(miner, self._elapsed())
        if command == "stats":
            return rc.stats(miner, "BMMiner", self._elapsed())
        if command == "pools":
            return rc.pools()
        return rc.error("Invalid command")

    # -- web (lighttpd CGI behind Digest auth) ---------------------------------------------

    def web(self, request: HttpRequest) -> HttpResponse:
        self.requests += 1
        if not self.guard.allows(request):
            return self.guard.challenge()
        path = request.path.split("?", 1)[0]
        if path == "/cgi-bin/get_system_info.cgi":
            return HttpResponse.of_json(self._system_info())
        if path == "/cgi-bin/get_miner_conf.cgi":
            return HttpResponse.of_json(self._miner_conf())
        if path == "/cgi-bin/set_miner_conf.cgi" and request.method == "POST":
            return HttpResponse.of_json(self._set_miner_conf(request.json()))
        if path == "/cgi-bin/get_blink_status.cgi":
            return HttpResponse.of_json({"blink": False})
        if path in {"/", "/index.html"}:
            return HttpResponse.html("<html><title>Antminer</title></html>")
        return HttpResponse(404, b"404 Not Found")

    def _system_info(self) -> dict[str, Any]:
        last = self.state.ip.rsplit(".", 1)[-1]
        return {
            "minertype": self.state.model, "nettype": "DHCP", "netdevice": "eth0",
            "macaddr": f"02:00:00:00:00:{int(last):02X}", "hostname": f"Antminer-{last}",
            "ipaddress": self.state.ip, "serinum": f"SIM{last:0>8}",
            "system_filesystem_version": "Thu Jul 13 12:00:00 CST 2023",
        }  # fmt: skip

    def _miner_conf(self) -> dict[str, Any]:
        return {
            "pools": [{"url": "stratum+tcp://pool.invalid:3333", "user": "site.worker",
                       "pass": "x"}],
            "api-listen": True, "api-network": True, "api-groups": "A:stats:pools:devs:summary",
            "api-allow": "A:0/0,W:*", "bitmain-fan-ctrl": False, "bitmain-fan-pwm": "100",
            "bitmain-use-vil": True, "bitmain-freq": "675", "bitmain-voltage": "1400",
            "bitmain-ccdelay": "0", "bitmain-pwth": "0",
            "bitmain-work-mode": "1" if self.state.sleeping else "0", "bitmain-freq-level": "100",
        }  # fmt: skip

    def _set_miner_conf(self, doc: Any) -> dict[str, Any]:
        if not isinstance(doc, dict) or "miner-mode" not in doc:
            return {"stats": "error", "code": "M001", "msg": "bad request"}
        mode = int(doc["miner-mode"])
        if mode not in {0, 1, 3}:
            return {"stats": "error", "code": "M001", "msg": "bad miner-mode"}
        sleeping = mode == 1
        if sleeping != self.state.sleeping:
            self.state.set_sleeping(sleeping)
        return {"stats": "success", "code": "M000", "msg": "OK!"}
