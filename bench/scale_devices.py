"""The scale benchmark's simulated devices, each group in its own process (off the daemon's core
as far as two cores allow): PDU shards of light Modbus responders, and one process with every
pool agent (one MQTT session) and the meters.

Processes are driven over a `multiprocessing` pipe: the parent sends a request tuple, the child
answers. Children read their pipe from their event loop (`add_reader`), so a request never
blocks a device that is answering the daemon.
"""

from __future__ import annotations

import asyncio
import contextlib
import resource
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

import uvloop

from controller.config import Config, MqttConfig
from controller.sim.modbus_lite import CoilWrite, LiteMeter, LitePdu, LiteServer
from controller.sim.pool_agent import SimPoolAgent, SimPoolFleet

AGENT_DELAY_S = 0.1  # an agent applies a cmd this long after it arrives
AGENT_STATE_S = 2.0  # and reports at least this often ("every few seconds", CONTRACT 2.4)
GPU_LOAD = 0.9  # of firm_kw, per tenant


@dataclass(frozen=True, slots=True)
class PduSpec:
    name: str
    outlets: int
    outlet_kw: float
    outlet_pool: bool  # its outlets are a pool's load (the site meter counts them)


def raise_open_files() -> None:
    """Thousands of sockets per process: the soft open-file limit up to the hard one."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def pdu_specs(config: Config) -> list[PduSpec]:
    outlet_pool_pdus = {n for p in config.pools if p.driver == "pdu" for n in p.pdus}
    return [
        PduSpec(p.name, p.outlets, p.outlet_kw, p.name in outlet_pool_pdus) for p in config.pdus
    ]


async def serve_pipe(
    conn: Connection, handle: Callable[[tuple[Any, ...]], Coroutine[Any, Any, Any]]
) -> None:
    """Answer requests from the parent until it sends ("stop",). A thread reads the pipe (the
    loop's own reader would make the fd non-blocking, and a large request would then tear);
    each request is handled on the loop."""
    loop = asyncio.get_running_loop()

    def pump() -> None:
        while True:
            try:
                request = conn.recv()
            except EOFError:
                return
            if request[0] == "stop":
                return
            conn.send(asyncio.run_coroutine_threadsafe(handle(request), loop).result())

    conn.send("ready")
    await asyncio.to_thread(pump)


def on_loop(
    handle: Callable[[tuple[Any, ...]], Any],
) -> Callable[[tuple[Any, ...]], Coroutine[Any, Any, Any]]:
    async def run(request: tuple[Any, ...]) -> Any:
        return handle(request)

    return run


async def _listen(servers: list[tuple[LiteServer, str]]) -> dict[str, int]:
    """Each device on a port the OS picks now (a port picked earlier and freed may have been
    taken since by anyone's outgoing connection); the parent writes them into the config."""
    return {name: await server.start(0) for server, name in servers}


# -- PDU shards -------------------------------------------------------------------------------


def pdu_shard_main(conn: Connection, specs: list[PduSpec], outlet_kw: Any, slot: int) -> None:
    """Serve `specs`; `outlet_kw[slot]` follows the outlet pools' load for the site meter."""
    raise_open_files()
    uvloop.run(_pdu_shard(conn, specs, outlet_kw, slot))


async def _pdu_shard(conn: Connection, specs: list[PduSpec], outlet_kw: Any, slot: int) -> None:
    writes: list[CoilWrite] = []
    counted = {s.name for s in specs if s.outlet_pool}
    power_kw: dict[str, float] = {}

    def on_write(pdu: LitePdu, write: CoilWrite) -> None:
        writes.append(write)
        if pdu.name in counted:
            now_kw = pdu.power_kw()
            outlet_kw[slot] += now_kw - power_kw[pdu.name]
            power_kw[pdu.name] = now_kw

    servers = []
    for s in specs:
        pdu = LitePdu(s.name, s.outlets, s.outlet_kw, on_write=on_write)
        power_kw[s.name] = pdu.power_kw()
        servers.append((LiteServer({1: pdu}), s.name))
    outlet_kw[slot] = sum(power_kw[n] for n in counted)
    ports = await _listen(servers)

    def handle(request: tuple[Any, ...]) -> Any:
        if request[0] == "ports":
            return ports
        if request[0] == "drain":  # every write since the last drain
            out = [(w.at, w.device, w.first, w.values) for w in writes]
            writes.clear()
            return out
        raise ValueError(request)

    try:
        await serve_pipe(conn, on_loop(handle))
    finally:
        for server, _name in servers:
            await server.stop()


# -- agents and meters ------------------------------------------------------------------------


def _fixed(kw: float) -> Callable[[], float]:
    return lambda: kw


def agents_main(conn: Connection, config: Config, outlet_kw: Any) -> None:
    raise_open_files()
    uvloop.run(_agents(conn, config, outlet_kw))


async def _agents(conn: Connection, config: Config, outlet_kw: Any) -> None:
    prefix = config.mqtt.topic_prefix
    agents = [
        SimPoolAgent(prefix, p.name, p.max_kw, AGENT_DELAY_S)
        for p in config.pools
        if p.driver == "mqtt"
    ]
    mqtt = MqttConfig(host="127.0.0.1", port=config.mqtt.port, client_id="bench-agents")
    fleet = SimPoolFleet(mqtt, agents, client_id="bench-agents", state_interval_s=AGENT_STATE_S)
    gpu_kw = {t.name: t.firm_kw * GPU_LOAD for t in config.gpu_tenants}
    tenant_of = {m: t.name for t in config.gpu_tenants for m in t.meters}
    aux_kw = config.site.aux_kw

    def mining_kw() -> float:
        return sum(a.power_kw for a in agents) + float(sum(outlet_kw[:]))

    def site_kw() -> float:
        return sum(gpu_kw.values()) + mining_kw() + aux_kw

    trip = {"pending": False, "first_read_at": 0.0}

    def on_read(at: float, _hz: float) -> None:
        if trip["pending"]:
            trip["pending"] = False
            trip["first_read_at"] = at

    servers, site = [], None
    for m in config.meters:
        if m.role == "site":
            meter = site = LiteMeter(m.name, site_kw, on_read=on_read)
        else:
            meter = LiteMeter(m.name, _fixed(gpu_kw[tenant_of[m.name]]))
        servers.append((LiteServer({m.unit_id: meter}), m.name))
    assert site is not None
    ports = await _listen(servers)
    fleet_task = asyncio.create_task(fleet.run())

    def handle(request: tuple[Any, ...]) -> Any:
        if request[0] == "ports":
            return ports
        if request[0] == "frequency":  # set it; the next site-meter read is the trip's instant
            site.frequency_hz = float(request[1])
            trip["pending"] = True
            return time.time()
        if request[0] == "first_read":
            return trip["first_read_at"]
        if request[0] == "mining_kw":
            return mining_kw()
        raise ValueError(request)

    try:
        await serve_pipe(conn, on_loop(handle))
    finally:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(fleet.close(), 3.0)
        fleet_task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await fleet_task
        for server, _name in servers:
            await server.stop()
