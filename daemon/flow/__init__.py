"""Pure order-flow logic: no I/O, so the same code runs live and offline."""
