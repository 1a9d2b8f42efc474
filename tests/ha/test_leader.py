"""Leader election on a real etcd: one leader, epochs that only grow, fencing before expiry.

The safety property throughout: a leader's fence deadline (on its monotonic clock) falls before
any other node can win, so two nodes never hold an epoch at the same instant. Both electors run
in this process, on one monotonic clock, so the instants compare directly.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest

from controller.adapters.etcd import EtcdClient
from controller.ha.leader import Elector
from tests.ha.conftest import MakeCluster
from tests.support import eventually

TTL_S = 2  # etcd's shortest lease at its default election timeout
MARGIN_S = 0.8
KEY = "/curtaild/test-site/leader"


@dataclass
class Node:
    elector: Elector
    task: asyncio.Task[None]


class Nodes:
    def __init__(self, endpoints: list[str]) -> None:
        self.endpoints = endpoints
        self.nodes: dict[str, Node] = {}
        self.spans: list[tuple[str, int, float, float]] = []  # node, epoch, from, to
        self._open: dict[str, tuple[int, float]] = {}
        self._sampler: asyncio.Task[None] | None = None

    def start(self, name: str) -> Elector:
        client = EtcdClient(self.endpoints, timeout_s=0.3)
        elector = Elector(client, KEY, name, TTL_S, MARGIN_S)
        self.nodes[name] = Node(elector, asyncio.create_task(elector.run()))
        if self._sampler is None:
            self._sampler = asyncio.create_task(self._sample())
        return elector

    async def crash(self, name: str) -> None:
        """The node dies: no renewal, no resignation."""
        node = self.nodes[name]
        node.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await node.task
        node.elector.leadership = None  # a dead process commands nothing
        await node.elector.client.close()

    async def _sample(self) -> None:
        while True:
            now = time.monotonic()
            for name, node in self.nodes.items():
                epoch = node.elector.epoch()
                was = self._open.get(name)
                if was is not None and was[0] != epoch:
                    self.spans.append((name, was[0], was[1], now))
                    del self._open[name]
                if epoch is not None and name not in self._open:
                    self._open[name] = (epoch, now)
            await asyncio.sleep(0.005)

    def leaders(self) -> list[str]:
        return [n for n, node in self.nodes.items() if node.elector.epoch() is not None]

    def assert_never_two(self) -> None:
        now = time.monotonic()
        spans = self.spans + [(n, e, t, now) for n, (e, t) in self._open.items()]
        for a in spans:
            for b in spans:
                if a[0] != b[0]:
                    assert a[3] <= b[2] or b[3] <= a[2], f"two leaders at once: {a} and {b}"
        epochs = [s[1] for s in sorted(spans, key=lambda s: s[2])]
        assert epochs == sorted(epochs), f"an epoch went back: {spans}"

    async def close(self) -> None:
        if self._sampler is not None:
            self._sampler.cancel()
        for name in list(self.nodes):
            await self.crash(name)


@pytest.fixture
async def nodes(make_cluster: MakeCluster) -> AsyncIterator[Nodes]:
    cluster = make_cluster(1)
    group = Nodes(cluster.endpoints)
    try:
        yield group
    finally:
        await group.close()


async def test_one_leader_whose_epoch_is_the_keys_create_revision(nodes: Nodes) -> None:
    a = nodes.start("a")
    await eventually(lambda: a.epoch() is not None, 5)
    b = nodes.start("b")
    await eventually(lambda: b.holder is not None, 5)
    assert b.epoch() is None and b.holder is not None and b.holder.value == "a"
    kv = await EtcdClient(nodes.endpoints, 1.0).get(KEY)
    assert kv is not None and a.epoch() == kv.create_revision
    await asyncio.sleep(3 * TTL_S)  # renewals keep it: no fencing in a healthy cluster
    assert nodes.leaders() == ["a"]
    nodes.assert_never_two()


async def test_a_crashed_leader_is_replaced_after_its_fence_with_a_larger_epoch(
    nodes: Nodes,
) -> None:
    a = nodes.start("a")
    await eventually(lambda: a.epoch() is not None, 5)
    first = a.epoch()
    b = nodes.start("b")
    await asyncio.sleep(0.5)
    fence_at = a.leadership.fence_at if a.leadership else 0.0
    await nodes.crash("a")
    await eventually(lambda: b.epoch() is not None, 3 * TTL_S)
    assert b.leadership is not None and first is not None and b.leadership.epoch > first
    # b won only once a's lease had expired in etcd, which is after a's own fence deadline.
    assert b.leadership.since >= fence_at
    nodes.assert_never_two()


async def test_a_resignation_hands_over_at_once(nodes: Nodes) -> None:
    a = nodes.start("a")
    await eventually(lambda: a.epoch() is not None, 5)
    b = nodes.start("b")
    await asyncio.sleep(0.3)
    started = time.monotonic()
    await a.resign()
    await eventually(lambda: b.epoch() is not None, 2 * TTL_S)
    # b campaigns every ttl/4: well before a lease would have expired
    assert time.monotonic() - started < TTL_S
    nodes.assert_never_two()


async def test_etcd_unanswering_fences_the_leader_before_its_lease_can_expire(
    make_cluster: MakeCluster,
) -> None:
    cluster = make_cluster(1)
    group = Nodes(cluster.endpoints)
    try:
        a = group.start("a")
        await eventually(lambda: a.epoch() is not None, 5)
        first = a.epoch()
        assert a.leadership is not None
        cluster.stop(0)  # etcd frozen: renewals time out
        stopped = time.monotonic()
        await eventually(lambda: a.epoch() is None, TTL_S + 1)
        fenced_after = time.monotonic() - stopped
        # Fenced within the TTL less the margin of the last renewal sent (plus sampling).
        assert fenced_after <= TTL_S - MARGIN_S + 0.2, fenced_after
        cluster.resume(0)
        await eventually(lambda: a.epoch() is not None, 5 * TTL_S)
        # It leads again: under a new epoch, or under the same one when a renewal in flight
        # reached etcd before the lease expired there (then nobody else could have led).
        assert first is not None and (a.epoch() or 0) >= first
        group.assert_never_two()
    finally:
        await group.close()


async def test_three_members_a_lost_member_is_ridden_over_and_a_lost_quorum_fences(
    make_cluster: MakeCluster,
) -> None:
    cluster = make_cluster(3)
    # The member lost is a raft follower, and the one the clients ask first. Losing etcd's own
    # raft leader stalls every request for its re-election (1-2 s at etcd's defaults), which a
    # TTL of 2 s does not ride over: lease_ttl_s must exceed it (docs/ha.md 3; 6 s does).
    lost = (cluster.raft_leader() + 1) % 3
    group = Nodes(cluster.endpoints[lost:] + cluster.endpoints[:lost])
    try:
        a = group.start("a")
        b = group.start("b")
        await eventually(lambda: len(group.leaders()) == 1, 5)
        leader = group.nodes[group.leaders()[0]].elector
        epoch = leader.epoch()
        cluster.kill(lost)  # one member of three: quorum holds, the clients ask the others
        await asyncio.sleep(3 * TTL_S)
        assert leader.epoch() == epoch, "a lost member must not depose a healthy leader"
        cluster.stop((lost + 1) % 3)  # two of three: no quorum, nobody can renew or win
        await eventually(lambda: group.leaders() == [], TTL_S + 1)
        await asyncio.sleep(TTL_S)
        assert group.leaders() == []
        cluster.resume((lost + 1) % 3)
        await eventually(lambda: len(group.leaders()) == 1, 10 * TTL_S)
        assert (group.nodes[group.leaders()[0]].elector.epoch() or 0) > (epoch or 0)
        assert {a.node, b.node} == {"a", "b"}
        group.assert_never_two()
    finally:
        await group.close()


async def test_a_deposed_leaders_fenced_write_fails_atomically(nodes: Nodes) -> None:
    """docs/ha.md 4: state written under the epoch compare; a deposed leader writes nothing."""
    a = nodes.start("a")
    await eventually(lambda: a.epoch() is not None, 5)
    old = a.epoch()
    assert old is not None
    client = EtcdClient(nodes.endpoints, 1.0)
    prefix = "/curtaild/test-site/state/"
    assert await client.fenced_put(KEY, old, {prefix + "pool/c01": '{"seq": 4}'})
    await a.resign()
    b = nodes.start("b")
    await eventually(lambda: b.epoch() is not None, 2 * TTL_S)
    new = b.epoch()
    assert new is not None and new > old
    # a, paused through all this, wakes and writes under its old epoch: refused, all of it.
    written = await client.fenced_put(
        KEY, old, {prefix + "pool/c01": '{"seq": 99}', prefix + "override": "{}"}
    )
    assert not written
    assert await client.fenced_put(KEY, new, {prefix + "pool/c02": '{"seq": 1}'},
                                   deletes=(prefix + "pool/c01",))  # fmt: skip
    assert [(kv.key, kv.value) for kv in await client.get_prefix(prefix)] == [
        (prefix + "pool/c02", '{"seq": 1}')
    ]
    await client.close()
