"""Leader election on an etcd lease, with a self-fence deadline (docs/ha.md sections 2-4).

One key, `{key}`, holds the leader's node name, bound to its lease. A candidate creates it only
if it does not exist; the winner's **epoch** is the key's `create_revision`, which etcd only ever
increases, so every leadership has a larger epoch than any before it, without a clock. The
leader renews its lease every `ttl / 4`.

The rule that keeps two controllers from commanding at once: a leader stops commanding strictly
before its lease can expire in etcd. `fence_at` is measured on this process's monotonic clock
from the moment it *sent* the renewal etcd acknowledged (etcd counts the TTL from when it
received it, which is later), minus `fence_margin_s` (the longest write it may have in flight,
plus clock-rate drift). `epoch()` answers None from that instant on, whatever the renewals in
flight say; a leader that cannot renew in time is fenced and starts again as a candidate,
under a new epoch if it wins again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from controller.adapters.etcd import EtcdClient, EtcdError, KeyValue

logger = logging.getLogger("curtaild.ha")
Monotonic = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]
RETRY_FLOOR_S = 0.1
REPEAT_S = 60.0  # the same campaign failure is logged again after this long


@dataclass(frozen=True)
class Leadership:
    epoch: int
    lease: int
    fence_at: float  # monotonic: no command may leave after this instant
    since: float  # monotonic: when etcd's answer made this node the leader


def fence_deadline(sent_at: float, granted_ttl_s: float, margin_s: float) -> float:
    """The last instant a leader may command, for a renewal sent at `sent_at` that etcd
    acknowledged with `granted_ttl_s`."""
    return sent_at + granted_ttl_s - margin_s


class Elector:
    def __init__(
        self,
        client: EtcdClient,
        key: str,
        node: str,
        ttl_s: int,
        margin_s: float,
        clock: Monotonic = time.monotonic,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        if ttl_s - margin_s <= ttl_s / 4:
            raise ValueError(
                f"lease_ttl_s {ttl_s} leaves no time to lead after fence_margin_s {margin_s}: "
                "a leader would fence itself between two renewals"
            )
        self.client = client
        self.key = key
        self.node = node
        self.ttl_s = ttl_s
        self.margin_s = margin_s
        self.clock = clock
        self.sleep = sleep
        self.leadership: Leadership | None = None
        self.holder: KeyValue | None = None  # who leads, as last read (None: nobody)
        self.changed = asyncio.Event()  # set on every gain or loss of leadership
        self.resigned = False  # a clean stop: no more campaigning
        self._said: tuple[str, float] = ("", -REPEAT_S)  # the last campaign failure logged

    @property
    def renew_every_s(self) -> float:
        return self.ttl_s / 4

    def epoch(self) -> int | None:
        """The epoch to command under, or None: not the leader, or past the fence deadline."""
        lead = self.leadership
        if lead is None or self.clock() >= lead.fence_at:
            return None
        return lead.epoch

    async def run(self) -> None:
        """Campaign, lead, renew, until `resign`. Never raises on etcd's account."""
        while not self.resigned:
            if self.leadership is None:
                await self._campaign()
                if self.leadership is None:
                    await self.sleep(self.renew_every_s)
                continue
            await self.sleep(self._until_renewal())
            if self.leadership is not None:
                await self._renew()

    async def resign(self) -> None:
        """Give the lead up now and stop campaigning (a clean stop): the standby need not wait
        for the TTL."""
        self.resigned = True
        lead, self.leadership = self.leadership, None
        if lead is not None:
            self._lost(lead, "resigned")
            try:
                await self.client.revoke(lead.lease)
            except EtcdError as exc:
                logger.warning("ha: resignation not sent (%s): the lease expires on its own", exc)

    def _until_renewal(self) -> float:
        lead = self.leadership
        assert lead is not None
        # Renew every ttl/4, and never later than a full renewal before the deadline; a member
        # refusing at once must not spin the loop.
        left_s = lead.fence_at - self.clock() - self.renew_every_s
        return max(RETRY_FLOOR_S, min(self.renew_every_s, left_s))

    async def _campaign(self) -> None:
        if self.resigned:
            return
        try:
            self.holder = await self.client.get(self.key)
            if self.holder is not None:
                return
            sent_at = self.clock()
            lease, granted_s = await self.client.grant(self.ttl_s)
            won, holder = await self.client.create(self.key, self.node, lease)
        except EtcdError as exc:
            self._say_once(f"ha: cannot campaign: {exc}; check that etcd runs (`etcdctl "
                           "endpoint health`) and ha.etcd_endpoints")  # fmt: skip
            return
        if not won or self.resigned:  # resigned while the campaign was on the wire
            self.holder = holder
            await self._revoke_quietly(lease)
            return
        assert holder is not None
        self.holder = holder
        self.leadership = Leadership(holder.create_revision, lease,
                                     fence_deadline(sent_at, granted_s, self.margin_s),
                                     self.clock())  # fmt: skip
        logger.warning("ha: %s leads, epoch %d", self.node, holder.create_revision)
        self.changed.set()

    async def _renew(self) -> None:
        lead = self.leadership
        assert lead is not None
        sent_at = self.clock()
        try:
            granted_s = await self.client.keepalive(lead.lease)
            holder = await self.client.get(self.key) if granted_s > 0 else None
        except EtcdError as exc:
            if self.clock() >= lead.fence_at:
                self.leadership = None
                self._lost(lead, f"fenced: no renewal before the deadline ({exc})")
                await self._revoke_quietly(lead.lease)
            else:
                logger.warning("ha: renewal failed (%s): %.1f s left before fencing",
                               exc, lead.fence_at - self.clock())  # fmt: skip
            return
        if granted_s <= 0 or holder is None or holder.create_revision != lead.epoch:
            self.leadership = None
            self.holder = holder
            self._lost(lead, "deposed: the lease or the key is gone")
            return
        self.leadership = Leadership(lead.epoch, lead.lease,
                                     fence_deadline(sent_at, granted_s, self.margin_s),
                                     lead.since)  # fmt: skip

    def _say_once(self, message: str) -> None:
        """A standby retries every TTL/4: the same failure is logged once a minute, not each
        time."""
        now = self.clock()
        if message != self._said[0] or now - self._said[1] >= REPEAT_S:
            self._said = (message, now)
            logger.warning("%s (retrying every %.1f s)", message, self.renew_every_s)

    def _lost(self, lead: Leadership, why: str) -> None:
        logger.warning("ha: %s no longer leads epoch %d: %s", self.node, lead.epoch, why)
        self.changed.set()

    async def _revoke_quietly(self, lease: int) -> None:
        with contextlib.suppress(EtcdError):  # it expires on its own
            await self.client.revoke(lease)
