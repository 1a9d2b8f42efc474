"""sd_notify over a real AF_UNIX datagram socket (path and abstract), and watchdog parsing."""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from controller.adapters import systemd


@pytest.fixture
def path_socket(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[socket.socket]:
    # A short name: AF_UNIX paths are limited to 107 bytes and tmp_path can be long.
    path = tmp_path / "n.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(str(path))
        sock.settimeout(2.0)
        monkeypatch.setenv("NOTIFY_SOCKET", str(path))
        yield sock


@pytest.fixture
def abstract_socket(monkeypatch: pytest.MonkeyPatch) -> Iterator[socket.socket]:
    name = f"curtaild-test-{uuid.uuid4().hex}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind("\0" + name)
        sock.settimeout(2.0)
        monkeypatch.setenv("NOTIFY_SOCKET", "@" + name)
        yield sock


def test_ready_and_watchdog_over_a_path_socket(path_socket: socket.socket) -> None:
    assert systemd.ready() is True
    assert path_socket.recv(4096) == b"READY=1"
    assert systemd.watchdog() is True
    assert path_socket.recv(4096) == b"WATCHDOG=1"


def test_abstract_socket(abstract_socket: socket.socket) -> None:
    assert systemd.notify("READY=1") is True
    assert abstract_socket.recv(4096) == b"READY=1"
    assert systemd.watchdog() is True
    assert abstract_socket.recv(4096) == b"WATCHDOG=1"


def test_status_stopping_reloading(path_socket: socket.socket) -> None:
    systemd.status("online\nprice 42 $/MWh")  # a newline would start a new assignment
    assert path_socket.recv(4096) == b"STATUS=online price 42 $/MWh"
    systemd.ready("first decision done")
    assert path_socket.recv(4096) == b"READY=1\nSTATUS=first decision done"
    systemd.stopping()
    assert path_socket.recv(4096) == b"STOPPING=1"
    systemd.reloading()
    first, second = path_socket.recv(4096).decode().split("\n")
    assert first == "RELOADING=1"
    assert second.startswith("MONOTONIC_USEC=")
    assert int(second.partition("=")[2]) > 0


def test_no_socket_is_not_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    assert systemd.notify("READY=1") is False
    assert systemd.watchdog() is False
    monkeypatch.setenv("NOTIFY_SOCKET", "")
    assert systemd.ready() is False


def test_a_broken_socket_is_raised_not_swallowed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NOTIFY_SOCKET", str(tmp_path / "gone.sock"))
    with pytest.raises(systemd.NotifyError, match=r"gone\.sock"):
        systemd.watchdog()
    monkeypatch.setenv("NOTIFY_SOCKET", "relative/notify")
    with pytest.raises(systemd.NotifyError, match="only unix socket paths"):
        systemd.ready()


@pytest.mark.parametrize(
    ("usec", "pid", "expected"),
    [
        ("10000000", None, 10.0),
        ("10000000", "self", 10.0),
        ("2500000", "self", 2.5),
        ("10000000", "other", None),  # meant for another process
        ("0", None, None),
        ("", None, None),
        ("ten", None, None),
        ("-5", None, None),
        (None, None, None),
    ],
)
def test_watchdog_interval(
    monkeypatch: pytest.MonkeyPatch, usec: str | None, pid: str | None, expected: float | None
) -> None:
    monkeypatch.delenv("WATCHDOG_USEC", raising=False)
    monkeypatch.delenv("WATCHDOG_PID", raising=False)
    if usec is not None:
        monkeypatch.setenv("WATCHDOG_USEC", usec)
    if pid is not None:
        other = os.getpid() + 1
        monkeypatch.setenv("WATCHDOG_PID", str(os.getpid() if pid == "self" else other))
    assert systemd.watchdog_interval_s() == expected
