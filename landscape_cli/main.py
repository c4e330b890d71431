"""The ``landscape`` entry point: a table of commands, each module imported only when its command runs.

``landscape --help`` lists the commands from :data:`COMMANDS` alone; the chosen command's module then adds its own
arguments. Errors a user can cause print one sentence and exit with status 2; Ctrl-C keeps whatever was committed
and exits with status 130.
"""

from __future__ import annotations

import importlib
import logging
import sys

from mcmc_landscape.errors import LandscapeError

from .common import CommandParser, Parser, add_verbosity, configure_logging

#: command → (module under landscape_cli, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "sample": ("sample", "draw θ from exp(-U/T) on [-L, L]^p into an HDF5 chain file"),
    "diagnose": ("diagnose", "convergence diagnostics and a verdict for a chain file"),
    "export": ("export", "write a chain file as an ArviZ InferenceData (netCDF or zarr), out of core"),
    "analyze": ("analyze", "kernel PCA of the draws, good minima and their plane, with baselines"),
    "rotation": ("rotation", "the report's rotation experiment, end to end, with a generated REPORT.md"),
    "experiment": ("experiment", "the invariance experiment for transforms of the data (rotate, reflect, scale, ...)"),
    "dss": ("dss", "Dynamic String Sampling: connect models of equal loss by a string of beads"),
    "census": ("census", "all local minima of a chain file modulo symmetry, their barriers, the disconnectivity graph"),
    "hessian": ("hessian", "Hessian spectrum at θ (chain draw, census minimum, DSS bead, checkpoint): extremes, trace, "
                "density"),
    "slice": ("slice", "1-D and 2-D loss slices: filter-normalized, through two or three aligned models, PCA planes"),
}


def _chosen(argv: list[str]) -> str | None:
    """The command named in ``argv`` (the first word that is one), or None."""
    return next((word for word in argv if word in COMMANDS), None)


def build_parser(command: str | None = None) -> Parser:
    """The parser; only ``command``'s module is imported to add that command's arguments."""
    parser = Parser(prog="landscape", description="Sample and measure neural-network loss landscapes.")
    add_verbosity(parser, False)
    sub = parser.add_subparsers(dest="command", required=True, parser_class=CommandParser)
    for name, (module, text) in COMMANDS.items():
        p = sub.add_parser(name, help=text)
        if name == command:
            importlib.import_module(f"landscape_cli.{module}").add_arguments(p)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    command = _chosen(argv)
    args = build_parser(command).parse_args(argv)
    configure_logging(logging.DEBUG if args.verbose else logging.WARNING if args.quiet else logging.INFO)
    from mcmc_landscape.runs.runner import Interrupted

    module = importlib.import_module(f"landscape_cli.{COMMANDS[args.command][0]}")
    try:
        return module.run(args)
    except Interrupted as exc:
        print(str(exc), file=sys.stderr)
        return 130
    except LandscapeError as exc:
        print(f"landscape: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("landscape: interrupted.", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
