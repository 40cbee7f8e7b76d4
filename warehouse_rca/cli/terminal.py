"""Text for a terminal: data (segment values, metric names, narratives) never reaches it raw.

A value such as ``"\\x1b]0;pwned\\x07"`` would retitle the window, ``"\\x1b[2J"`` clear the screen,
an OSC 8 sequence plant a hyperlink and a bidi override reorder what the reader sees. Every control
character except newline and tab, and the bidi controls, is shown as its escape instead.

>>> safe("iOS\\x1b[31m red \\u202e")
'iOS\\\\x1b[31m red \\\\u202e'
"""

from __future__ import annotations

import re
from typing import Any

import click

_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def safe(text: Any) -> str:
    """``text`` with every control character (but newline and tab) escaped."""
    return _CONTROL.sub(_escape, str(text))


def echo(text: Any = "", **kwargs: Any) -> None:
    """``click.echo`` of text built from data, made safe for a terminal."""
    click.echo(safe(text), **kwargs)
