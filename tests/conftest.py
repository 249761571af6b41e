"""Suite-wide fixtures: the trading end-to-end harness (`gateway`, `daemon`)."""

pytest_plugins = ["tests.e2e.harness"]
