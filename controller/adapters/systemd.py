"""sd_notify(3) over $NOTIFY_SOCKET, without libsystemd: one datagram per call.

Not running under systemd (no NOTIFY_SOCKET) is normal: `notify` returns False and does
nothing. A socket that is named but cannot be written to is a fault, and it is raised as
`NotifyError`, never swallowed (the `sdnotify` package swallows every error, so a unit whose
READY=1 never arrives just times out with nothing in the log). The caller decides what a
failure means; the intended use is to log it on the first failure (not on every tick) and carry
on deciding, because systemd's own watchdog and start timeout are the backstop for a
notification that does not get through, while a controller that stops deciding is not safe.

The send is bounded by a short timeout so that a wedged PID 1 cannot stall the control loop,
which is where WATCHDOG=1 is sent from (DESIGN point 10). NOTIFY_SOCKET is left in the
environment: curtaild starts no children that could misuse it.
"""

from __future__ import annotations

import os
import socket
import time

from controller.errors import CurtaildError

SEND_TIMEOUT_S = 0.5


class NotifyError(CurtaildError):
    """NOTIFY_SOCKET is set but the notification could not be sent."""


def notify(state: str) -> bool:
    """Send `state` ("READY=1", "STATUS=...", newline-separated); False when not under systemd."""
    address = os.environ.get("NOTIFY_SOCKET", "")
    if not address:
        return False
    if address[0] == "@":  # abstract namespace: systemd writes the leading NUL as '@'
        address = "\0" + address[1:]
    elif address[0] != "/":
        # systemd 253+ may also pass vsock: addresses; none exist on this platform's 252.
        raise NotifyError(f"NOTIFY_SOCKET={address!r}: only unix socket paths are supported")
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.settimeout(SEND_TIMEOUT_S)
            sock.connect(address)
            sock.sendall(state.encode("utf-8"))
    except OSError as exc:
        shown = address.replace("\0", "@")
        raise NotifyError(f"sd_notify to {shown} failed: {exc.strerror or exc}") from exc
    return True


def ready(status: str | None = None) -> bool:
    """Startup (or a reload) is complete; for curtaild, after the first decision."""
    return notify("READY=1" if status is None else f"READY=1\nSTATUS={_one_line(status)}")


def watchdog() -> bool:
    """Keep-alive: send at least every `watchdog_interval_s() / 2`, from the control loop."""
    return notify("WATCHDOG=1")


def stopping() -> bool:
    return notify("STOPPING=1")


def reloading() -> bool:
    """A SIGHUP reload started; send `ready()` when it is done (valid or kept the old config)."""
    # MONOTONIC_USEC is what Type=notify-reload (systemd 253+) requires; older ones ignore it.
    usec = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    return notify(f"RELOADING=1\nMONOTONIC_USEC={usec}")


def status(text: str) -> bool:
    """Free text shown by `systemctl status`."""
    return notify(f"STATUS={_one_line(text)}")


def watchdog_interval_s() -> float | None:
    """WatchdogSec of the unit in seconds, or None when no watchdog is expected from us."""
    pid = os.environ.get("WATCHDOG_PID")
    if pid and pid.strip() != str(os.getpid()):
        return None  # meant for another process (e.g. a wrapper that exec'd us is not us)
    usec = os.environ.get("WATCHDOG_USEC", "")
    if not usec.strip().isdigit() or int(usec) == 0:
        return None
    return int(usec) / 1_000_000


def _one_line(text: str) -> str:
    # A newline would start a new assignment in the notify protocol.
    return " ".join(text.splitlines())
