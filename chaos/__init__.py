"""`make chaos`: seeded faults against the whole daemon trading replayed real ES data.

ibsim runs in this process (its faults are method calls, its matching engine is the judge);
the daemon is the real `python -m daemon run` in a child process, so it can be `kill -9`ed and
started again the way systemd would. Nothing here is imported by the daemon or by ibsim.
"""
