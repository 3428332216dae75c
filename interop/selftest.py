#!/usr/bin/python3
"""Self-test of dask_peer.py: every subcommand, Python <-> Python, over tcp, tls, ws and wss.

    npm run build && /usr/bin/python3 interop/selftest.py

Spawns servers the way a Node test does (stdin a pipe, first stdout line = ready JSON),
runs the clients, checks exit codes and JSON lines, and checks that servers exit when
their stdin is closed.  Exit 0 if all checks pass.  The certificates come from rxcomm's
one generator, createTestCertificates() in the built dist/testing (hence the build).
"""

import json
import shutil
import os
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
PEER = os.path.join(HERE, "dask_peer.py")
TESTING = os.path.join(HERE, "..", "dist", "testing")
PY = "/usr/bin/python3"
failures = []


def check(cond, what):
    print(("PASS " if cond else "FAIL ") + what, flush=True)
    if not cond:
        failures.append(what)


def start_server(*argv):
    p = subprocess.Popen([PY, PEER, *argv], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    box = {}
    t = threading.Thread(target=lambda: box.update(line=p.stdout.readline()), daemon=True)
    t.start()
    t.join(30)
    ready = json.loads(box.get("line") or "{}")
    check(ready.get("ready") is True and "://" in ready.get("address", ""), f"{argv}: ready line {ready}")
    return p, ready


def stop_server(p, what):
    t0 = time.time()
    p.stdin.close()
    try:
        rc = p.wait(15)
    except subprocess.TimeoutExpired:
        p.kill()
        rc = "killed"
    err = p.stderr.read()
    check(rc == 0, f"{what}: exits 0 after stdin closed (rc={rc}, {time.time() - t0:.2f} s)")
    if rc != 0:
        print(err[-3000:])
    return err


def run_client(*argv, timeout=150):
    t0 = time.time()
    r = subprocess.run([PY, PEER, *argv], capture_output=True, text=True, timeout=timeout)
    lines = [json.loads(l) for l in r.stdout.splitlines() if l.strip()]
    return r.returncode, lines, r.stderr, time.time() - t0


def make_certs():
    """{"dir", "ca", "server", "client", ...} from rxcomm/testing's createTestCertificates()."""
    script = ("require(process.argv[1]).createTestCertificates()"
              ".then((c) => process.stdout.write(JSON.stringify(c)))")
    r = subprocess.run(["node", "-e", script, os.path.abspath(TESTING)], capture_output=True, text=True, timeout=120)
    if r.returncode != 0:
        sys.exit(f"cannot make certificates (run npm run build first?): {r.stderr[-1000:]}")
    return json.loads(r.stdout)


def main():
    certs = make_certs()
    ca = certs["ca"]["certFile"]
    # Servers present the server certificate, clients the client one: mutual TLS, one CA.
    tls_server = ["--tls", ca, certs["server"]["certFile"], certs["server"]["keyFile"]]
    tls = ["--tls", ca, certs["client"]["certFile"], certs["client"]["keyFile"]]

    # (label, client args, server args): the client's scheme comes from the address
    for label, t, ts in (("tcp", [], []), ("tls", tls, tls_server),
                         ("ws", [], ["--ws"]), ("wss", tls, ["--ws", *tls_server])):
        # scheduler + identity
        p, ready = start_server("scheduler", *ts)
        address, advertised = ready.get("address", ""), ready.get("advertised", "")
        port = address.rsplit(":", 1)[-1]
        check(address.startswith(label + "://127.0.0.1:"), f"scheduler {label}: dial address {address}")
        check(advertised.startswith(label + "://") and advertised.rsplit(":", 1)[-1] == port,
              f"scheduler {label}: advertised {advertised}, same port")
        rc, lines, err, dt = run_client("identity", address, *t)
        check(rc == 0 and lines and lines[-1].get("type") == "Scheduler", f"identity vs scheduler {label}: {lines}")
        if lines:
            check(lines[-1].get("address") == advertised, f"identity {label}: the reply's address is the advertised one")
            keys = (lines[-1].get("extra_info") or {}).get("keys")
            want = ["cipher", "peercert"] if label in ("tls", "wss") else []
            check(keys == want, f"identity {label}: client extra_info keys {keys} == {want}")
        stop_server(p, f"scheduler {label}")

        for deser in ("true", "false"):
            p, ready = start_server("echo-listen", "--deserialize", deser, *ts)
            rc, lines, err, dt = run_client("roundtrip", ready["address"], *t)
            summary = lines[-1] if lines else {}
            check(rc == 0 and summary.get("summary") and summary.get("failed") == 0,
                  f"roundtrip {label} deserialize={deser}: {summary} ({dt:.1f} s)")
            for l in lines:
                if not l.get("ok"):
                    print("   ", l)
            rc, lines, err, dt = run_client("serialized-roundtrip", ready["address"], *t)
            summary = lines[-1] if lines else {}
            check(rc == 0 and summary.get("failed") == 0,
                  f"serialized-roundtrip {label} deserialize={deser}: {summary} ({dt:.1f} s)")
            for l in lines:
                if not l.get("ok"):
                    print("   ", l)
            rc, lines, err, dt = run_client("identity", ready["address"], *t)
            check(rc == 1 and lines and lines[-1]["ok"] is False,
                  f"identity vs echo {label} fails cleanly (the echo has no 'type'): rc={rc}")
            stop_server(p, f"echo-listen {label} deserialize={deser}")

        # rpc-server + rpc-client (rpc and ConnectionPool) + batched-send
        p, ready = start_server("rpc-server", *ts)
        calls = [{"op": "identity"}, {"op": "echo", "args": {"data": [1, "a"]}, "expect": [1, "a"]},
                 {"op": "fail", "args": {"message": "boom xyz"}, "raises": "boom xyz"},
                 {"op": "no_such_op", "expect": None}]
        rc, lines, err, dt = run_client("rpc-client", ready["address"], "--calls", json.dumps(calls), *t)
        check(rc == 0 and len(lines) == 5 and lines[-1].get("passed") == 4, f"rpc-client {label}: {lines[-1] if lines else None}")
        check(bool(lines) and lines[0].get("result", {}).get("type") == "InteropServer", f"rpc-client {label}: identity")
        pooled = [{"op": "sleep_echo", "args": {"data": "x", "delay": 0.001}, "expect": "x"}]
        rc, lines, err, dt = run_client("rpc-client", ready["address"], "--pool", "4", "--repeat", "50",
                                        "--calls", json.dumps(pooled), *t)
        summary = lines[-1] if lines else {}
        check(rc == 0 and summary.get("passed") == 50 and summary.get("pool", {}).get("max_open", 99) <= 4,
              f"rpc-client --pool 4 {label}: {summary}")
        rc, lines, err, dt = run_client("batched-send", ready["address"], "--count", "300", *t)
        check(rc == 0 and lines and (lines[-1].get("ack") or {}).get("count") == 300,
              f"batched-send {label}: {lines[-1] if lines else None}")
        rc, lines, err, dt = run_client("rpc-client", ready["address"], "--calls", json.dumps([{"op": "streams"}]), *t)
        streams = (lines[0].get("result") if lines else None) or []
        check(rc == 0 and len(streams) == 1 and streams[0]["items"] == list(range(300)),
              f"rpc-server {label}: the stream's 300 items, in order")
        stop_server(p, f"rpc-server {label}")


    # wrong transport: plain client against a TLS echo server must fail cleanly
    p, ready = start_server("echo-listen", *tls_server)
    rc, lines, err, dt = run_client("roundtrip", ready["address"].replace("tls://", "tcp://"),
                                    "--only", "nil", "--timeout", "30")
    check(rc == 1 and lines and not lines[-1]["ok"], f"tcp client vs tls server fails (rc={rc}, {dt:.1f} s)")
    stop_server(p, "echo-listen tls (negative)")

    # client deadline: connect to a port nobody listens on
    rc, lines, err, dt = run_client("identity", "tcp://127.0.0.1:9", "--timeout", "5")
    check(rc == 1 and lines and lines[-1]["ok"] is False and dt < 15, f"identity to closed port fails: {lines} ({dt:.1f} s)")

    # lifetime
    p = subprocess.Popen([PY, PEER, "echo-listen", "--lifetime", "3"], stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        rc = p.wait(20)
    except subprocess.TimeoutExpired:
        p.kill()
        rc = "killed"
    check(rc == 0, f"echo-listen --lifetime 3 exits by itself (rc={rc})")

    shutil.rmtree(certs["dir"], ignore_errors=True)
    print(f"\n{len(failures)} failure(s)")
    for f in failures:
        print("  -", f)
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
