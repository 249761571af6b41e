"""ibsim: a protocol-faithful simulated IB Gateway speaking the TWS socket API."""

__version__ = "0.1.0"
