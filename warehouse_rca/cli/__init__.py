"""Command line: thin commands over the library; ``warehouse-rca --help`` lists them. The only
package that imports click.

Exit codes: 0 success; 2 bad input or configuration (unknown column, empty period, invalid
spec, ...); 3 the warehouse failed or refused a statement; 1 an unexpected error (a bug);
``monitor``/``detect``: 10 when anomalies were found.
"""

from __future__ import annotations

from warehouse_rca.cli.main import main

__all__ = ["main"]
