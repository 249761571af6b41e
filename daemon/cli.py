"""The `orderflowd` command. The daemon itself lands with the daemon-core issue."""

from __future__ import annotations

import argparse

from daemon import __version__


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="orderflowd", description=__doc__)
    parser.add_argument("--version", action="version", version=f"orderflowd {__version__}")
    parser.parse_args(argv)
    parser.print_help()
    return 0
