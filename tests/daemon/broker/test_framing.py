"""The maximum TWS frame size: the tracker on any chunking, and the connection that acts on it."""

from __future__ import annotations

import asyncio
import itertools
import logging
import random
import struct
from collections.abc import AsyncIterator, Callable

import pytest
import structlog
from hypothesis import given
from hypothesis import strategies as st

from daemon.broker.connection import Backoff, Connection, Heartbeat
from daemon.broker.ib.client import IbClient
from daemon.broker.ib.framing import MAX_FRAME_BYTES, FrameTracker
from daemon.settings import IbSettings
from ibsim.gateway import Gateway
from tests.daemon.broker.conftest import WAIT, GatewayFactory

FAST = Backoff(initial=0.01, cap=0.05, jitter=0.5, stable_after=3600.0)
OVERSIZED = 0x7FFFFFF0  # what ibsim announces


def frame(payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + payload


def chunked(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts} | {0, len(data)})
    return [data[a:b] for a, b in itertools.pairwise(points)]


messages = st.lists(st.binary(max_size=300), max_size=40)
cuts = st.lists(st.integers(min_value=0, max_value=20_000), max_size=60)


@given(messages, cuts)
def test_valid_frames_in_any_chunking_never_trip(payloads: list[bytes], at: list[int]) -> None:
    tracker = FrameTracker()
    stream = b"".join(frame(p) for p in payloads)
    for chunk in chunked(stream, at):
        assert tracker.feed(chunk) is None
    assert tracker.oversized is None
    # ... and it ends on a boundary: the next header is read as one
    assert tracker.feed(struct.pack(">I", MAX_FRAME_BYTES + 1)) == MAX_FRAME_BYTES + 1


@given(messages, st.integers(min_value=MAX_FRAME_BYTES + 1, max_value=2**32 - 1), cuts)
def test_an_oversized_header_is_caught_however_it_is_split(
    before: list[bytes], announced: int, at: list[int]
) -> None:
    tracker = FrameTracker()
    stream = b"".join(frame(p) for p in before) + struct.pack(">I", announced) + b"\x00\x01\x02"
    seen = [tracker.feed(chunk) for chunk in chunked(stream, at)]
    assert [s for s in seen if s is not None] == [announced]
    assert tracker.oversized == announced
    assert tracker.feed(frame(b"1\x00")) is None  # nothing after it is read as frames


def test_the_limit_is_ibapis_and_a_frame_of_exactly_it_passes() -> None:
    assert MAX_FRAME_BYTES == 0xFFFFFF
    tracker = FrameTracker()
    assert tracker.feed(struct.pack(">I", MAX_FRAME_BYTES) + b"x" * 1000) is None
    tracker.feed(b"x" * (MAX_FRAME_BYTES - 1000))
    assert tracker.feed(frame(b"49\x001\x00")) is None
    assert tracker.feed(struct.pack(">I", MAX_FRAME_BYTES + 1)) == MAX_FRAME_BYTES + 1


def test_a_header_split_byte_by_byte() -> None:
    tracker = FrameTracker(limit=100)
    data = frame(b"a" * 100) + struct.pack(">I", 101)
    results = [tracker.feed(data[i : i + 1]) for i in range(len(data))]
    assert results[:-1] == [None] * (len(data) - 1)
    assert results[-1] == 101


# --- through a real connection ---


@pytest.fixture
async def connection() -> AsyncIterator[list[tuple[Connection, asyncio.Task[None]]]]:
    asyncio.set_event_loop(asyncio.get_running_loop())
    made: list[tuple[Connection, asyncio.Task[None]]] = []
    yield made
    for conn, task in made:
        await conn.stop()
        await asyncio.wait({task}, timeout=WAIT)


def start(made: list[tuple[Connection, asyncio.Task[None]]], port: int) -> Connection:
    conn = Connection(
        IbClient(),
        IbSettings(port=port, client_id=4, connect_timeout=30.0),
        backoff=FAST,
        heartbeat=Heartbeat(idle=20.0, probe=5.0),
        rng=random.Random(1),
    )
    made.append((conn, asyncio.create_task(conn.run())))
    return conn


async def until_state(conn: Connection, predicate: Callable[[], bool], limit: float = WAIT) -> None:
    changed = asyncio.Event()
    conn.on_state(lambda _: changed.set())
    async with asyncio.timeout(limit):
        while not predicate():
            changed.clear()
            await changed.wait()


async def test_oversized_frame_recycles_the_connection_at_once(
    make_gateway: GatewayFactory, connection: list[tuple[Connection, asyncio.Task[None]]]
) -> None:
    gw: Gateway = await make_gateway()
    conn = start(connection, gw.port)
    await until_state(conn, lambda: conn.ready)
    with structlog.testing.capture_logs() as logs:
        assert gw.send_bad_frame("oversized", trickle_s=30.0) == 1
        # The trickle keeps ib_async's idle timer (20 s) from ever firing: only the frame
        # size check can end this, and it does at the header.
        await until_state(conn, lambda: conn.status.reconnect_count == 1 and conn.ready, 5.0)
    oversized = [e for e in logs if e["event"] == "tws_frame_oversized"]
    assert len(oversized) == 1
    assert oversized[0]["announced_bytes"] == OVERSIZED
    assert oversized[0]["limit_bytes"] == MAX_FRAME_BYTES
    assert oversized[0]["log_level"] == "error"
    recycles = [e["reason"] for e in logs if e["event"] == "connection_recycle"]
    assert recycles == ["tws_frame_oversized"]
    assert (await conn.client.ib.reqCurrentTimeAsync()).timestamp() > 0  # the new socket decodes


async def test_garbage_frame_is_logged_and_the_stream_stays_in_step(
    make_gateway: GatewayFactory,
    connection: list[tuple[Connection, asyncio.Task[None]]],
    caplog: pytest.LogCaptureFixture,
) -> None:
    gw = await make_gateway()
    conn = start(connection, gw.port)
    await until_state(conn, lambda: conn.ready)
    with caplog.at_level(logging.ERROR, logger="ib_async"):
        assert gw.send_bad_frame("garbage") == 1
        assert (await conn.client.ib.reqCurrentTimeAsync()).timestamp() > 0  # decoded after it
    assert conn.ready
    assert conn.status.reconnect_count == 0
    assert any("Error handling fields" in r.getMessage() for r in caplog.records)
    # The garbage frame was stepped over as a frame: the next header is still read as one.
    gw.send_bad_frame("oversized")
    await until_state(conn, lambda: conn.status.reconnect_count == 1 and conn.ready, 5.0)
