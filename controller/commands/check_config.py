"""`curtaild check-config --config PATH`: validate a config and print it, secrets redacted."""

from __future__ import annotations

import argparse

from controller.config import load_config
from controller.config_render import redacted, render_toml


def check_config_command(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    print(f"# {args.config}: valid. Effective configuration (secrets redacted):")
    print(render_toml(redacted(config)))
    return 0
