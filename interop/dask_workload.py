#!/usr/bin/python3
"""dask_workload.py -- a real Dask cluster and a real Dask Client's workload, for the specs
that put something between them (spec/cli/bridge-spec.ts: `rxcomm bridge`).

Run it with Debian's interpreter: ``/usr/bin/python3 interop/dask_workload.py ...``. It
speaks the JSON-line protocol of dask_peer.py (whose helpers it imports):

  cluster          [--tls CA CERT KEY]   a Scheduler with one Worker (1 thread), both on
                   127.0.0.1; prints {"ready": true, "address": <scheduler>, "id": ...} and
                   serves until stdin closes, SIGTERM/SIGINT, or --lifetime.
  client-workload  ADDRESS [--tls CA CERT KEY]   a distributed.Client on ADDRESS (the
                   cluster's scheduler, or something relaying to it) that runs tasks,
                   scatters and gathers data through the scheduler, and checks every
                   result: one {"ok": ..., "step": ...} line per step, then a summary line;
                   exit 0 when every step passed.

The client never talks to the worker directly (scatter and gather go through the
scheduler, as they do by default for a client outside the cluster's network), so all of
its traffic crosses whatever sits at ADDRESS.
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from dask_peer import (  # noqa: E402
    add_common_options,
    emit,
    import_dask,
    make_security,
    protocol_name,
    run_command,
    serve_until_done,
)


async def cmd_cluster(args):
    import_dask(args.compression)
    from distributed import Scheduler, Worker

    sec = make_security(args.tls)
    async with Scheduler(host="127.0.0.1", port=0, protocol=protocol_name(args.tls), security=sec,
                         dashboard_address="127.0.0.1:0") as s:
        async with Worker(s.address, nthreads=1, host="127.0.0.1", security=sec, dashboard=False) as w:
            emit({"ready": True, "mode": "cluster", "address": s.address, "worker": w.address,
                  "id": s.id, "pid": os.getpid()})
            await serve_until_done(args)
    return 0


def square(i):
    return i * i


def chain(x):
    return x + 1


async def cmd_client_workload(args):
    import_dask(args.compression)
    from distributed import Client

    passed = []

    def step(name, got, want):
        ok = got == want
        passed.append(ok)
        emit({"ok": ok, "step": name, **({} if ok else {"got": repr(got)[:200], "want": repr(want)[:200]})})

    async with Client(args.address, security=make_security(args.tls), asynchronous=True, timeout=30) as c:
        info = c.scheduler_info()  # kept up to date by the client, no call
        step("scheduler_info sees one worker", len(info["workers"]), 1)
        step("a task (pickled function)", await c.submit(square, 12), 144)
        step("map and gather", sum(await c.gather(c.map(square, range(50)))), sum(i * i for i in range(50)))
        future = c.submit(chain, 0)
        for _ in range(20):
            future = c.submit(chain, future)
        step("a chain of 21 dependent tasks", await future, 21)
        [blob] = await c.scatter([b"x" * (8 << 20)])
        step("scatter 8 MiB, len() on the worker", await c.submit(len, blob), 8 << 20)
        back = await c.gather(c.submit(bytes, 4 << 20))
        step("gather 4 MiB made on the worker", (len(back), back[:4]), (4 << 20, b"\0\0\0\0"))
        await c.log_event("rxcomm-bridge", {"from": "client-workload"})
        events = await c.get_events("rxcomm-bridge")
        step("log_event and get_events", [msg for _, msg in events][-1:], [{"from": "client-workload"}])
    emit({"summary": True, "ok": all(passed), "steps": len(passed)})
    return 0 if all(passed) else 1


COMMANDS = {"cluster": cmd_cluster, "client-workload": cmd_client_workload}


def build_parser():
    import argparse

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    sp = sub.add_parser("cluster", help="a Scheduler with one Worker")
    add_common_options(sp, server=True)
    sp = sub.add_parser("client-workload", help="a Client's workload through ADDRESS, each step checked")
    sp.add_argument("address")
    add_common_options(sp, timeout=120.0)
    return p


if __name__ == "__main__":
    run_command(build_parser().parse_args(), COMMANDS, name="dask_workload")
