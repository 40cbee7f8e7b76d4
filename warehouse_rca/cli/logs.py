"""Logging for the command line: records go to stderr through click. Apart from its own, this
module imports only click, so the group (cli.main) configures logging without loading the spec
(sqlglot, jinja2, yaml) for ``--help``."""

from __future__ import annotations

import logging

import click


class _ClickHandler(logging.Handler):
    """Log records to stderr through click, so they follow click's (and tests') stream."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            click.echo(f"{record.levelname.lower()}: {self.format(record)}", err=True)
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


def _debug_enabled() -> bool:
    return logging.getLogger("warehouse_rca").isEnabledFor(logging.DEBUG)
