"""Entry point of `cnnzoo`: dispatches to one module per subcommand.

Each subcommand module defines HELP (one line), `add_arguments(parser)` and `run(args) -> int`.
Every subcommand module is imported to build the parser, so each keeps its heavy imports
(torch and what needs it) inside `run`: `cnnzoo --help` and `cnnzoo models` import no torch.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from cnnzoo.errors import CnnzooError

# name -> module; the order is the order of `cnnzoo --help`
COMMANDS = {
    "models": "cnnzoo.cli.models",
    "summary": "cnnzoo.cli.summary",
    "data": "cnnzoo.cli.data",
    "train": "cnnzoo.cli.train",
    "eval": "cnnzoo.cli.eval",
    "predict": "cnnzoo.cli.predict",
    "explain": "cnnzoo.cli.explain",
    "lr-find": "cnnzoo.cli.lr_find",
    "bench": "cnnzoo.cli.bench",
    "export": "cnnzoo.cli.export",
    "serve": "cnnzoo.cli.serve",
}


def _available() -> dict[str, object]:
    mods = {}
    for name, path in COMMANDS.items():
        try:
            mods[name] = importlib.import_module(path)
        except ModuleNotFoundError as e:
            if e.name != path:  # a real missing dependency inside the module: say so
                raise
    return mods


def _version() -> str:
    from cnnzoo import __version__

    return __version__


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cnnzoo",
        description="Convolutional image classifiers: inspect, train, evaluate, predict.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log more detail")
    parser.add_argument("--version", action="version", version=f"cnnzoo {_version()}")
    parser.add_argument(
        "--debug",
        action="store_true",
        help="show the full traceback of any error instead of a one-line message",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, mod in _available().items():
        p = sub.add_parser(
            name,
            help=mod.HELP,
            description=getattr(mod, "DESCRIPTION", mod.HELP),
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        mod.add_arguments(p)
        # also after the command name (`cnnzoo train ... --debug`); SUPPRESS keeps the global
        p.add_argument(
            "--debug", action="store_true", default=argparse.SUPPRESS, help=argparse.SUPPRESS
        )
        p.set_defaults(_run=mod.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)  # what --nproc relaunches
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(message)s",
        stream=sys.stderr,
    )
    if not getattr(args, "command", None):
        parser.print_help()
        return 2
    try:
        return int(args._run(args) or 0)
    except (CnnzooError, OSError, RecursionError, MemoryError) as e:
        if args.debug:
            raise
        return _report(args.command, e)
    except KeyboardInterrupt:
        print(f"cnnzoo {args.command}: interrupted", file=sys.stderr)
        return 130
    except Exception as e:  # a bug, not the user's mistake: one line, the traceback on demand
        if args.debug:
            raise
        first = (str(e).strip().splitlines() or [""])[0][:300]
        print(
            f"cnnzoo {args.command}: internal error: {type(e).__name__}: {first}; "
            "rerun with --debug for the traceback and report it",
            file=sys.stderr,
        )
        return 1


def _report(command: str, e: BaseException) -> int:
    """One line for an error the user can act on; exit status 2."""
    if isinstance(e, BrokenPipeError):  # output piped into `head` and closed early
        sys.stderr.close()
        return 0
    if isinstance(e, CnnzooError):
        message = str(e)
    elif isinstance(e, OSError):  # a path that is a file, a full disk, no permission...
        where = f": {e.filename}" if e.filename else ""
        message = f"{e.strerror or e}{where}"
    elif isinstance(e, RecursionError):
        message = "input nested too deeply to read (a hostile or broken file?)"
    else:
        message = "out of memory; use smaller images (--load-size, --image-size) or batches"
    print(f"cnnzoo {command}: error: {message}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
