"""One module per CLI verb; each exposes `<verb>_command(args) -> int`."""
