"""`python -m marketdata` runs the command-line interface."""

from marketdata.cli.main import main

main()
