"""Everything that speaks to Interactive Brokers: connection, error codes, contracts, data."""
