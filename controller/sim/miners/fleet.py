"""Many simulated miners in one process, each on its own loopback address and real ports.

`SimMinerFleet.start()` binds 4028 (RPC) and 80 (web) on every miner's address. Linux routes
all of 127.0.0.0/8 to `lo`, so 1,000 miners are 1,000 addresses; binding port 80 needs root
(or CAP_NET_BIND_SERVICE). `random_block()` picks a /16 under 127/8 few others will use, so
concurrent test runs do not collide.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import random
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Protocol

from controller.sim.miners.antminer import StockAntminer
from controller.sim.miners.luxos import LuxOS
from controller.sim.miners.state import SimMinerState
from controller.sim.miners.wire import HttpRequest, HttpResponse, http_server, rpc_server

RPC_PORT = 4028
WEB_PORT = 80


class Firmware(Protocol):
    family: str
    state: SimMinerState
    requests: int

    def rpc(self, request: dict[str, object]) -> dict[str, object]: ...

    def web(self, request: HttpRequest) -> HttpResponse: ...


FAMILIES: dict[str, Callable[[SimMinerState], Firmware]] = {
    "stock_antminer": StockAntminer,
    "luxos": LuxOS,
}


@dataclass(frozen=True)
class MinerSpec:
    family: str
    model: str = "Antminer S19j Pro"
    nominal_w: float = 3068.0
    j_per_th: float = 29.5
    sleeping: bool = False


def random_block() -> str:
    """A base 127.X.Y.0 (X in 100..250) for up to 254 x 100 miners."""
    return f"127.{random.randint(100, 250)}.{random.randint(0, 150)}.0"


def addresses(base: str, count: int) -> Iterator[str]:
    """count addresses from base+1, skipping .0 and .255 of every /24."""
    ip = ipaddress.IPv4Address(base)
    made = 0
    while made < count:
        ip += 1
        if int(ip) & 0xFF in {0, 255}:
            continue
        made += 1
        yield str(ip)


class SimMinerFleet:
    def __init__(self, specs: Iterable[MinerSpec], base: str | None = None) -> None:
        self.specs = list(specs)
        self.base = base or random_block()
        self.miners: dict[str, Firmware] = {}
        self._servers: list[asyncio.Server] = []

    async def start(self) -> None:
        """Bind every miner; on an address already taken, try another block (a few times)."""
        for attempt in range(5):
            try:
                await self._bind_all()
            except OSError:
                await self.close()
                if attempt == 4:
                    raise
                self.base = random_block()
            else:
                return

    async def _bind_all(self) -> None:
        self.miners.clear()
        for ip, spec in zip(addresses(self.base, len(self.specs)), self.specs, strict=True):
            state = SimMinerState(
                ip, spec.model, spec.nominal_w, spec.j_per_th, sleeping=spec.sleeping
            )
            firmware: Firmware = FAMILIES[spec.family](state)
            self.miners[ip] = firmware
            answering = self._answering(state)
            self._servers.append(
                await asyncio.start_server(
                    rpc_server(firmware.rpc, answering), ip, RPC_PORT, reuse_address=True
                )
            )
            self._servers.append(
                await asyncio.start_server(
                    http_server(firmware.web, answering), ip, WEB_PORT, reuse_address=True
                )
            )

    @staticmethod
    def _answering(state: SimMinerState) -> Callable[[], bool]:
        return lambda: state.answering

    async def close(self) -> None:
        held = [m for m in self.miners.values() if not m.state.answering]
        for miner in held:
            miner.state.answering = True  # releases connections held by a silent miner
        if held:
            await asyncio.sleep(0.2)  # they poll the flag every 0.1 s
        servers, self._servers = self._servers, []
        for server in servers:
            server.close()
        for server in servers:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(server.wait_closed(), 2.0)

    def __getitem__(self, ip: str) -> Firmware:
        return self.miners[ip]

    @property
    def ips(self) -> list[str]:
        return list(self.miners)

    def power_w(self) -> float:
        return sum(m.state.power_w() for m in self.miners.values())

    def nominal_w(self) -> float:
        return sum(m.state.nominal_w for m in self.miners.values())
