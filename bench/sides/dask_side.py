#!/usr/bin/python3
"""dask_side.py -- the Dask side of ``npm run bench``: the bench server and client with
Dask's own comm (``distributed.comm`` over tcp, tls, ws or wss), as bench/run.ts spawns
them.

    /usr/bin/python3 bench/sides/dask_side.py bench-server [--transport tcp|tls|ws|wss] [--tls CA CERT KEY]
    /usr/bin/python3 bench/sides/dask_side.py bench-client ADDRESS [--tls CA CERT KEY]
        [--label L] [--reps 3] [--trips 5000] [--trip-seconds 2] [--pipelined 50000]
        [--pipelined-seconds 1.5] [--bulk-total-mib 1024] [--bulk-seconds 1.5] [--timeout 120]
    /usr/bin/python3 bench/sides/dask_side.py rpc-server
    /usr/bin/python3 bench/sides/dask_side.py rpc-client ADDRESS [--label L] [--reps 3]
        [--calls 5000] [--call-seconds 2] [--concurrent-calls 50000] [--concurrent-seconds 2]
        [--concurrency 100] [--timeout 120] [--stepped] [--only PHASE,...] [--no-warm-up]
    /usr/bin/python3 bench/sides/dask_side.py conn-server [--transport tcp|tls] [--tls CA CERT KEY]
    /usr/bin/python3 bench/sides/dask_side.py conn-client ADDRESS [--n 2000] [--warm-up 200]
        [--tls CA CERT KEY] [--label L] [--timeout 300]
    /usr/bin/python3 bench/sides/dask_side.py compress-server [--formats off,lz4,...] [--host 127.0.0.1]
    /usr/bin/python3 bench/sides/dask_side.py compress-client --addresses off=ADDR,lz4=ADDR --payloads DIR
        [--formats off,lz4] [--kinds sparse,categorical,random] [--total-mib 1024] [--seconds 1]
        [--stepped] [--reps 1] [--no-warm-up] [--label L] [--timeout 300]

Run it with Debian's ``/usr/bin/python3`` (the only interpreter here that imports Dask).
Not named dask.py: the script's folder comes first on sys.path and would shadow Dask.

The bench protocol, what each phase measures and the output keys are in bench/README.md;
the Node sides (rxcomm.ts, bare.ts or bare_ws.ts, via protocol.ts) measure exactly the
same.  The server prints ``{"ready": true, "mode": "bench-server", "address", "pid"}`` and
serves until its stdin closes; the client prints one line, ``{"ok": true, "<label>": {figures,
"negotiated", "raw"}}`` (medians over ``--reps``), or ``{"ok": false, "error"}``.

ws and wss: Dask's ws listener binds every interface whatever host it is given and
advertises the LAN address, so the server prints ``ws://127.0.0.1:PORT`` as its address
(the advertised one as ``advertised``, as interop/dask_peer.py's servers do); the client
takes the scheme from ADDRESS.

``rpc-server`` and ``rpc-client`` are the Dask side of the rpc table: a
``distributed.core.Server({"echo": echo})`` on tcp://127.0.0.1:0, and
``distributed.core.rpc(ADDRESS).echo(data=...)`` one call at a time and
``ConnectionPool(limit=100)(ADDRESS).echo(data=...)`` with 100 callers under
``asyncio.gather``; the same phases, payload and output keys as bench/sides/rpc_protocol.ts.
With ``--stepped`` (what run.ts uses) the client warms up, prints ``{"warm": true}``, then
answers each stdin line ``phase NAME`` with ``{"ok": true, "phase": NAME, "<label>": {...}}``,
so run.ts can interleave it with rxcomm's client phase by phase.

``conn-server`` and ``conn-client`` are the Dask side of the connections table: a
``distributed.comm.listen`` server holding (and reading) every comm it accepts, answering
``mem N`` on stdin with its memory once N are open; and ``distributed.comm.connect`` n
times, one after the other, all held open, its memory half-way (``{"half": true}``, then
``continue``) and at the end; the same steps and output keys as bench/sides/conn_protocol.ts.

``compress-server`` and ``compress-client`` are the Dask side of the compression table: a
``distributed.comm.listen`` listener per compression setting, each advertising it in its
handshakes, deserializing what arrives; and a comm per setting
(``connect(..., handshake_overrides={"compression": ...})``) sending 16 MiB
``to_serialize(bytes)`` payloads one way; the same phases and output keys as
bench/sides/compression_protocol.ts. Its warm line also reports what Dask's compressors make
of each payload (``ratios``).

What it shares with the interop peer (connect/listen with ``--tls``, the server's life
cycle, JSON lines, the command runner) is imported from interop/dask_peer.py rather than
copied.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import logging
import os
import statistics
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "interop"))

from dask_peer import (  # noqa: E402  (after the sys.path entry it needs)
    MiB,
    add_common_options,
    dask_connect,
    dask_listen,
    emit,
    hard_exit,
    import_dask,
    logger,
    loopback_address,
    make_security,
    pattern_bytes,
    read_reply,
    run_command,
    serve_until_done,
)


# --------------------------------------------------------------------------------------
# bench server
# --------------------------------------------------------------------------------------


def make_bench_handler():
    from distributed.comm import CommClosedError

    async def handler(comm):
        peer = comm.peer_address
        logger.info("bench: connection from %s", peer)
        pipe_count = 0
        bulk_bytes = 0
        bulk_msgs = 0
        read, write = comm.read, comm.write
        try:
            while True:
                msg = await read()
                op = msg.get("op") if type(msg) is dict else None
                if op == "ping":
                    await write({"op": "pong", "i": msg.get("i")})
                elif op == "pipe":
                    pipe_count += 1
                elif op == "bulk":
                    bulk_bytes += len(msg["data"])
                    bulk_msgs += 1
                elif op == "count":
                    await write({"op": "count", "count": pipe_count})
                    pipe_count = 0
                elif op == "bulk-done":
                    await write({"op": "bulk-done", "bytes": bulk_bytes, "messages": bulk_msgs})
                    bulk_bytes = bulk_msgs = 0
                else:
                    await write(msg)
        except CommClosedError:
            logger.info("bench: %s closed", peer)
        except Exception:
            logger.exception("bench: error on connection from %s", peer)
        finally:
            await comm.close()

    return handler


async def cmd_bench_server(args):
    import_dask(args.compression)
    transport = args.transport or ("tls" if args.tls else "tcp")
    if (transport in ("tls", "wss")) != bool(args.tls):
        raise ValueError(f"bench-server: {transport} {'needs' if args.tls is None else 'takes no'} --tls CA CERT KEY")
    listener = await dask_listen(args.tls, make_bench_handler(), deserialize=True, ws=transport in ("ws", "wss"))
    # ws/wss: Dask's listener binds every interface and advertises the LAN address; dial 127.0.0.1.
    emit({"ready": True, "mode": "bench-server", "address": loopback_address(listener.contact_address),
          "advertised": listener.contact_address, "pid": os.getpid()})
    try:
        await serve_until_done(args)
    finally:
        listener.stop()
    return 0


# --------------------------------------------------------------------------------------
# bench client
# --------------------------------------------------------------------------------------


class BenchError(Exception):
    pass


async def bench_roundtrips(comm, max_trips, max_seconds):
    write, read = comm.write, comm.read
    lat = []
    pc = time.perf_counter_ns
    deadline = pc() + int(max_seconds * 1e9)
    start = pc()
    i = 0
    while i < max_trips:
        t0 = pc()
        await write({"op": "ping", "i": i})
        r = await read()
        t1 = pc()
        if r.get("op") != "pong" or r.get("i") != i:
            raise BenchError(f"bad pong for i={i}: {r!r}"[:300])
        lat.append(t1 - t0)
        i += 1
        if t1 > deadline:
            break
    elapsed = (pc() - start) / 1e9
    return {"trips": i, "per_s": i / elapsed, "median_us": statistics.median(lat) / 1000,
            "p99_us": sorted(lat)[int(0.99 * (len(lat) - 1))] / 1000}


async def bench_pipelined(comm, max_n, max_seconds):
    write = comm.write
    t0 = time.perf_counter()
    deadline = t0 + max_seconds
    n = 0
    while n < max_n:
        for _ in range(min(1000, max_n - n)):
            await write({"op": "pipe", "i": n})
            n += 1
        if time.perf_counter() > deadline:
            break
    await write({"op": "count"})
    r = await read_reply(comm, 60)
    elapsed = time.perf_counter() - t0
    if r.get("op") != "count" or r.get("count") != n:
        raise BenchError(f"pipelined: sent {n}, server counted {r!r}"[:300])
    return {"messages": n, "per_s": n / elapsed, "seconds": elapsed}


async def bench_bulk(comm, size, max_count, max_seconds, acked=False):
    """One-way bulk: max_count messages of `size` bytes back to back, then bulk-done.
    acked=True: every bulk message is followed by bulk-done and its reply (one in flight)."""
    data = pattern_bytes(size)
    write = comm.write
    t0 = time.perf_counter()
    deadline = t0 + max_seconds
    count = 0
    while count < max_count:
        await write({"op": "bulk", "data": data})
        count += 1
        if acked:
            await write({"op": "bulk-done"})
            r = await read_reply(comm, 60)
            if r.get("op") != "bulk-done" or r.get("bytes") != size or r.get("messages") != 1:
                raise BenchError(f"bulk (acked): sent {size} B, server acked {r!r}"[:300])
        if time.perf_counter() > deadline:
            break
    if not acked:
        await write({"op": "bulk-done"})
        r = await read_reply(comm, 60)
        if r.get("op") != "bulk-done" or r.get("bytes") != size * count or r.get("messages") != count:
            raise BenchError(f"bulk: sent {count} x {size} B, server acked {r!r}"[:300])
    elapsed = time.perf_counter() - t0
    return {"messages": count, "MiB": size * count / MiB, "MiBps": size * count / MiB / elapsed,
            "seconds": elapsed}


BULK_PHASES = [
    # (output key, message size, acked)
    ("bulk_16MiB", 16 * MiB, False),
    ("bulk_1MiB", 1 * MiB, False),
    ("bulk_16MiB_acked", 16 * MiB, True),
    ("bulk_1MiB_acked", 1 * MiB, True),
]


async def run_bench_client(address, tls, opts):
    comm = await dask_connect(address, tls)
    try:
        raw = {"roundtrip": [], "pipelined": [], **{k: [] for k, _, _ in BULK_PHASES}}
        # warm-up (also warms the allocators of both processes)
        await bench_roundtrips(comm, 200, 1.0)
        await bench_pipelined(comm, 5000, 1.0)
        for _, size, acked in BULK_PHASES:
            await bench_bulk(comm, size, 4 if size > MiB else 32, 1.0, acked)
        for _ in range(opts.reps):
            raw["roundtrip"].append(await bench_roundtrips(comm, opts.trips, opts.trip_seconds))
            raw["pipelined"].append(await bench_pipelined(comm, opts.pipelined, opts.pipelined_seconds))
            for key, size, acked in BULK_PHASES:
                raw[key].append(await bench_bulk(comm, size, max(1, opts.bulk_total_mib * MiB // size),
                                                 opts.bulk_seconds, acked))
        med = statistics.median
        out = {
            "roundtrip_per_s": round(med(r["per_s"] for r in raw["roundtrip"]), 1),
            "roundtrip_median_us": round(med(r["median_us"] for r in raw["roundtrip"]), 1),
            "pipelined_per_s": round(med(r["per_s"] for r in raw["pipelined"]), 1),
        }
        for key, _, _ in BULK_PHASES:
            out[key + "_MiBps"] = round(med(r["MiBps"] for r in raw[key]), 1)
        out["reps"] = opts.reps
        out["negotiated"] = comm.handshake_options
        out["raw"] = {k: [{kk: round(vv, 3) if isinstance(vv, float) else vv for kk, vv in r.items()} for r in v]
                      for k, v in raw.items()}
        return out
    finally:
        await comm.close()


async def cmd_bench_client(args):
    import_dask(args.compression)
    label = args.label or args.address.split("://", 1)[0]
    res = await run_bench_client(args.address, args.tls, args)
    emit({"ok": True, label: res})
    return 0


# --------------------------------------------------------------------------------------
# rpc server and client (the rpc table; bench/README.md, "The rpc table")
# --------------------------------------------------------------------------------------

RPC_PHASES = ("rpc_sequential", "rpc_concurrent")


def rpc_payload(i):
    """The payload of call ``i``, a small map (rpc_protocol.ts ``rpcPayload``). ``values`` is
    a tuple because Dask decodes msgpack arrays as tuples: the echoed map then compares equal."""
    return {"i": i, "name": "rpc-bench", "values": (1, 2, 3), "flag": True}


def cpu_since(t0):
    t1 = os.times()
    return {"cpu_user_ms": (t1.user - t0.user) * 1000, "cpu_system_ms": (t1.system - t0.system) * 1000}


async def cmd_rpc_server(args):
    import_dask(args.compression)
    from distributed.core import Server

    def echo(data=None):
        return data

    server = Server({"echo": echo})
    await server
    await server.listen("tcp://127.0.0.1:0")
    emit({"ready": True, "mode": "rpc-server", "address": server.listeners[0].contact_address,
          "pid": os.getpid()})
    try:
        await serve_until_done(args)
    finally:
        try:
            await asyncio.wait_for(server.close(), 5)
        except Exception:
            pass
    return 0


async def rpc_sequential(remote, max_calls, max_seconds):
    """One call at a time: ``await remote.echo(data=...)``."""
    pc = time.perf_counter_ns
    lat = []
    cpu = os.times()
    start = pc()
    deadline = start + int(max_seconds * 1e9)
    i = 0
    while i < max_calls:
        data = rpc_payload(i)
        t0 = pc()
        reply = await remote.echo(data=data)
        t1 = pc()
        if reply != data:
            raise BenchError(f"sequential: call {i} got {reply!r}"[:300])
        lat.append(t1 - t0)
        i += 1
        if t1 > deadline:
            break
    seconds = (pc() - start) / 1e9
    used = cpu_since(cpu)
    lat.sort()
    return {"calls": i, "per_s": i / seconds, "median_us": statistics.median(lat) / 1000,
            "p99_us": lat[int(0.99 * (i - 1))] / 1000, "seconds": seconds, **used}


async def rpc_concurrent(remote, max_calls, max_seconds, concurrency):
    """``concurrency`` callers under asyncio.gather, each calling again once its reply is in."""
    perf = time.perf_counter
    cpu = os.times()
    start = perf()
    deadline = start + max_seconds
    state = {"issued": 0, "done": 0}

    async def caller():
        while state["issued"] < max_calls and perf() < deadline:
            i = state["issued"]
            state["issued"] = i + 1
            data = rpc_payload(i)
            reply = await remote.echo(data=data)
            if reply != data:
                raise BenchError(f"concurrent: call {i} got {reply!r}"[:300])
            state["done"] += 1

    await asyncio.gather(*(caller() for _ in range(concurrency)))
    seconds = perf() - start
    return {"calls": state["done"], "per_s": state["done"] / seconds, "seconds": seconds,
            "concurrency": concurrency, **cpu_since(cpu)}


def summarize_rpc(raw):
    """Medians under the table's keys (rpc_protocol.ts ``summarizeRpc``)."""
    med = statistics.median
    seq, conc = raw.get("rpc_sequential") or [], raw.get("rpc_concurrent") or []
    return {
        "rpc_sequential_per_s": round(med(r["per_s"] for r in seq), 1) if seq else None,
        "rpc_sequential_median_us": round(med(r["median_us"] for r in seq), 1) if seq else None,
        "rpc_concurrent_per_s": round(med(r["per_s"] for r in conc), 1) if conc else None,
        "reps": max(len(seq), len(conc)),
        "raw": raw,
    }


async def stdin_lines():
    """stdin's lines, read in a thread (asyncio has no portable async stdin); ends at EOF."""
    loop = asyncio.get_running_loop()
    queue = asyncio.Queue()

    def read():
        try:
            for line in sys.stdin:
                loop.call_soon_threadsafe(queue.put_nowait, line)
        finally:
            loop.call_soon_threadsafe(queue.put_nowait, None)

    threading.Thread(target=read, name="stdin-steps", daemon=True).start()
    while (line := await queue.get()) is not None:
        yield line


class CollectCounter(logging.Filter):
    """Counts ConnectionPool.collect() calls (Dask logs each one): each closes every idle comm
    of the pool, which the callers then open again (bench/README.md, "The rpc table")."""

    def __init__(self):
        super().__init__()
        self.count = 0

    def filter(self, record):
        if record.msg.startswith("Collecting unused comms"):
            self.count += 1
        return True


async def cmd_rpc_client(args):
    import_dask(args.compression)
    from distributed.core import ConnectionPool, rpc

    # Dask logs to stderr with a handler of its own (as in any Dask process); run_command's
    # root handler would print each record a second time.
    logging.getLogger("distributed").propagate = False
    collects = CollectCounter()
    logging.getLogger("distributed.core").addFilter(collects)
    label = args.label or "dask"
    remote = rpc(args.address)
    pool = await ConnectionPool(limit=args.pool_limit or args.concurrency)
    pooled = pool(args.address)
    phases = {
        "rpc_sequential": lambda: rpc_sequential(remote, args.calls, args.call_seconds),
        "rpc_concurrent": lambda: rpc_concurrent(pooled, args.concurrent_calls, args.concurrent_seconds,
                                                 args.concurrency),
    }

    def comms():
        return {"rpc_comms": len(remote.comms), "pool_open": pool.open, "pool_collects": collects.count}

    async def run_phase(name):
        before = collects.count
        result = await phases[name]()
        return {**result, **comms(), "pool_collects": collects.count - before}

    try:
        if not args.no_warm_up:
            # as rpc_protocol.ts's warm-up: 5,000 sequential and 20,000 concurrent calls, or 1 s each
            await rpc_sequential(remote, 5000, 1.0)
            await rpc_concurrent(pooled, 20_000, 1.0, args.concurrency)
        if args.stepped:
            emit({"warm": True, "pid": os.getpid(), **comms()})
            async for line in stdin_lines():
                words = line.split()
                if len(words) == 2 and words[0] == "phase":
                    if words[1] not in phases:
                        raise ValueError(f"unknown phase {words[1]!r} (one of {', '.join(RPC_PHASES)})")
                    emit({"ok": True, "phase": words[1], label: await run_phase(words[1])})
        else:
            only = set(args.only.split(",")) if args.only else set(RPC_PHASES)
            raw = {k: [] for k in RPC_PHASES}
            for _ in range(args.reps):
                for k in RPC_PHASES:
                    if k in only:
                        raw[k].append(await run_phase(k))
            emit({"ok": True, label: {**summarize_rpc(raw), **comms()}})
    finally:
        await pool.close()
        await remote.close_rpc()
    return 0


# --------------------------------------------------------------------------------------
# connections (the connections table; bench/README.md, "The connections table")
# --------------------------------------------------------------------------------------


def raise_fd_limit():
    """The soft limit on open files up to the hard one, as Node does at start-up (10,000
    comms need as many descriptors)."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


_PAGE = os.sysconf("SC_PAGE_SIZE")


def _malloc_resident():
    """The resident size of the ``[heap]`` mapping (glibc's main malloc arena), bytes: what
    malloc holds (objects over 512 bytes, buffers), as conn_protocol.ts measures it."""
    try:
        with open("/proc/self/smaps") as f:
            text = f.read()
    except OSError:
        return 0
    at = text.find(" [heap]\n")
    if at < 0:
        return 0
    for line in text[at:at + 2000].splitlines()[1:]:
        if line.startswith("Rss:"):
            return int(line.split()[1]) * 1024
    return 0


def _obmalloc_allocated():
    """Bytes in allocated blocks of CPython's small-object allocator (``sys._debugmallocstats``,
    which writes to the C stderr: captured through a temporary file)."""
    import tempfile

    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as tmp:
        os.dup2(tmp.fileno(), 2)
        try:
            sys._debugmallocstats()
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        tmp.seek(0)
        for line in tmp.read().decode("ascii", "replace").splitlines():
            if line.startswith("# bytes in allocated blocks"):
                return int(line.split("=")[1].strip().replace(",", ""))
    return 0


def mem_sample():
    """The process's memory after gc.collect(): ``rss`` (/proc/self/statm); ``live``, what it
    holds less its allocators' free space: CPython's small-object blocks in use plus what
    malloc holds resident (the analog of conn_protocol.ts's V8 heapUsed + malloc); with
    --tracemalloc also tracemalloc's ``traced``."""
    import gc
    import tracemalloc

    gc.collect()
    with open("/proc/self/statm") as f:
        rss = int(f.read().split()[1]) * _PAGE
    obmalloc = _obmalloc_allocated()
    malloc = _malloc_resident()
    out = {"rss": rss, "obmalloc": obmalloc, "malloc": malloc, "live": obmalloc + malloc}
    if tracemalloc.is_tracing():
        out["traced"] = tracemalloc.get_traced_memory()[0]
    return out


def per_comm(before, after, n):
    return {f"{k}_kib": round((after[k] - before[k]) / 1024 / n, 2) for k in before if k in after}


async def cmd_conn_server(args):
    """Holds every comm it accepts, reading (and echoing) as an application would, and
    answers ``mem N [WAIT_S]`` on stdin with its memory once N comms are open."""
    import_dask(args.compression)
    raise_fd_limit()
    if args.tracemalloc:
        import tracemalloc

        tracemalloc.start()
    from distributed.comm import CommClosedError

    transport = args.transport or ("tls" if args.tls else "tcp")
    state = {"open": 0, "accepted": 0}
    changed = asyncio.Event()

    async def handler(comm):
        state["open"] += 1
        state["accepted"] += 1
        changed.set()
        try:
            while True:
                await comm.write(await comm.read())
        except CommClosedError:
            pass
        finally:
            state["open"] -= 1
            changed.set()
            comm.abort()

    listener = await dask_listen(args.tls, handler, deserialize=True, ws=transport in ("ws", "wss"))
    emit({"ready": True, "mode": "conn-server", "address": loopback_address(listener.contact_address),
          "pid": os.getpid()})
    asyncio.get_running_loop().call_later(args.lifetime, hard_exit, 0)
    try:
        async for line in stdin_lines():
            words = line.split()
            if not words or words[0] != "mem":
                continue
            expected = int(words[1])
            deadline = time.perf_counter() + (float(words[2]) if len(words) > 2 else 30.0)
            while state["open"] != expected and time.perf_counter() < deadline:
                changed.clear()
                try:
                    await asyncio.wait_for(changed.wait(), 0.05)
                except asyncio.TimeoutError:
                    pass
            emit({"ok": True, "mem": mem_sample(), "open": state["open"], "accepted": state["accepted"]})
    finally:
        listener.stop()
    return 0


async def cmd_conn_client(args):
    """``--warm-up`` connects (each closed), its memory, ``{"warm": true}``; on ``run``,
    n/2 connects one after the other (``distributed.comm.connect``, handshake included),
    all held open, its memory (``{"half": true}``); on ``continue`` the other n/2:
    connects/s and memory per comm (conn_protocol.ts)."""
    import_dask(args.compression)
    raise_fd_limit()
    if args.tracemalloc:
        import tracemalloc

        tracemalloc.start()
    from distributed.comm import connect

    # One Security and one set of connection args (its SSLContext), as a Dask client keeps them.
    sec = make_security(args.tls)
    kwargs = sec.get_connection_args("client") if sec else {}
    address = args.address
    label = args.label or "dask"

    async def one():
        return await connect(address, timeout=10, **kwargs)

    t0 = time.perf_counter()
    for _ in range(args.warm_up):
        comm = await one()
        await comm.close()
    warm_seconds = time.perf_counter() - t0
    await asyncio.sleep(0.1)
    before = mem_sample()
    emit({"warm": True, "pid": os.getpid(), "warm_up": args.warm_up,
          "warm_up_per_s": args.warm_up / warm_seconds if warm_seconds > 0 else None, "mem": before})
    held = []
    n = args.n
    half = n // 2
    lines = stdin_lines()

    async def command(word):
        """The next stdin line that is ``word``; False once stdin has closed."""
        async for line in lines:
            if line.strip() == word:
                return True
        return False

    state = {"seconds": 0.0, "failure": None, "user": 0.0, "system": 0.0}

    async def connect_up_to(count):
        cpu = os.times()
        start = time.perf_counter()
        try:
            while len(held) < count:
                held.append(await one())
        except Exception as e:  # reported with what was done
            state["failure"] = f"{type(e).__name__}: {e}"
        state["seconds"] += time.perf_counter() - start
        used = cpu_since(cpu)
        state["user"] += used["cpu_user_ms"]
        state["system"] += used["cpu_system_ms"]

    if await command("run"):
        # Half, a memory sample, the other half on `continue`: memory per comm is the slope
        # over the second half, as on the Node sides (conn_protocol.ts).
        await connect_up_to(half)
        mid = None
        if state["failure"] is None and 0 < half < n:
            await asyncio.sleep(0.1)
            mid = mem_sample()
            emit({"half": True, "connected": len(held), "mem": mid})
            if not await command("continue"):
                return 0
        if state["failure"] is None:
            await connect_up_to(n)
        await asyncio.sleep(0.1)
        after = mem_sample()
        seconds = state["seconds"]
        result = {
            "n": n, "half": half if mid else 0, "connected": len(held),
            "open": sum(1 for c in held if not c.closed()),
            "seconds": seconds, "connects_per_s": len(held) / seconds if seconds > 0 else 0,
            "cpu_user_ms": state["user"], "cpu_system_ms": state["system"],
            "mem_before": before, "mem_mid": mid, "mem_after": after,
            "per_comm": per_comm(mid, after, len(held) - half) if mid and len(held) > half
            else per_comm(before, after, max(1, len(held))),
            "per_comm_whole": per_comm(before, after, max(1, len(held))),
        }
        if state["failure"]:
            emit({"ok": False, "error": f"after {len(held)} of {n} connects: {state['failure']}", label: result})
        else:
            emit({"ok": True, label: result})
        # Held until stdin closes; then the process goes, and its sockets with it.
        await command("")
    return 0


# --------------------------------------------------------------------------------------
# compression (the compression table; bench/README.md, "The compression table")
# --------------------------------------------------------------------------------------

COMPRESS_FORMATS = ("off", "lz4", "zstd", "snappy", "zlib")
COMPRESS_KINDS = ("sparse", "categorical", "random")


def _compression_of(fmt):
    return None if fmt == "off" else fmt


def make_compress_handler():
    """bulk counted (its data deserialized: decompressed, back to bytes), bulk-done replies;
    as compressionHandler in compression_protocol.ts."""
    from distributed.comm import CommClosedError

    async def handler(comm):
        nbytes = messages = 0
        try:
            while True:
                msg = await comm.read()
                op = msg.get("op") if type(msg) is dict else None
                if op == "bulk":
                    data = msg["data"]
                    if not isinstance(data, (bytes, bytearray, memoryview)):
                        raise TypeError(f"bulk data is not bytes: {type(data)}")
                    nbytes += len(data)
                    messages += 1
                elif op == "bulk-done":
                    await comm.write({"op": "bulk-done", "bytes": nbytes, "messages": messages})
                    nbytes = messages = 0
                else:
                    await comm.write(msg)
        except CommClosedError:
            pass
        except Exception:
            logger.exception("compress-server: error on connection from %s", comm.peer_address)
        finally:
            await comm.close()

    return handler


async def cmd_compress_server(args):
    """A listener per compression setting, each advertising it in its handshakes (Dask's
    ``Listener.on_connection`` takes ``handshake_overrides``; ``listen`` does not pass any,
    so each listener's is wrapped)."""
    import functools

    import_dask("none")
    from distributed.comm import listen

    listeners, addresses = [], {}
    for fmt in args.formats.split(","):
        listener = listen(f"tcp://{args.host}:0", make_compress_handler(), deserialize=True)
        listener.on_connection = functools.partial(
            type(listener).on_connection, listener, handshake_overrides={"compression": _compression_of(fmt)})
        await listener.start()
        listeners.append(listener)
        addresses[fmt] = listener.contact_address
    emit({"ready": True, "mode": "compress-server", "addresses": addresses, "pid": os.getpid()})
    try:
        await serve_until_done(args)
    finally:
        for listener in listeners:
            listener.stop()
    return 0


async def compress_send(comm, payload, max_count, max_seconds, negotiated):
    from distributed.protocol import to_serialize

    t_cpu = os.times()
    t0 = time.perf_counter()
    deadline = t0 + max_seconds
    count = 0
    while count < max_count:
        await comm.write({"op": "bulk", "data": to_serialize(payload)})
        count += 1
        if time.perf_counter() > deadline:
            break
    await comm.write({"op": "bulk-done"})
    reply = await comm.read()
    size = len(payload)
    if (not isinstance(reply, dict) or reply.get("op") != "bulk-done" or reply.get("bytes") != size * count
            or reply.get("messages") != count):
        raise BenchError(f"sent {count} x {size} B, server acked {reply!r}")
    seconds = time.perf_counter() - t0
    t_end = os.times()
    mib = size * count / MiB
    return {"messages": count, "MiB": mib, "MiBps": mib / seconds, "seconds": seconds, "negotiated": negotiated,
            "cpu_user_ms": (t_end.user - t_cpu.user) * 1000, "cpu_system_ms": (t_end.system - t_cpu.system) * 1000}


def compression_ratios(payloads, formats):
    """What each format makes of each payload (compressed / original), with Dask's own
    compressors: the table's ratio column."""
    from distributed.protocol.compression import compressions

    out = {}
    for kind, payload in payloads.items():
        for fmt in formats:
            if fmt != "off" and compressions.get(fmt, {}).get("compress"):
                out[f"{kind}_{fmt}"] = round(len(compressions[fmt]["compress"](payload)) / len(payload), 4)
    return out


async def cmd_compress_client(args):
    import_dask("none")
    from distributed.comm import connect

    label = args.label or "dask"
    formats = args.formats.split(",")
    kinds = args.kinds.split(",")
    addresses = dict(pair.split("=", 1) for pair in args.addresses.split(","))
    payloads = {}
    for kind in kinds:
        with open(os.path.join(args.payloads, f"{kind}.bin"), "rb") as f:
            payloads[kind] = f.read()
    comms = {}
    for fmt in formats:
        comm = await connect(addresses[fmt], timeout=10, deserialize=True,
                             handshake_overrides={"compression": _compression_of(fmt)})
        comms[fmt] = (comm, comm.handshake_options.get("compression"))
    max_count = max(1, int(args.total_mib * MiB // (16 * MiB)))
    phases = {}
    for kind in kinds:
        for fmt in formats:
            comm, negotiated = comms[fmt]
            phases[f"{kind}_{fmt}"] = functools.partial(
                compress_send, comm, payloads[kind], max_count, args.seconds, negotiated)
    try:
        if not args.no_warm_up:
            for kind in kinds:
                for fmt in formats:
                    comm, negotiated = comms[fmt]
                    await compress_send(comm, payloads[kind], 2, 10, negotiated)
        ratios = compression_ratios(payloads, formats)
        if args.stepped:
            emit({"warm": True, "pid": os.getpid(), "ratios": ratios})
            async for line in stdin_lines():
                words = line.split()
                if len(words) == 2 and words[0] == "phase":
                    if words[1] not in phases:
                        raise ValueError(f"unknown phase {words[1]!r} (one of {', '.join(phases)})")
                    emit({"ok": True, "phase": words[1], label: await phases[words[1]]()})
        else:
            raw = {}
            for _ in range(args.reps):
                for name, run in phases.items():
                    raw.setdefault(name, []).append(await run())
            emit({"ok": True, label: raw, "ratios": ratios})
    finally:
        for comm, _ in comms.values():
            await comm.close()
    return 0


# --------------------------------------------------------------------------------------
# command line
# --------------------------------------------------------------------------------------


def build_parser():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    sp = sub.add_parser("bench-server", help="bench server (protocol in bench/README.md)")
    add_common_options(sp, server=True)
    sp.add_argument("--transport", choices=["tcp", "tls", "ws", "wss"], default=None,
                    help="default: tls with --tls, else tcp (ws needs no --tls, wss needs it)")
    sp = sub.add_parser("bench-client", help="benchmark a bench server at ADDRESS")
    sp.add_argument("address")
    sp.add_argument("--label", default=None, help="output key (default: the address scheme)")
    add_common_options(sp, timeout=120.0)
    sp.add_argument("--reps", type=int, default=3)
    sp.add_argument("--trips", type=int, default=5000, help="max round trips per repetition")
    sp.add_argument("--trip-seconds", type=float, default=2.0, help="max seconds of round trips per rep")
    sp.add_argument("--pipelined", type=int, default=50_000, help="max pipelined messages per rep")
    sp.add_argument("--pipelined-seconds", type=float, default=1.5,
                    help="stop writing pipelined messages after this many seconds (checked every 1000)")
    sp.add_argument("--bulk-total-mib", type=int, default=1024,
                    help="max MiB sent per repetition and bulk phase (default 1024)")
    sp.add_argument("--bulk-seconds", type=float, default=1.5,
                    help="stop writing bulk messages after this many seconds")
    sp = sub.add_parser("rpc-server", help="distributed.core.Server with an echo handler on tcp://127.0.0.1:0")
    add_common_options(sp, tls=False, server=True)
    sp = sub.add_parser("rpc-client", help="rpc and ConnectionPool echo calls to an rpc server at ADDRESS")
    sp.add_argument("address")
    sp.add_argument("--label", default=None, help="output key (default: dask)")
    add_common_options(sp, tls=False, timeout=120.0)
    sp.add_argument("--reps", type=int, default=3)
    sp.add_argument("--calls", type=int, default=5000, help="max sequential calls per repetition")
    sp.add_argument("--call-seconds", type=float, default=2.0, help="max seconds of sequential calls per rep")
    sp.add_argument("--concurrent-calls", type=int, default=50_000, help="max concurrent-phase calls per rep")
    sp.add_argument("--concurrent-seconds", type=float, default=2.0,
                    help="callers stop starting calls after this many seconds")
    sp.add_argument("--concurrency", type=int, default=100, help="callers in flight")
    sp.add_argument("--pool-limit", type=int, default=None, help="the pool's limit (default: --concurrency)")
    sp.add_argument("--stepped", action="store_true", help="warm up, then one phase per stdin line 'phase NAME'")
    sp.add_argument("--only", default=None, help="comma-separated phases (without --stepped)")
    sp.add_argument("--no-warm-up", action="store_true")
    sp = sub.add_parser("conn-server", help="hold every comm accepted; 'mem N' on stdin: memory once N are open")
    add_common_options(sp, server=True)
    sp.add_argument("--transport", choices=["tcp", "tls", "ws", "wss"], default=None,
                    help="default: tls with --tls, else tcp")
    sp.add_argument("--tracemalloc", action="store_true", help="also report tracemalloc's traced memory (slower)")
    sp = sub.add_parser("conn-client", help="N sequential connects held open: connects/s, memory per comm")
    sp.add_argument("address")
    sp.add_argument("--label", default=None, help="output key (default: dask)")
    add_common_options(sp, timeout=300.0)
    sp.add_argument("--n", type=int, default=2000, help="connects held open")
    sp.add_argument("--warm-up", type=int, default=200, help="connects (each closed) before the baseline")
    sp.add_argument("--tracemalloc", action="store_true", help="also report tracemalloc's traced memory (slower)")
    sp = sub.add_parser("compress-server", help="a listener per compression setting (the compression table)")
    sp.add_argument("--formats", default="off,lz4", help="comma-separated: off, lz4, zstd, snappy, zlib")
    sp.add_argument("--host", default="127.0.0.1",
                    help="the address its listeners bind (another inside a shaped link's namespace)")
    sp.add_argument("-v", "--verbose", action="store_true", help="debug logging to stderr")
    sp.add_argument("--lifetime", type=float, default=300.0, help="exit after this many seconds at the latest")
    sp.add_argument("--no-stdin-watch", action="store_true", help="do not exit when stdin reaches EOF")
    sp = sub.add_parser("compress-client", help="16 MiB to_serialize payloads, one way, per kind and compression")
    sp.add_argument("--addresses", required=True, help="FORMAT=ADDRESS,... as compress-server printed them")
    sp.add_argument("--payloads", required=True, help="the folder of sparse.bin, categorical.bin, random.bin")
    sp.add_argument("--formats", default="off,lz4")
    sp.add_argument("--kinds", default=",".join(COMPRESS_KINDS))
    sp.add_argument("--label", default=None, help="output key (default: dask)")
    sp.add_argument("--total-mib", type=float, default=256, help="max MiB of payload per phase")
    sp.add_argument("--seconds", type=float, default=1.5, help="stop sending after this many seconds")
    sp.add_argument("--reps", type=int, default=1)
    sp.add_argument("--stepped", action="store_true", help="warm up, then one phase per stdin line 'phase NAME'")
    sp.add_argument("--no-warm-up", action="store_true")
    sp.add_argument("-v", "--verbose", action="store_true", help="debug logging to stderr")
    sp.add_argument("--timeout", type=float, default=300.0, help="hard deadline for the whole command")
    return p


COMMANDS = {
    "bench-server": cmd_bench_server,
    "bench-client": cmd_bench_client,
    "rpc-server": cmd_rpc_server,
    "rpc-client": cmd_rpc_client,
    "conn-server": cmd_conn_server,
    "conn-client": cmd_conn_client,
    "compress-server": cmd_compress_server,
    "compress-client": cmd_compress_client,
}


if __name__ == "__main__":
    run_command(build_parser().parse_args(), COMMANDS, name="dask_side")
