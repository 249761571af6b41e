"""Tick throughput: what `ibsim` offers, what one ib_async client takes, and its decode ceiling.

Three measurements in one run, each `--seconds` long after `--warmup`:

1. offered: a gateway process (`python -m ibsim --speed 0`, the unpaced synthetic market)
   streams AllLast + BidAsk tick-by-tick to a minimal TWS client on a blocking socket that
   reads, counts frames by their length prefixes, and discards them;
2. delivered: a fresh gateway process streams the same to a real ib_async `IB` client,
   counting `len(ticker.tickByTicks)` on every `ticker.updateEvent`;
3. ceiling: the same client without a socket: pre-encoded tick frames go through
   `Client._onSocketHasData` (framing, decoder, wrapper, ticker events, the same counting
   handler) in chunks of several sizes, as an event loop's transport hands data over.

Ratios are against the ceiling measured in the same run: machines are shared and noisy, so
only figures from one run are compared. Nothing here asserts on timings. Everything binds and
connects to 127.0.0.1 only.

    python -m bench.ibsim_throughput [--seconds 5] [--warmup 1] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import itertools
import json
import os
import platform
import select
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Coroutine, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Any, TypeVar

from ib_async import IB, Contract
from ib_async.ticker import Ticker

from ibsim import contracts
from ibsim.encoders import MAX_VERSION, MIN_VERSION, Encoder
from ibsim.historical import parse_ib_time
from ibsim.market import SyntheticSource
from ibsim.model import FutureSpec, QuoteTick

HOST = "127.0.0.1"
START_TEXT = "20261120 08:30:00"  # Friday 08:30 Central: the market is open, ESZ6 is the front
START = parse_ib_time(START_TEXT)
SEED = 1
ACCOUNT = "DU1234567"
TARGET = 150_000  # tick messages/s ibsim must offer one client
CHUNK_SIZES = (4096, 65536, 262144)  # 262144: asyncio's read size (uvloop reads 256000)
CEILING_FRAMES = 100_000  # pre-encoded frames, cycled through for the ceiling
LAST_REQ_ID, BID_ASK_REQ_ID = 1, 2
TICK_BY_TICK = b"99\0"  # payload prefix of a TICK_BY_TICK message
REQ_TICK_BY_TICK, START_API = 97, 71
GATEWAY_START_TIMEOUT = 20.0
SOCKET_TIMEOUT = 10.0
BUSY_SHARE = 0.9  # a measured process with less CPU than this was preempted or idle
OTHERS_NOTE = 0.25  # cores used by other processes worth a note

_LEN = struct.Struct(">I")
T = TypeVar("T")


# --- results ---


@dataclass(slots=True)
class Machine:
    platform: str
    cpus: int | None
    python: str
    loop: str
    load_before: tuple[float, float, float] | None
    load_after: tuple[float, float, float] | None = None
    ibsim_source: str | None = None  # git tree of ibsim/ + hash of local changes under it
    ibsim_source_after: str | None = None


def per_cpu_second(count: int, seconds: float, share: float | None) -> float | None:
    """`count` per CPU-second of the process doing the work: independent of time it was
    preempted for (the machine is shared), unlike the wall-clock rate."""
    return count / (share * seconds) if share else None


@dataclass(slots=True)
class Stream:
    """One socket measurement: what crossed the socket during the measured window."""

    seconds: float
    tick_messages: int
    frames: int
    bytes: int
    ibsim_cpu: float | None  # share of one core used by the gateway process in the window
    reader_cpu: float  # share of one core used by this process (raw reader or ib_async client)
    others_cpu: float | None  # cores used by every other process on the machine
    steal: float | None  # cores the hypervisor gave to someone else
    reads: int | None = None  # data_received calls (ib_async only)

    @property
    def rate(self) -> float:
        return self.tick_messages / self.seconds


@dataclass(slots=True)
class Decode:
    """The ib_async client's decode rate for one chunk size, without a socket."""

    chunk_bytes: int
    seconds: float
    ticks: int
    cpu: float  # share of one core this process got in the window
    others_cpu: float | None
    steal: float | None

    @property
    def rate(self) -> float:
        return self.ticks / self.seconds

    @property
    def per_cpu_s(self) -> float | None:
        return per_cpu_second(self.ticks, self.seconds, self.cpu)


@dataclass(slots=True)
class Report:
    machine: Machine
    seconds: float
    warmup: float
    offered: Stream
    delivered: Stream
    decode: list[Decode] = field(default_factory=list)

    @property
    def ceiling(self) -> Decode:
        return max(self.decode, key=lambda d: d.rate)

    @property
    def offered_per_cpu_s(self) -> float | None:
        """Tick messages per CPU-second of the gateway process."""
        o = self.offered
        return per_cpu_second(o.tick_messages, o.seconds, o.ibsim_cpu)

    @property
    def delivered_per_cpu_s(self) -> float | None:
        """Ticks per CPU-second of the ib_async client's process."""
        d = self.delivered
        return per_cpu_second(d.tick_messages, d.seconds, d.reader_cpu)

    @property
    def live_limit(self) -> str:
        """Which side limited the live ib_async run, from the two processes' CPU shares."""
        client, gateway = self.delivered.reader_cpu, self.delivered.ibsim_cpu
        if gateway is None:
            return "unknown (no /proc)"
        if client >= BUSY_SHARE > gateway:
            return "the ib_async client limited delivery"
        if gateway >= BUSY_SHARE > client:
            return "ibsim limited delivery"
        if client >= BUSY_SHARE and gateway >= BUSY_SHARE:
            return "both saturated"
        return "neither saturated (other load)"

    def as_json(self) -> dict[str, Any]:
        ceiling = self.ceiling
        data = asdict(self)
        data["offered"]["tick_messages_per_s"] = self.offered.rate
        data["offered"]["per_ibsim_cpu_s"] = self.offered_per_cpu_s
        data["delivered"]["ticks_per_s"] = self.delivered.rate
        data["delivered"]["per_client_cpu_s"] = self.delivered_per_cpu_s
        for row, d in zip(data["decode"], self.decode, strict=True):
            row["ticks_per_s"] = d.rate
            row["per_cpu_s"] = d.per_cpu_s
        data["ceiling"] = {
            "ticks_per_s": ceiling.rate,
            "chunk_bytes": ceiling.chunk_bytes,
            "per_cpu_s": ceiling.per_cpu_s,
        }
        data["ratios"] = {
            "delivered_over_ceiling": self.delivered.rate / ceiling.rate,
            "offered_over_ceiling": self.offered.rate / ceiling.rate,
            "offered_over_target": self.offered.rate / TARGET,
            "offered_over_ceiling_per_cpu_s": _ratio(self.offered_per_cpu_s, ceiling.per_cpu_s),
        }
        data["target_tick_messages_per_s"] = TARGET
        data["live_limit"] = self.live_limit
        return data


def _ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or not b else a / b


# --- helpers ---


def frame(*fields: object) -> bytes:
    payload = ("\0".join(map(str, fields)) + "\0").encode("ascii")
    return _LEN.pack(len(payload)) + payload


def front_month() -> FutureSpec:
    return contracts.listed_futures(START)[0]


def ib_contract(spec: FutureSpec) -> Contract:
    return Contract(
        secType="FUT",
        conId=spec.con_id,
        symbol=spec.symbol,
        lastTradeDateOrContractMonth=spec.expiry,
        exchange=spec.exchange,
        currency=spec.currency,
        localSymbol=spec.local_symbol,
        tradingClass=spec.trading_class,
    )


_CLK_TCK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def process_cpu(pid: int) -> float | None:
    """CPU seconds (user + system) used so far by process `pid`; None without /proc."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            text = f.read()
    except OSError:
        return None
    fields = text.rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / _CLK_TCK


def machine_cpu() -> tuple[float, float] | None:
    """(busy, stolen) core-seconds of the whole machine since boot, from /proc/stat."""
    try:
        with open("/proc/stat") as f:
            user, nice, system, _idle, _iowait, irq, softirq, steal = map(
                int, f.readline().split()[1:9]
            )
    except (OSError, ValueError):
        return None
    return (user + nice + system + irq + softirq) / _CLK_TCK, steal / _CLK_TCK


@dataclass(slots=True, frozen=True)
class Usage:
    """CPU use over one measured window, in cores (1.0 = one core for the whole window)."""

    seconds: float
    own: float  # this process
    gateway: float | None  # the gateway process, when there is one
    others: float | None  # every other process on the machine
    steal: float | None  # taken by the hypervisor


class Window:
    """Wall time and CPU use (this process, the gateway, everyone else) over one window."""

    def __init__(self, gateway_pid: int | None) -> None:
        self._pid = gateway_pid
        self._gw0 = process_cpu(gateway_pid) if gateway_pid is not None else None
        self._machine0 = machine_cpu()
        self._cpu0 = time.process_time()
        self._wall0 = time.perf_counter()

    def close(self) -> Usage:
        elapsed = time.perf_counter() - self._wall0
        own = time.process_time() - self._cpu0
        gw1 = process_cpu(self._pid) if self._pid is not None else None
        machine1 = machine_cpu()
        gw = None if gw1 is None or self._gw0 is None else gw1 - self._gw0
        others = steal = None
        if machine1 is not None and self._machine0 is not None:
            busy = machine1[0] - self._machine0[0]
            others = max(0.0, busy - own - (gw or 0.0)) / elapsed
            steal = (machine1[1] - self._machine0[1]) / elapsed
        return Usage(
            seconds=elapsed,
            own=own / elapsed,
            gateway=None if gw is None else gw / elapsed,
            others=others,
            steal=steal,
        )


def loop_factory(name: str) -> Callable[[], asyncio.AbstractEventLoop]:
    if name == "uvloop":
        import uvloop

        return uvloop.new_event_loop
    return asyncio.new_event_loop


def run_on(loop: str, coro: Coroutine[Any, Any, T]) -> T:
    with asyncio.Runner(loop_factory=loop_factory(loop)) as runner:
        return runner.run(coro)


def default_loop() -> str:
    try:
        import uvloop  # noqa: F401
    except ImportError:  # pragma: no cover - uvloop is a dependency on Linux
        return "asyncio"
    return "uvloop"


def progress(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


# --- the gateway process ---


@dataclass(slots=True)
class GatewayProcess:
    proc: subprocess.Popen[str]
    port: int


@contextlib.contextmanager
def gateway_process() -> Iterator[GatewayProcess]:
    """`python -m ibsim` on 127.0.0.1:0, unpaced synthetic market; stopped on exit."""
    cmd = [
        sys.executable,
        "-m",
        "ibsim",
        "--host",
        HOST,
        "--port",
        "0",
        "--source",
        "synthetic",
        "--seed",
        str(SEED),
        "--start",
        START_TEXT,
        "--speed",
        "0",  # unpaced: the market runs as fast as the gateway can serve it
        "--client-id-release-delay",
        "0",
    ]
    with tempfile.TemporaryFile("w+") as log:
        proc = subprocess.Popen(
            cmd, stdout=subprocess.PIPE, stderr=log, text=True, preexec_fn=_die_with_parent
        )
        try:
            yield GatewayProcess(proc, _read_port(proc, log))
        finally:
            _stop(proc)


def _die_with_parent() -> None:
    """In the child before exec: SIGTERM it if this process dies without stopping it."""
    if sys.platform != "linux":
        return
    import ctypes

    pr_set_pdeathsig = 1
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(pr_set_pdeathsig, signal.SIGTERM)


def _read_port(proc: subprocess.Popen[str], log: IO[str]) -> int:
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], GATEWAY_START_TIMEOUT)
    line = proc.stdout.readline() if ready else ""
    if not line.strip().isdigit():
        log.seek(0)
        tail = log.read()[-2000:]
        raise RuntimeError(f"ibsim did not print its port (got {line!r}); its stderr:\n{tail}")
    return int(line)


def _stop(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    if proc.stdout is not None:
        proc.stdout.close()


# --- 1. offered: a raw reader ---


class RawReader:
    """A minimal TWS API client on a blocking socket that counts frames and drops them."""

    def __init__(self, port: int, client_id: int = 1) -> None:
        self.sock = socket.create_connection((HOST, port), timeout=SOCKET_TIMEOUT)
        self.buf = bytearray(1 << 20)
        self.have = 0
        self.frames = self.ticks = self.bytes = 0
        versions = f"v{MIN_VERSION}..{MAX_VERSION}".encode("ascii")
        self.sock.sendall(b"API\0" + _LEN.pack(len(versions)) + versions)
        reply = self._first_frame().split(b"\0")[:-1]
        if len(reply) != 2:
            raise RuntimeError(f"unexpected handshake reply {reply!r}")
        self.server_version = int(reply[0])
        self.sock.sendall(frame(START_API, 2, client_id, ""))

    def close(self) -> None:
        self.sock.close()

    def subscribe(self, req_id: int, spec: FutureSpec, kind: str) -> None:
        contract = (
            spec.con_id,
            spec.symbol,
            "FUT",
            spec.expiry,
            "",  # strike
            "",  # right
            "",  # multiplier
            spec.exchange,
            "",  # primary exchange
            spec.currency,
            spec.local_symbol,
            spec.trading_class,
        )
        self.sock.sendall(frame(REQ_TICK_BY_TICK, req_id, *contract, kind, 0, 0))

    def _first_frame(self) -> bytes:
        while True:
            if self.have >= 4:
                end = 4 + _LEN.unpack_from(self.buf, 0)[0]
                if self.have >= end:
                    payload = bytes(self.buf[4:end])
                    self.buf[: self.have - end] = self.buf[end : self.have]
                    self.have -= end
                    return payload
            n = self.sock.recv_into(memoryview(self.buf)[self.have :])
            if n == 0:
                raise ConnectionError("ibsim closed the connection during the handshake")
            self.have += n

    def pump(self, seconds: float) -> None:
        """Read, count and discard frames for `seconds`."""
        buf, have = self.buf, self.have
        view = memoryview(buf)
        unpack_from, recv_into, now = _LEN.unpack_from, self.sock.recv_into, time.perf_counter
        frames = ticks = nbytes = 0
        deadline = now() + seconds
        try:
            while now() < deadline:
                n = recv_into(view[have:])
                if n == 0:
                    raise ConnectionError("ibsim closed the connection")
                nbytes += n
                have += n
                off = 0
                while have - off >= 4:
                    end = off + 4 + unpack_from(buf, off)[0]
                    if end > have:
                        break
                    if buf.startswith(TICK_BY_TICK, off + 4):
                        ticks += 1
                    frames += 1
                    off = end
                if off:
                    buf[: have - off] = buf[off:have]  # same length: no resize
                    have -= off
                if have == len(buf):  # one frame larger than the buffer
                    view.release()
                    buf.extend(bytes(len(buf)))
                    view = memoryview(buf)
        finally:
            view.release()
            self.have = have
            self.frames += frames
            self.ticks += ticks
            self.bytes += nbytes


def measure_offered(spec: FutureSpec, seconds: float, warmup: float) -> Stream:
    with gateway_process() as gw:
        reader = RawReader(gw.port)
        try:
            reader.subscribe(LAST_REQ_ID, spec, "AllLast")
            reader.subscribe(BID_ASK_REQ_ID, spec, "BidAsk")
            reader.pump(warmup)
            frames0, ticks0, bytes0 = reader.frames, reader.ticks, reader.bytes
            window = Window(gw.proc.pid)
            reader.pump(seconds)
            use = window.close()
        finally:
            reader.close()
    return Stream(
        seconds=use.seconds,
        tick_messages=reader.ticks - ticks0,
        frames=reader.frames - frames0,
        bytes=reader.bytes - bytes0,
        ibsim_cpu=use.gateway,
        reader_cpu=use.own,
        others_cpu=use.others,
        steal=use.steal,
    )


# --- 2. delivered: a real ib_async client ---


class TickCounter:
    """The client's handler: counts the tick-by-tick ticks of each ticker update."""

    def __init__(self) -> None:
        self.ticks = 0

    def on_update(self, ticker: Ticker) -> None:
        self.ticks += len(ticker.tickByTicks)


class ReadCounter:
    """Counts `IB.updateEvent`, emitted once per chunk of socket data the client processes."""

    def __init__(self) -> None:
        self.reads = 0

    def on_update(self) -> None:
        self.reads += 1


def subscribe_counter(tickers: Sequence[Ticker], counter: TickCounter) -> None:
    for ticker in {id(t): t for t in tickers}.values():  # both streams share one Ticker
        ticker.updateEvent += counter.on_update


async def _delivered(
    port: int, pid: int, spec: FutureSpec, seconds: float, warmup: float
) -> Stream:
    ib = IB()
    await ib.connectAsync(HOST, port, clientId=1, timeout=SOCKET_TIMEOUT)
    try:
        counter, reads = TickCounter(), ReadCounter()
        contract = ib_contract(spec)
        tickers = [
            ib.reqTickByTickData(contract, "AllLast"),
            ib.reqTickByTickData(contract, "BidAsk"),
        ]
        subscribe_counter(tickers, counter)
        ib.updateEvent += reads.on_update
        await asyncio.sleep(warmup)
        client: Any = ib.client
        ticks0, reads0 = counter.ticks, reads.reads
        msgs0, bytes0 = client._numMsgRecv, client._numBytesRecv
        window = Window(pid)
        await asyncio.sleep(seconds)
        use = window.close()
        if not ib.isConnected():
            raise ConnectionError("ib_async lost the connection during the measurement")
        return Stream(
            seconds=use.seconds,
            tick_messages=counter.ticks - ticks0,
            frames=client._numMsgRecv - msgs0,
            bytes=client._numBytesRecv - bytes0,
            ibsim_cpu=use.gateway,
            reader_cpu=use.own,
            others_cpu=use.others,
            steal=use.steal,
            reads=reads.reads - reads0,
        )
    finally:
        ib.disconnect()


def measure_delivered(spec: FutureSpec, seconds: float, warmup: float, loop: str) -> Stream:
    with gateway_process() as gw:
        return run_on(loop, _delivered(gw.port, gw.proc.pid, spec, seconds, warmup))


# --- 3. ceiling: the same client, no socket ---


def encode_stream(spec: FutureSpec, n: int) -> bytes:
    """The first `n` messages of the benchmark's stream, encoded as `ibsim.feed` does."""
    enc = Encoder(MAX_VERSION)
    out: list[bytes] = []
    for ev in itertools.islice(SyntheticSource(seed=SEED, start_time=START).events(), n):
        t = int(ev.time)
        if isinstance(ev, QuoteTick):
            out.append(
                enc.tick_by_tick_bid_ask(
                    BID_ASK_REQ_ID, t, ev.bid, ev.ask, ev.bid_size, ev.ask_size
                )
            )
        else:
            out.append(enc.tick_by_tick_last(LAST_REQ_ID, 2, t, ev.price, ev.size))
    return b"".join(out)


def offline_client(spec: FutureSpec) -> tuple[Callable[[bytes], None], TickCounter, Any]:
    """An `IB` whose client took the gateway's handshake from bytes, with both tickers set up.

    It goes through its own handshake path (server version, START_API into no transport,
    nextValidId + managedAccounts → API ready), then registers the tickers exactly as
    `IB.reqTickByTickData` does before it writes the request.
    """
    ib = IB()
    client: Any = ib.client
    feed: Callable[[bytes], None] = client._onSocketHasData
    enc = Encoder(MAX_VERSION)
    client.connState = client.CONNECTING
    feed(enc.handshake(START))
    feed(enc.next_valid_id(1) + enc.managed_accounts([ACCOUNT]))
    if not ib.client.isReady():
        raise RuntimeError("the offline ib_async client did not reach API-ready")
    contract = ib_contract(spec)
    tickers = [
        ib.wrapper.startTicker(LAST_REQ_ID, contract, "AllLast"),
        ib.wrapper.startTicker(BID_ASK_REQ_ID, contract, "BidAsk"),
    ]
    counter = TickCounter()
    subscribe_counter(tickers, counter)
    return feed, counter, client


async def _decode(
    blob: bytes, spec: FutureSpec, chunk: int, seconds: float, warmup: float
) -> Decode:
    # Inside a running loop, as in the client: ib_async looks the loop up when it sends.
    feed, counter, client = offline_client(spec)
    chunks = itertools.cycle([blob[i : i + chunk] for i in range(0, len(blob), chunk)])
    now = time.perf_counter

    def run(duration: float) -> None:
        # One iterator throughout: the client keeps a partial frame between chunks.
        deadline = now() + duration
        for data in chunks:
            feed(data)
            if now() >= deadline:
                return

    run(warmup)
    ticks0, frames0 = counter.ticks, client._numMsgRecv
    window = Window(None)
    run(seconds)
    use = window.close()
    ticks, frames = counter.ticks - ticks0, client._numMsgRecv - frames0
    if ticks != frames:
        raise RuntimeError(f"ib_async decoded {frames} frames but delivered {ticks} ticks")
    return Decode(
        chunk_bytes=chunk,
        seconds=use.seconds,
        ticks=ticks,
        cpu=use.own,
        others_cpu=use.others,
        steal=use.steal,
    )


def measure_decode(
    spec: FutureSpec, chunks: Sequence[int], seconds: float, warmup: float, loop: str
) -> list[Decode]:
    blob = encode_stream(spec, CEILING_FRAMES)
    return [run_on(loop, _decode(blob, spec, chunk, seconds, warmup)) for chunk in chunks]


# --- report ---


def _pct(share: float | None) -> str:
    return "n/a" if share is None else f"{share * 100:.0f}%"


def _size(n: int) -> str:
    return f"{n // 1024} KiB" if n % 1024 == 0 else f"{n} B"


def render(r: Report) -> str:
    ceiling = r.ceiling
    m = r.machine
    load = "n/a" if m.load_before is None else f"{m.load_before[0]:.2f}"
    if m.load_after is not None:
        load += f" -> {m.load_after[0]:.2f}"
    lines = [
        f"ibsim throughput: {r.seconds:g} s per measurement after {r.warmup:g} s warm-up",
        f"machine: {m.platform}, {m.cpus} CPUs, {m.python}, client loop {m.loop}, "
        f"load avg (1 min) {load}",
        f"ibsim source: {m.ibsim_source or 'unknown (no git)'}",
        "",
        f"{'measurement':<34}{'ticks/s':>10}{'/ceiling':>9}{'per CPU-s':>11}{'others':>8}  notes",
    ]

    def row(
        name: str,
        rate: float,
        per_cpu: float | None,
        others: float | None,
        steal: float | None,
        notes: str = "",
    ) -> None:
        cpu = "n/a" if per_cpu is None else f"{per_cpu:,.0f}"
        other = "n/a" if others is None else f"{others:.2f}"
        if steal is not None and steal >= 0.01:
            notes += f", steal {_pct(steal)}"
        lines.append(
            f"{name:<34}{rate:>10,.0f}{rate / ceiling.rate:>9.2f}{cpu:>11}{other:>8}  {notes}"
        )

    o, d = r.offered, r.delivered
    row(
        "offered by ibsim (raw reader)",
        o.rate,
        r.offered_per_cpu_s,
        o.others_cpu,
        o.steal,
        f"ibsim CPU {_pct(o.ibsim_cpu)}, reader {_pct(o.reader_cpu)}, "
        f"{o.bytes / o.seconds / 1e6:.1f} MB/s",
    )
    per_read = f"{d.bytes / d.reads / 1024:.1f} KiB/read" if d.reads else "no reads"
    row(
        "delivered to ib_async",
        d.rate,
        r.delivered_per_cpu_s,
        d.others_cpu,
        d.steal,
        f"client CPU {_pct(d.reader_cpu)}, ibsim {_pct(d.ibsim_cpu)}, {per_read}",
    )
    row(
        "ib_async decode ceiling",
        ceiling.rate,
        ceiling.per_cpu_s,
        ceiling.others_cpu,
        None,
        f"best of the chunk sizes below ({_size(ceiling.chunk_bytes)})",
    )
    for dec in r.decode:
        row(
            f"  decode, {_size(dec.chunk_bytes)} chunks",
            dec.rate,
            dec.per_cpu_s,
            dec.others_cpu,
            dec.steal,
            f"client CPU {_pct(dec.cpu)}",
        )
    met = "met" if o.rate >= TARGET else "NOT met"
    bottleneck = "is not" if o.rate >= ceiling.rate else "IS"
    per_cpu = _ratio(r.offered_per_cpu_s, ceiling.per_cpu_s)
    lines += [
        "",
        f"delivered/ceiling {d.rate / ceiling.rate:.2f}, offered/ceiling "
        f"{o.rate / ceiling.rate:.2f}"
        + ("" if per_cpu is None else f" (per CPU-second: {per_cpu:.2f})"),
        f"target: ibsim offers >= {TARGET:,} tick messages/s: {met} "
        f"({o.rate:,.0f} = {o.rate / TARGET:.2f} of target)",
        f"ceiling: ibsim {bottleneck} the bottleneck for a client decoding at its best "
        f"({_size(ceiling.chunk_bytes)} chunks): it offers {o.rate / ceiling.rate:.2f}x that",
        f"live pairing: {r.live_limit} (client CPU {_pct(d.reader_cpu)}, ibsim "
        f"{_pct(d.ibsim_cpu)}, {per_read})",
    ]
    if _tree(m.ibsim_source) != _tree(m.ibsim_source_after):
        lines.append(
            f"WARNING: ibsim/ changed during the run (now {m.ibsim_source_after}): "
            "the measurements saw different code"
        )
    others = [x for x in (o.others_cpu, d.others_cpu, *(x.others_cpu for x in r.decode)) if x]
    if others and max(others) >= OTHERS_NOTE:
        lines.append(
            f"note: other processes used up to {max(others):.2f} cores during the measurements; "
            "compare the ratios, not the absolute figures"
        )
    if o.ibsim_cpu is not None and o.ibsim_cpu < BUSY_SHARE:
        lines.append(
            f"note: ibsim had {_pct(o.ibsim_cpu)} of a core while offering (reader "
            f"{_pct(o.reader_cpu)}): per CPU-s figures are steadier than ticks/s"
        )
    if ceiling.cpu < BUSY_SHARE:
        lines.append(f"note: the decode ceiling ran on {_pct(ceiling.cpu)} of a core (other load)")
    return "\n".join(lines)


REPO = Path(__file__).resolve().parent.parent


def _git(*args: str) -> bytes:
    return subprocess.run(
        ["git", *args], cwd=REPO, capture_output=True, timeout=10, check=True
    ).stdout


def source_state() -> str | None:
    """Which ibsim was measured: the git tree of ibsim/ at HEAD, plus a hash of uncommitted
    changes under it (commits elsewhere in the repository leave it unchanged)."""
    try:
        tree = _git("rev-parse", "--short", "HEAD:ibsim").decode().strip()
        digest = hashlib.sha1(_git("diff", "HEAD", "--", "ibsim"))
        untracked = _git("ls-files", "--others", "--exclude-standard", "--", "ibsim")
        for name in sorted(untracked.decode().split()):
            digest.update(name.encode() + b"\0" + (REPO / name).read_bytes())
        commit = _git("rev-parse", "--short", "HEAD").decode().strip()
    except (OSError, subprocess.SubprocessError):
        return None
    if digest.hexdigest() == hashlib.sha1().hexdigest():
        return f"tree {tree} (commit {commit})"
    return f"tree {tree} + local changes {digest.hexdigest()[:10]} (commit {commit})"


def _tree(state: str | None) -> str | None:
    return None if state is None else state.partition(" (commit")[0]


def _loadavg() -> tuple[float, float, float] | None:
    try:
        return os.getloadavg()
    except OSError:  # pragma: no cover
        return None


def run(seconds: float, warmup: float, loop: str, chunks: Sequence[int]) -> Report:
    machine = Machine(
        platform=platform.platform(),
        cpus=os.cpu_count(),
        python=f"{platform.python_implementation()} {platform.python_version()}",
        loop=loop,
        load_before=_loadavg(),
        ibsim_source=source_state(),
    )
    spec = front_month()
    progress(f"offered: raw reader, {warmup:g} s warm-up + {seconds:g} s ...")
    offered = measure_offered(spec, seconds, warmup)
    progress(f"delivered: ib_async on {loop}, {warmup:g} s warm-up + {seconds:g} s ...")
    delivered = measure_delivered(spec, seconds, warmup, loop)
    progress(f"ceiling: ib_async decode, {len(chunks)} chunk sizes x {warmup + seconds:g} s ...")
    decode = measure_decode(spec, chunks, seconds, warmup, loop)
    machine.load_after = _loadavg()
    machine.ibsim_source_after = source_state()
    return Report(machine, seconds, warmup, offered, delivered, decode)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m bench.ibsim_throughput",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--seconds", type=float, default=5.0, help="measured seconds (default 5)")
    p.add_argument("--warmup", type=float, default=1.0, help="warm-up seconds (default 1)")
    p.add_argument("--json", action="store_true", help="print JSON instead of the table")
    p.add_argument(
        "--loop", choices=("uvloop", "asyncio"), default=default_loop(), help="client event loop"
    )
    p.add_argument(
        "--chunks",
        default=",".join(map(str, CHUNK_SIZES)),
        help="chunk sizes in bytes for the decode ceiling (comma separated)",
    )
    args = p.parse_args(argv)
    if args.seconds <= 0 or args.warmup < 0:
        p.error("--seconds must be > 0 and --warmup >= 0")
    try:
        chunks = [int(c) for c in args.chunks.split(",") if c.strip()]
    except ValueError:
        p.error(f"--chunks: not a list of integers: {args.chunks!r}")
    if not chunks or min(chunks) <= 0:
        p.error("--chunks needs at least one positive size")
    report = run(args.seconds, args.warmup, args.loop, chunks)
    if args.json:
        print(json.dumps(report.as_json(), indent=2))
    else:
        print(render(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
