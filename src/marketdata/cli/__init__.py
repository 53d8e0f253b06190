"""The ``marketdata`` command line."""
