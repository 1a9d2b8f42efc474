"""Luxor's LuxOS firmware: power profiles (a limit), curtail sleep/wakeup, wattage reported.

As pyasic drives it: `get_miner` sees `LUXminer` in RPC `version` on 4028 (and "Luxor Firmware"
on the web page at 80), the model from `version`'s `Type`. Privileged commands carry a session
id as their first parameter (`logon` makes one, `session` tells the current one);
`stop_mining`/`resume_mining` send `curtail` `sleep`/`wakeup`; `set_power_limit(W)` reads the
config by the multi-command `tempctrl+fans+pools+groups+config+profiles`, picks the highest
profile at or under W (False below the lowest), checks `atm`, and sends `profileset`; wattage
comes from `power` (`Watts`). With ATM (Advanced Thermal Management) on, the firmware moves the
profile itself: pyasic turns ATM off around `profileset`, and this simulation refuses a
`profileset` while ATM is on, the strict reading of that (`atm_enabled`, off by default).
"""

from __future__ import annotations

import secrets
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

from controller.sim.miners import rpc_common as rc
from controller.sim.miners.state import SimMinerState
from controller.sim.miners.wire import HttpRequest, HttpResponse

DEFAULT_PROFILE = "default"
# Profiles from 55% to 100% of nominal in nine steps below the default, as LuxOS offers
# frequency steps under its stock profile.
PROFILE_FRACTIONS = [0.55 + 0.05 * i for i in range(9)]


def profiles_for(nominal_w: float, j_per_th: float) -> list[dict[str, Any]]:
    rows = []
    for step, fraction in enumerate(PROFILE_FRACTIONS):
        rows.append(_profile(f"-{len(PROFILE_FRACTIONS) - step}", nominal_w * fraction, j_per_th))
    rows.append(_profile(DEFAULT_PROFILE, nominal_w, j_per_th))
    return rows


def _profile(name: str, watts: float, j_per_th: float) -> dict[str, Any]:
    return {"Profile Name": name, "Watts": round(watts), "Hashrate": round(watts / j_per_th, 2),
            "IsTuned": True, "Frequency": round(500 * watts / 3000), "Voltage": 13.8,
            "Step": name}  # fmt: skip


class LuxOS:
    family = "luxos"

    def __init__(self, state: SimMinerState) -> None:
        self.state = state
        self.started = time.monotonic()
        self.profiles = profiles_for(state.nominal_w, state.j_per_th)
        self.profile = DEFAULT_PROFILE
        self.session_id = ""
        self.atm_enabled = False
        self.requests = 0
        self.commands: Counter[str] = Counter()  # RPC commands received, by name
        if state.limit_w is not None:
            self._apply_profile(self._profile_at_or_under(state.limit_w) or DEFAULT_PROFILE)

    def _elapsed(self) -> int:
        return int(time.monotonic() - self.started)

    def reboot(self) -> None:
        """Back from a reboot: mining again at its saved profile, and every session gone (a
        client holding the old session id is refused until it logs on again)."""
        self.started = time.monotonic()
        self.session_id = ""
        if self.state.sleeping:
            self.state.set_sleeping(False)

    def _profile_at_or_under(self, watts: float) -> str | None:
        fitting = [p for p in self.profiles if p["Watts"] <= watts]
        return max(fitting, key=lambda p: p["Watts"])["Profile Name"] if fitting else None

    def _apply_profile(self, name: str) -> None:
        self.profile = name
        watts = next(p["Watts"] for p in self.profiles if p["Profile Name"] == name)
        self.state.set_limit(None if name == DEFAULT_PROFILE else float(watts))

    def web(self, request: HttpRequest) -> HttpResponse:
        self.requests += 1
        return HttpResponse.html("<html><head><title>Luxor Firmware</title></head></html>")

    def rpc(self, request: dict[str, Any]) -> dict[str, Any]:
        self.requests += 1
        command = str(request.get("command", ""))
        if "+" in command:
            return rc.multi(self.rpc, command, request)
        self.commands[command] += 1
        params = [p for p in str(request.get("parameter", "")).split(",") if p != ""]
        readers = {
            "version": self._version, "devdetails": self._devdetails, "power": self._power,
            "config": self._config, "profiles": self._profiles, "session": self._session,
            "logon": self._logon, "atm": self._atm, "tempctrl": self._tempctrl,
            "fans": self._fans, "groups": self._groups,
            "summary": lambda: rc.summary(self.state, self._elapsed()),
            "stats": lambda: rc.stats(self.state, "LUXminer", self._elapsed()),
            "pools": rc.pools,
        }  # fmt: skip
        if command in readers:
            return readers[command]()
        writers: dict[str, Callable[[list[str]], dict[str, Any]]] = {
            "curtail": self._curtail,
            "profileset": self._profileset,
            "atmset": self._atmset,
        }
        if command in writers:
            if not params or not self.session_id or params[0] != self.session_id:
                return rc.error("Invalid session id")
            return writers[command](params[1:])
        return rc.error("Invalid command")

    def _version(self) -> dict[str, Any]:
        return {
            "STATUS": rc.status(22, "LUXminer versions"),
            "VERSION": [{"API": "3.7", "LUXminer": "2024.6.18.193209-4d7ca1e9",
                         "Miner": "2024.6.18.193209-4d7ca1e9", "Type": self.state.model}],
            "id": 1,
        }  # fmt: skip

    def _devdetails(self) -> dict[str, Any]:
        boards = [{"DEVDETAILS": i, "Name": "ASC", "ID": i, "Driver": "LUXminer",
                   "Model": self.state.model} for i in range(3)]  # fmt: skip
        return {"STATUS": rc.status(69, "Device Details"), "DEVDETAILS": boards, "id": 1}

    def _power(self) -> dict[str, Any]:
        watts = round(self.state.power_w())
        return {
            "STATUS": rc.status(336, "Power"),
            "POWER": [{"PSU": True, "Watts": watts}],
            "id": 1,
        }

    def _atmset(self, args: list[str]) -> dict[str, Any]:
        for arg in args:
            if arg.startswith("enabled="):
                self.atm_enabled = arg.removeprefix("enabled=") == "true"
        return {"STATUS": rc.status(340, "ATM set"), "id": 1}

    def _config(self) -> dict[str, Any]:
        last = int(self.state.ip.rsplit(".", 1)[-1])
        return {"STATUS": rc.status(33, "CGMiner config"),
                "CONFIG": [{"Profile": self.profile, "MACAddr": f"02:00:00:00:01:{last:02x}",
                            "IsAtmEnabled": self.atm_enabled, "RedLed": "off",
                            "CurtailMode": "Sleep" if self.state.sleeping else "None"}],
                "id": 1}  # fmt: skip

    def _profiles(self) -> dict[str, Any]:
        return {"STATUS": rc.status(329, "Profiles"), "PROFILES": self.profiles, "id": 1}

    def _session(self) -> dict[str, Any]:
        return {"STATUS": rc.status(330, "Session"),
                "SESSION": [{"SessionID": self.session_id}], "id": 1}  # fmt: skip

    def _logon(self) -> dict[str, Any]:
        if self.session_id:
            return rc.error("Another session is active")  # LuxOS allows one session at a time
        self.session_id = secrets.token_hex(4)
        return {"STATUS": rc.status(330, "Session created"),
                "SESSION": [{"SessionID": self.session_id}], "id": 1}  # fmt: skip

    def _atm(self) -> dict[str, Any]:
        return {"STATUS": rc.status(339, "ATM"), "ATM": [{"Enabled": self.atm_enabled}], "id": 1}

    def _tempctrl(self) -> dict[str, Any]:
        return {"STATUS": rc.status(334, "Tempctrl"),
                "TEMPCTRL": [{"Mode": "Auto", "Target": 75, "Hot": 85, "Dangerous": 95}],
                "id": 1}  # fmt: skip

    def _fans(self) -> dict[str, Any]:
        fans = [{"ID": i, "RPM": 5400, "Speed": 60} for i in range(4)]
        return {"STATUS": rc.status(333, "Fans"), "FANS": fans,
                "FANCTRL": [{"MinFans": 4}], "id": 1}  # fmt: skip

    def _groups(self) -> dict[str, Any]:
        return {"STATUS": rc.status(336, "Groups"),
                "GROUPS": [{"GROUP": 0, "Name": "Default", "Quota": 1}], "id": 1}  # fmt: skip

    def _curtail(self, args: list[str]) -> dict[str, Any]:
        if args[:1] not in (["sleep"], ["wakeup"]):
            return rc.error("curtail: sleep or wakeup")
        sleeping = args[0] == "sleep"
        if sleeping != self.state.sleeping:
            self.state.set_sleeping(sleeping)
        return {"STATUS": rc.status(337, f"Curtail {args[0]}"), "id": 1}

    def _profileset(self, args: list[str]) -> dict[str, Any]:
        names = {p["Profile Name"] for p in self.profiles}
        if not args or args[0] not in names:
            return rc.error("Invalid profile")
        if self.atm_enabled:
            return rc.error("Cannot set profile while ATM is enabled")
        self._apply_profile(args[0])
        return {"STATUS": rc.status(338, "Profile set"),
                "PROFILE": [{"Profile": args[0], "Board": 0}], "id": 1}  # fmt: skip
