"""What every PMRS command does around its work: thread settings, logging and exit codes.

Every command (``pmrs``, ``indexer``, ``pmrs-server``, ``pmrs-client``, ``pmrs-loadtest`` and
``pmrs-web``) runs through :func:`run_cli`, so they behave alike: exit 0 on success, 2 for bad
arguments or input (a usage error, a missing or malformed file, a setting out of range: something
the user can fix), 1 for a failure while running (a server that cannot be reached, an I/O error),
130 when interrupted; the error is one line on standard error, prefixed with the program's name,
never a traceback.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from typing import Callable, Sequence

EXIT_OK, EXIT_FAILURE, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130
#: Errors a user fixes by changing the arguments or the input: exit 2.
USAGE_ERRORS: tuple[type[BaseException], ...] = (ValueError, LookupError, FileNotFoundError,
                                                  FileExistsError, IsADirectoryError, NotADirectoryError)
#: Errors of the run itself: exit 1.
FAILURES: tuple[type[BaseException], ...] = (RuntimeError, OSError)
LOG_FORMAT = "%(asctime)s %(levelname).1s %(name)s: %(message)s"


def set_thread_policy() -> None:
    """OpenMP threads (torch, FAISS) wait passively: spinning ones starve every other process
    on a 2-core machine, and passive waiting costs nothing measurable here."""
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def setup_logging(quiet: bool = False, log_format: str | None = None) -> None:
    """Log to standard error: text lines, or one JSON object per line when ``log_format`` (else
    ``$PMRS_LOG_FORMAT``) is ``"json"`` (:func:`pmrs.telemetry.json_formatter`)."""
    from .telemetry import LOG_FORMAT_ENV, LOG_FORMATS

    log_format = log_format or os.environ.get(LOG_FORMAT_ENV) or "text"
    if log_format not in LOG_FORMATS:
        raise ValueError(f"log format must be one of {', '.join(LOG_FORMATS)}, got {log_format!r}")
    handler = logging.StreamHandler(sys.stderr)
    if log_format == "json":
        from .telemetry import json_formatter

        handler.setFormatter(json_formatter())
    else:
        handler.setFormatter(logging.Formatter(LOG_FORMAT))
    logging.basicConfig(level=logging.WARNING if quiet else logging.INFO, handlers=[handler])
    logging.getLogger("faiss").setLevel(logging.WARNING)  # its loader reports every CPU variant tried


def run_cli(prog: str, parser: argparse.ArgumentParser, command: Callable[[argparse.Namespace], int | None],
            argv: Sequence[str] | None = None, *,
            failures: tuple[type[BaseException], ...] = ()) -> int:
    """Parse ``argv`` with ``parser`` and run ``command(args)``; returns the exit code.

    ``failures``: more exception types that mean "the run failed" (exit 1), checked before the
    usage errors (e.g. a client's error for a failed call).
    """
    set_thread_policy()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse: 2 for a usage error, 0 for --help
        return int(exc.code or 0)
    name = " ".join([prog] + ([args.command] if isinstance(getattr(args, "command", None), str) else []))
    try:
        setup_logging(bool(getattr(args, "quiet", False)), getattr(args, "log_format", None))
        return int(command(args) or 0)
    except KeyboardInterrupt:
        print(f"{name}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except failures as exc:
        print(f"{name}: {_one_line(exc)}", file=sys.stderr)
        return EXIT_FAILURE
    except USAGE_ERRORS as exc:
        print(f"{name}: error: {_one_line(exc)}", file=sys.stderr)
        return EXIT_USAGE
    except FAILURES as exc:
        print(f"{name}: failed: {_one_line(exc)}", file=sys.stderr)
        return EXIT_FAILURE


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    if isinstance(exc, KeyError) and len(exc.args) == 1:
        text = str(exc.args[0])
    return text or type(exc).__name__
