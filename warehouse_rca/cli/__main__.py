"""``python -m warehouse_rca.cli``: the same command line as ``warehouse-rca``."""

from warehouse_rca.cli.main import main

main()
