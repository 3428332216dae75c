#!/usr/bin/python3
"""dask_side.py -- the Dask side of ``npm run bench``: the bench server and client with
Dask's own comm (``distributed.comm`` over tcp, tls, ws or wss), as bench/run.ts spawns
them.

    /usr/bin/python3 bench/sides/dask_side.py bench-server [--transport tcp|tls|ws|wss] [--tls CA CERT KEY]
    /usr/bin/python3 bench/sides/dask_side.py bench-client ADDRESS [--tls CA CERT KEY]
        [--label L] [--reps 3] [--trips 5000] [--trip-seconds 2] [--pipelined 50000]
        [--pipelined-seconds 1.5] [--bulk-total-mib 256] [--bulk-seconds 1.5] [--timeout 120]

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

What it shares with the interop peer (connect/listen with ``--tls``, the server's life
cycle, JSON lines, the command runner) is imported from interop/dask_peer.py rather than
copied.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "interop"))

from dask_peer import (  # noqa: E402  (after the sys.path entry it needs)
    MiB,
    add_common_options,
    dask_connect,
    dask_listen,
    emit,
    import_dask,
    logger,
    loopback_address,
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
    sp.add_argument("--bulk-total-mib", type=int, default=256,
                    help="max MiB sent per repetition and bulk phase (default 256)")
    sp.add_argument("--bulk-seconds", type=float, default=1.5,
                    help="stop writing bulk messages after this many seconds")
    return p


if __name__ == "__main__":
    run_command(build_parser().parse_args(), {"bench-server": cmd_bench_server, "bench-client": cmd_bench_client},
                name="dask_side")
