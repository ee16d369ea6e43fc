"""What every command-line entry point shares: logging set-up and the user-error guard.

Both ``casnat`` (casnat/cli.py) and ``torchrun -m casnat.bin.train`` start here, so an entry point
never has to import the ``casnat`` command (nothing imports casnat.cli).
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable

from casnat.errors import UserError


def setup_logging(verbose: bool = False) -> None:
    """Log records of casnat (and its libraries) to stderr, INFO or, with ``verbose``, DEBUG."""
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )


def run_guarded(name: str, fn: Callable[[argparse.Namespace], int | None],
                args: argparse.Namespace) -> int:
    """Run a subcommand; user errors become one line on stderr and exit status 2."""
    try:
        return fn(args) or 0
    except (UserError, FileNotFoundError) as e:
        print(f"casnat {name}: error: {e}", file=sys.stderr)
        return 2
