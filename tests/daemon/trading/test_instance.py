"""One instance per account and prefix: the claim on a real abstract unix socket."""

from __future__ import annotations

import os

import pytest

from daemon.trading.instance import InstanceConflictError, PrefixClaim


def test_a_second_claim_of_the_same_account_and_prefix_is_refused_naming_the_holder() -> None:
    first = PrefixClaim("ofdtest", "127.0.0.1")
    second = PrefixClaim("ofdtest", "localhost")  # the same gateway, spelt another way
    first.claim("DU0000001", 4002)
    try:
        with pytest.raises(InstanceConflictError) as err:
            second.claim("DU0000001", 4002)
        assert "'ofdtest' is already in use on account *****0001" in str(err.value)
        assert f"pid {os.getpid()}" in str(err.value)
        for prefix, account in (("ofdtest-b", "DU0000001"), ("ofdtest", "DU0000002")):
            other = PrefixClaim(prefix, "127.0.0.1")  # its own prefix, or another account
            other.claim(account, 4002)
            other.release()
    finally:
        first.release()
    second.claim("DU0000001", 4002)  # released: free again
    second.claim("DU0000001", 4002)  # claiming what it holds is a no-op
    second.release()
