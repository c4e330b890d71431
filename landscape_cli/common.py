"""Helpers every command shares: checked number types, the one-sentence parser, output folders, logging."""

from __future__ import annotations

import argparse
import logging
import math
import sys
from pathlib import Path
from typing import Any

from mcmc_landscape.errors import SpecError


def number(convert: Any, accept: Any, requirement: str) -> Any:
    """An argparse type: ``convert`` the text, then keep it only if ``accept(value)``, else say ``requirement``."""

    def parse(text: str) -> Any:
        try:
            value = convert(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a {'whole number' if convert is int else 'number'}") \
                from None
        if not accept(value):
            raise argparse.ArgumentTypeError(f"must be {requirement}, got {text}")
        return value

    return parse


positive_int = number(int, lambda v: v >= 1, "at least 1")
nonneg_int = number(int, lambda v: v >= 0, "0 or more")
positive_float = number(float, lambda v: math.isfinite(v) and v > 0, "a positive finite number")
finite_float = number(float, math.isfinite, "finite")
nonneg_float = number(float, lambda v: math.isfinite(v) and v >= 0, "≥ 0")


class Parser(argparse.ArgumentParser):
    """argparse with a one-line error: what is wrong and where to look, exit status 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message}; see `{self.prog} --help`.\n")


class CommandParser(Parser):
    """A command's parser: it also takes ``-q/--quiet`` and ``-v/--verbose``, so they work after the command too.

    Their default is ``SUPPRESS``: left out after the command, the value given before it (or False) stands."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        add_verbosity(self, argparse.SUPPRESS)


def add_verbosity(parser: argparse.ArgumentParser, default: Any) -> None:
    parser.add_argument("--quiet", "-q", action="store_true", default=default,
                        help="no progress bars or informational messages")
    parser.add_argument("--verbose", "-v", action="store_true", default=default, help="debug messages")


def refuse_nonempty(folder: Path, allowed: bool, how: str) -> None:
    """An output folder that already holds files is written into only when the user said so."""
    if folder.exists() and any(folder.iterdir()) and not allowed:
        raise SpecError(f"output folder {str(folder)!r} is not empty; {how}.")


def levels(text: str) -> list[float]:
    """An argparse type: a comma-separated list of positive finite numbers."""
    try:
        values = [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of numbers") from None
    if not values or any(not (math.isfinite(v) and v > 0) for v in values):
        raise argparse.ArgumentTypeError(f"levels must be positive finite numbers, got {text!r}")
    return values


def configure_logging(level: int) -> None:
    """Our messages go to stderr at ``level``; other libraries stay at their own (quiet) defaults."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    for name in ("landscape", "mcmc_landscape", "dss", "analysis"):
        lg = logging.getLogger(name)
        lg.handlers[:] = [handler]
        lg.setLevel(level)
        lg.propagate = False
