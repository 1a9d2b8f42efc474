"""`curtaild run --config PATH`: the daemon."""

from __future__ import annotations

import argparse
from pathlib import Path

from controller import logs
from controller.app import run_daemon


def run_command(args: argparse.Namespace) -> int:
    logs.configure()
    return run_daemon(Path(args.config))
