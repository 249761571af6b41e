"""Tests of daemon.broker: error catalogue, contracts, and the broker link against ibsim."""
