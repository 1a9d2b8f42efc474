"""Real etcd clusters for the HA tests: a missing etcd fails the run, it never skips it."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from tests.ha.etcd_cluster import ETCD_MISSING, EtcdCluster, find_etcd

MakeCluster = Callable[[int], EtcdCluster]


@pytest.fixture
def make_cluster() -> Iterator[MakeCluster]:
    """`make_cluster(size)`: a fresh etcd cluster of 1 or 3 members, ended after the test."""
    clusters: list[EtcdCluster] = []

    def make(size: int) -> EtcdCluster:
        binary = find_etcd()
        if binary is None:
            pytest.fail(ETCD_MISSING, pytrace=False)
        cluster = EtcdCluster(binary, size)
        clusters.append(cluster)
        try:
            cluster.start()
        except RuntimeError as exc:
            pytest.fail(str(exc), pytrace=False)
        return cluster

    yield make
    for cluster in clusters:
        cluster.close()
