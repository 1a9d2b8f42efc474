"""`curtaild agent --config AGENT.toml` (CONTRACT 2.7): the pool agent on pyasic."""

from __future__ import annotations

import argparse
import logging

from controller import logs
from controller.agent.config import load_agent_config
from controller.app import run_main
from controller.extras import require


def agent_command(args: argparse.Namespace) -> int:
    config = load_agent_config(args.config)  # ConfigError: exit 2, every problem listed
    require("pyasic", "agent", "curtaild agent")  # the agent extra; the daemon never needs it
    from controller.agent.service import serve  # noqa: PLC0415 (imports pyasic)

    logs.configure()
    logging.getLogger("pyasic").setLevel(logging.ERROR)  # a line per unanswered call otherwise
    return run_main(serve(config))  # uvloop where installed, as the daemon
