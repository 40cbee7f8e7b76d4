"""Logging for the command line: records go to stderr through click. Apart from its own, this
module imports only click, so the group (cli.main) configures logging without loading the spec
(sqlglot, jinja2, yaml) for ``--help``.

Everything it prints passes through :func:`warehouse_rca.errors.redact`: log records, and the
traceback of an unexpected error (exit 1), so a credential inside a URL, a webhook's path or a
registered secret never reaches the terminal or a scheduler's log. ``errors`` is looked up when
something is printed (every command has loaded it by then: the spec imports it), not imported
here, so ``--help`` loads no module outside cli/."""

from __future__ import annotations

import logging
import sys
import traceback
from types import TracebackType

import click

from warehouse_rca.cli.terminal import safe

_ERRORS_MODULE = "warehouse_rca.errors"


def redact(text: str) -> str:
    """:func:`warehouse_rca.errors.redact` once a command loaded it (before that nothing can
    hold a secret: no profile or project was read)."""
    errors = sys.modules.get(_ERRORS_MODULE)
    return str(errors.redact(text)) if errors is not None else text


class _ClickHandler(logging.Handler):
    """Log records to stderr through click, so they follow click's (and tests') stream."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            click.echo(safe(redact(f"{record.levelname.lower()}: {self.format(record)}")), err=True)
        except Exception:  # noqa: BLE001 - logging must never break a run
            self.handleError(record)


def _configure_logging(debug: bool) -> None:
    """Warnings (retries, a failed-run row that could not be written) always; with --debug, every
    statement sent and its duration. Nothing logged holds a credential: targets are logged
    redacted, statements hold names and literals, never connection settings."""
    logger = logging.getLogger("warehouse_rca")
    for handler in [h for h in logger.handlers if isinstance(h, _ClickHandler)]:
        logger.removeHandler(handler)
    logger.addHandler(_ClickHandler())
    logger.setLevel(logging.DEBUG if debug else logging.WARNING)
    sys.excepthook = _redacting_excepthook


def _redacting_excepthook(kind: type[BaseException], value: BaseException,
                          tb: TracebackType | None) -> None:
    """An unexpected error keeps its traceback (it is a bug), with credentials redacted."""
    if issubclass(kind, KeyboardInterrupt):
        sys.__excepthook__(kind, value, tb)
        return
    text = "".join(traceback.format_exception(kind, value, tb))
    sys.stderr.write(redact(text))
    sys.stderr.flush()


def format_error_chain(err: BaseException) -> str:
    """``err`` with its chain (driver errors included), redacted: what --debug prints."""
    return redact("".join(traceback.format_exception(err)))


def _debug_enabled() -> bool:
    return logging.getLogger("warehouse_rca").isEnabledFor(logging.DEBUG)
