"""A real etcd cluster of 1 or 3 members on free 127.0.0.1 ports, for the HA tests.

Each member is its own `etcd` process (Debian's etcd-server) with its data in a temporary
directory; `stop` and `resume` (SIGSTOP/SIGCONT) make a member unanswering without closing its
sockets, as a partition or a frozen host would; `kill` ends it. Every process is ended by
`close`.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from controller.sim.configs import free_port

ETCD_MISSING = (
    "etcd is not installed: run `sudo apt-get install etcd-server` "
    "(make test installs it when run as root)"
)


def find_etcd() -> str | None:
    return shutil.which("etcd") or (
        "/usr/bin/etcd" if os.access("/usr/bin/etcd", os.X_OK) else None
    )


@dataclass
class Member:
    name: str
    client_port: int
    peer_port: int
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.client_port}"


class EtcdCluster:
    def __init__(self, binary: str, size: int = 1) -> None:
        self.binary = binary
        self.dir = Path(tempfile.mkdtemp(prefix="curtaild-etcd-"))
        self.members = [Member(f"m{i}", free_port(), free_port()) for i in range(size)]

    @property
    def endpoints(self) -> list[str]:
        return [m.url for m in self.members]

    def start(self, timeout_s: float = 15.0) -> None:
        cluster = ",".join(f"{m.name}=http://127.0.0.1:{m.peer_port}" for m in self.members)
        for m in self.members:
            peer = f"http://127.0.0.1:{m.peer_port}"
            log = (self.dir / f"{m.name}.log").open("wb")
            m.process = subprocess.Popen(
                [self.binary, "--name", m.name, "--data-dir", str(self.dir / m.name),
                 "--listen-client-urls", m.url, "--advertise-client-urls", m.url,
                 "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
                 "--initial-cluster", cluster, "--initial-cluster-state", "new",
                 "--initial-cluster-token", self.dir.name],
                stdout=log, stderr=subprocess.STDOUT,
            )  # fmt: skip
        deadline = time.monotonic() + timeout_s
        while not all(self.healthy(m) for m in self.members):
            if time.monotonic() > deadline:
                self.close()
                raise RuntimeError(f"etcd did not start in {timeout_s} s:\n{self.logs()[-3000:]}")
            time.sleep(0.1)

    @staticmethod
    def healthy(member: Member) -> bool:
        try:
            with urllib.request.urlopen(member.url + "/health", timeout=1) as reply:
                return b'"true"' in reply.read()
        except OSError:
            return False

    def raft_leader(self) -> int:
        """The index of the member that leads etcd's own (raft) cluster."""
        for i, m in enumerate(self.members):
            request = urllib.request.Request(m.url + "/v3/maintenance/status", data=b"{}")
            with urllib.request.urlopen(request, timeout=2) as reply:
                doc = json.loads(reply.read())
            if doc["header"]["member_id"] == doc["leader"]:
                return i
        raise RuntimeError("no etcd member says it leads")

    def _signal(self, index: int, sig: signal.Signals) -> None:
        process = self.members[index].process
        assert process is not None
        process.send_signal(sig)

    def stop(self, index: int) -> None:
        """The member stops answering, its sockets open: a partition or a frozen host."""
        self._signal(index, signal.SIGSTOP)

    def resume(self, index: int) -> None:
        self._signal(index, signal.SIGCONT)

    def kill(self, index: int) -> None:
        self._signal(index, signal.SIGKILL)
        process = self.members[index].process
        assert process is not None
        process.wait(5)

    def logs(self) -> str:
        return "".join(p.read_text(errors="replace") for p in sorted(self.dir.glob("*.log")))

    def close(self) -> None:
        for m in self.members:
            if m.process is not None and m.process.poll() is None:
                m.process.send_signal(signal.SIGCONT)
                m.process.kill()
                m.process.wait(5)
        shutil.rmtree(self.dir, ignore_errors=True)
