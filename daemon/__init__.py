"""orderflowd: the order-flow trading daemon (import name `daemon`)."""

__version__ = "0.1.0"
