"""One node of an active/standby pair: campaign, take over, watch for the loss (docs/ha.md).

A standby holds no broker session and no device connection: it campaigns, and tells systemd
and its metrics who leads. On winning it takes the replicated state (or, for the first leader
of a site, its own store's) and the daemon starts as it would after a restart, every command
carrying the epoch. From then on a lost lease or a refused fenced write ends its leadership for
good: the daemon stops commanding at once and exits, and systemd starts it again as a standby
(a node that led must not carry on from a state another leader may have moved past).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from controller.adapters.etcd import EtcdClient, EtcdError
from controller.adapters.store import StoredState
from controller.config import Config
from controller.errors import CurtaildError
from controller.ha.leader import Elector
from controller.ha.replica import Replica, ReplicaError

logger = logging.getLogger("curtaild.ha")
STANDBY_TICK_S = 0.5  # how often a standby reports and pings the watchdog
WATCH_S = 0.1


def keys(site: str) -> tuple[str, str]:
    """(the leader key, the state key) of a site."""
    return f"/curtaild/{site}/leader", f"/curtaild/{site}/state"


class HaNode:
    def __init__(self, config: Config) -> None:
        ha = config.ha
        self.node = ha.node_name
        leader_key, state_key = keys(config.site.name)
        self.client = EtcdClient(ha.etcd_endpoints, ha.etcd_timeout_s)
        self.elector = Elector(self.client, leader_key, ha.node_name, ha.lease_ttl_s,
                               ha.fence_margin_s)  # fmt: skip
        self.replica = Replica(self.client, leader_key, state_key)
        self._task: asyncio.Task[None] | None = None
        self.source = ""  # where the takeover's state came from: "replica" or "own_store"

    def epoch(self) -> int | None:
        """The epoch to command under; None when not (or no longer) leading."""
        return self.elector.epoch()

    def start(self) -> None:
        self._task = asyncio.create_task(self.elector.run(), name="ha-elector")

    async def wait_to_lead(self, stop: asyncio.Event, tick: Callable[[str], None]) -> bool:
        """Campaign until this node leads (True) or a stop is asked (False); `tick(who)` every
        STANDBY_TICK_S with the holder's name, for status and the watchdog."""
        while not stop.is_set():
            if self.epoch() is not None:
                return True
            holder = self.elector.holder
            tick(holder.value if holder is not None else "")
            self.elector.changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.elector.changed.wait(), STANDBY_TICK_S)
        return False

    async def lead(
        self,
        stop: asyncio.Event,
        tick: Callable[[str], None],
        local: Callable[[], Awaitable[StoredState]],
    ) -> StoredState | None:
        """Stand by until this node leads, then the state to continue from: the replica's, or,
        for a site's first leader, its own store's (`local()`); None when stopped first.
        ReplicaUnreadableError when the replica cannot be read: stop rather than lead without
        its obligations."""
        self.start()
        while await self.wait_to_lead(stop, tick):
            try:
                return await self.take_over(await local())
            except (EtcdError, LostLeadershipError) as exc:
                logger.warning("ha: takeover not possible yet (%s); trying again", exc)
                await asyncio.sleep(STANDBY_TICK_S)
            except ReplicaError as exc:
                raise ReplicaUnreadableError(
                    f"{exc}; stop here rather than lead without its obligations: this version "
                    "cannot read what the other node wrote (upgrade both nodes alike)"
                ) from None
        return None

    async def take_over(self, local: StoredState) -> StoredState:
        """The state to continue from: the replica's, or, when none was ever written, this
        node's own store's, written to the replica under the new epoch at once."""
        epoch = self.epoch()
        if epoch is None:
            raise LostLeadershipError("the lease was lost during the takeover")
        replicated = await self.replica.load()
        state = replicated if replicated is not None else local
        self.source = "replica" if replicated is not None else "own_store"
        await self.replica.start(epoch, state)
        logger.warning("ha: %s takes over under epoch %d (%s state)", self.node, epoch,
                       "replicated" if replicated is not None else "its own store's")  # fmt: skip
        return state

    async def watch(self, lost: Callable[[str], None]) -> None:
        """While leading: call `lost(why)` once the epoch is gone (fenced or deposed)."""
        while True:
            if self.epoch() is None:
                lost("fenced: no lease renewal before the deadline, or deposed")
                return
            # The deadline passes without an event: epoch() is asked again every WATCH_S (the
            # Applier asks it before every send, so this only bounds how soon the exit comes).
            self.elector.changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.elector.changed.wait(), WATCH_S)

    async def close(self, resign: bool) -> None:
        if resign and self.epoch() is not None:
            await self.elector.resign()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.client.close()


class LostLeadershipError(Exception):
    """The lease went between winning and taking over."""


EXIT_DEPOSED = 3  # systemd's Restart=on-failure starts the node again, as a standby


class ReplicaUnreadableError(CurtaildError):
    """The replicated state cannot be read: stop rather than lead without its obligations."""
