#!/usr/bin/env python3
"""Abuse checks of a mirrorgate binary: the attacks that once broke it, rerun.

    python3 benches/abuse.py BIN [CHECK ...]        (benches/abuse.sh builds BIN)

Each check starts its own fake mirrors and its own `mirrorgate serve` on
127.0.0.1, attacks it, prints what it measured and PASS or FAIL, and stops
everything it started. Nothing leaves loopback; every loop is bounded in count
and time. The exit status is the number of failed checks (0: all held).

Checks (all by default, or the ones named):
  slow-readers    proxy mode: max_connections clients ask for a large file and
                  never read; a later client must still be served, and the
                  readers' connections must be closed after limits.send_timeout.
  pipeline        redirect mode: one connection pipelines 20,000 GETs and never
                  reads; it must be closed after limits.send_timeout.
  slowloris       both listeners: 200 connections each drip one byte a second;
                  all must be closed after their header timeout, and an honest
                  request is answered meanwhile; a 400 KB Authorization header to
                  the admin listener gets 431.
  descriptors     under `ulimit -n 256`, 400 idle connections and more arriving
                  while mirrors are probed every 300 ms: the mirrors must stay
                  up, the admin API must answer, and after the flood a client
                  is redirected to a mirror, not to the fallback.
  foreign-redirect  proxy mode: a mirror answers with a redirect to the admin
                  listener or to another host; the client must never get the
                  admin API's JSON nor a foreign Location.
  list-flood      5,000 mirrors: 16 connections ask for ?json and ?meta4 without
                  pause; redirects must keep at least a fifth of their rate.
"""

import http.client
import json
import os
import resource
import socket
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CITY = os.path.join(ROOT, "geoip", "demo-city.mmdb")
ASN = os.path.join(ROOT, "geoip", "demo-asn.mmdb")
TOKEN = "abuse-check-token-0123456789"
DE = "192.0.2.1"  # the demo database places it in Frankfurt
BIG = 1 << 30  # the large file: far more than any socket buffer holds


def say(msg):
    print(f"    {msg}", flush=True)


# --- fake mirrors -------------------------------------------------------------


class Mirror(BaseHTTPRequestHandler):
    """Answers every probe with 200; /pub/big.bin is a 1 GiB stream of zeros,
    /pub/small.txt a short body; with `redirect_to` set, file requests get a
    302 to it instead."""

    protocol_version = "HTTP/1.1"
    redirect_to = None  # set per server class

    def log_message(self, *_):
        pass

    def _file(self, body):
        name = self.path.split("?")[0].rsplit("/", 1)[-1]
        if self.redirect_to and name.endswith((".bin", ".txt", ".iso")):
            self.send_response(302)
            self.send_header("Location", self.redirect_to)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if name == "big.bin":
            self.send_response(200)
            self.send_header("Content-Length", str(BIG))
            self.end_headers()
            if body:
                chunk = bytes(256 * 1024)
                try:
                    for _ in range(BIG // len(chunk)):
                        self.wfile.write(chunk)
                except OSError:
                    pass
            return
        data = b"hello from a mirror\n"
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if body:
            self.wfile.write(data)

    def do_HEAD(self):
        # Probes use HEAD: each on a new connection, as a mirror that closes
        # after every answer makes them, so that a probe needs a descriptor.
        self.close_connection = True
        self._file(False)

    def do_GET(self):
        self._file(True)


def start_mirror(redirect_to=None):
    cls = type("M", (Mirror,), {"redirect_to": redirect_to})
    # A listen queue of 5 (the default) would make some of many concurrent
    # upstream connections wait for SYN retries, seconds late.
    server = type("S", (ThreadingHTTPServer,), {"request_queue_size": 1024})
    srv = server(("127.0.0.1", 0), cls)
    srv.daemon_threads = True
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv, f"http://127.0.0.1:{srv.server_address[1]}/pub/"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --- mirrorgate ---------------------------------------------------------------


class Gate:
    """One `mirrorgate serve` with the given config body; stopped on exit."""

    def __init__(self, bin_path, body, nofile=None, ports=None, admin=""):
        self.port, self.admin_port = ports or (free_port(), free_port())
        self.dir = tempfile.mkdtemp(prefix="mirrorgate-abuse.")
        self.config = os.path.join(self.dir, "mirrorgate.yaml")
        with open(self.config, "w") as f:
            f.write(
                f"listen: 127.0.0.1:{self.port}\n"
                f"admin_listen: 127.0.0.1:{self.admin_port}\n"
                f"geoip: {{city: {CITY}, asn: {ASN}}}\n"
                "trusted_proxies: [127.0.0.0/8]\n"
                f"admin: {{token: {TOKEN}, {admin}}}\n" + body
            )
        self.log = open(os.path.join(self.dir, "log"), "w")

        def limit():
            if nofile:
                resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))

        self.proc = subprocess.Popen(
            [bin_path, "serve", "--config", self.config],
            stdout=self.log,
            stderr=subprocess.STDOUT,
            preexec_fn=limit,
        )
        deadline = time.monotonic() + 60
        while self.get_status("/readyz", admin=True) != 200:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"mirrorgate did not get ready; log: {self.log.name}")
            time.sleep(0.1)

    def __enter__(self):
        return self

    def __exit__(self, *_):
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()

    def request(self, path, admin=False, method="GET", headers=None, timeout=10):
        port = self.admin_port if admin else self.port
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
        try:
            c.request(method, path, headers={"X-Forwarded-For": DE, **(headers or {})})
            r = c.getresponse()
            return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
        finally:
            c.close()

    def get_status(self, path, admin=False):
        try:
            return self.request(path, admin=admin, timeout=2)[0]
        except OSError:
            return None

    def mirrors(self):
        return json.loads(self.request("/api/v1/mirrors", admin=True)[2])["mirrors"]

    def probes_done(self, result=None):
        """Probes made so far with that result, or with any (from /metrics)."""
        text = self.request("/metrics", admin=True)[2].decode()
        return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                   if line.startswith("mirrorgate_probes_total{")
                   and (result is None or f'result="{result}"' in line))

    def probe_round(self):
        """Asks for a probe round and waits until every mirror was probed again."""
        mirrors = len(self.mirrors())
        before = self.probes_done()
        self.request("/api/v1/probe", admin=True, method="POST",
                     headers={"Authorization": f"Bearer {TOKEN}"})
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.probes_done() >= before + mirrors:
                return
            time.sleep(0.1)
        raise RuntimeError("a probe round did not finish within 30 s")


def mirror_yaml(name, url, country="DE", lat=50.11, lon=8.68):
    return (f"  - {{name: {name}, url: \"{url}\", country: {country}, "
            f"latitude: {lat}, longitude: {lon}}}\n")


def closed_within(sock, seconds):
    """Reads (and drops) whatever the server sends until it closes the
    connection; True when it did within `seconds`."""
    deadline = time.monotonic() + seconds
    sock.setblocking(True)
    while time.monotonic() < deadline:
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            if not sock.recv(1 << 20):
                return True
        except socket.timeout:
            return False
        except OSError:  # reset: closed too
            return True
    return False


def connect(port, rcvbuf=None, timeout=10):
    s = socket.socket()
    if rcvbuf:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    s.settimeout(timeout)
    s.connect(("127.0.0.1", port))
    s.settimeout(None)
    return s


# --- the checks -----------------------------------------------------------------


def slow_readers(bin_path):
    srv, url = start_mirror()
    body = ("mode: proxy\nlimits: {max_connections: 40, send_timeout: 2s}\n"
            "health: {interval: 1h, timeout: 2s}\nmirrors:\n" + mirror_yaml("m", url))
    with Gate(bin_path, body) as g:
        readers = []
        for _ in range(40):
            s = connect(g.port, rcvbuf=4096)
            s.sendall(f"GET /big.bin HTTP/1.1\r\nHost: x\r\nX-Forwarded-For: {DE}\r\n\r\n".encode())
            readers.append(s)
        t0 = time.monotonic()
        status = None
        try:
            status = g.request("/small.txt", timeout=15)[0]
        except OSError as e:
            say(f"the client after the readers failed: {e}")
        waited = time.monotonic() - t0
        say(f"a client after 40 non-reading clients: {status} after {waited:.1f} s (send_timeout 2 s)")
        # Go on not reading well past the send timeout (a mirror may have been
        # slow to start some of the streams), then drain each connection: a
        # closed one ends in EOF at once, an open one keeps streaming.
        time.sleep(4)
        closed = sum(closed_within(s, 8) for s in readers)
        say(f"non-reading connections closed by the server: {closed} of {len(readers)}")
        for s in readers:
            s.close()
    srv.shutdown()
    return status == 200 and closed == len(readers)


def pipeline(bin_path):
    srv, url = start_mirror()
    body = ("limits: {send_timeout: 2s}\nhealth: {interval: 1h, timeout: 2s}\nmirrors:\n"
            + mirror_yaml("m", url))
    with Gate(bin_path, body) as g:
        s = connect(g.port, rcvbuf=4096)
        req = f"GET /f.iso HTTP/1.1\r\nHost: x\r\nX-Forwarded-For: {DE}\r\n\r\n".encode()
        s.settimeout(10)
        sent = 0
        t0 = time.monotonic()
        try:
            while sent < 20_000 and time.monotonic() - t0 < 10:
                s.sendall(req * 100)
                sent += 100
        except OSError:
            pass
        say(f"pipelined {sent} requests without reading in {time.monotonic() - t0:.1f} s")
        time.sleep(3)  # the attack itself: not reading for longer than send_timeout
        closed = closed_within(s, 5)
        say(f"connection closed by the server: {closed}")
        s.close()
    srv.shutdown()
    return closed


def slowloris(bin_path):
    srv, url = start_mirror()
    body = ("limits: {header_timeout: 2s}\n"
            "health: {interval: 1h, timeout: 2s}\nmirrors:\n" + mirror_yaml("m", url))
    ok = True
    with Gate(bin_path, body, admin="header_timeout: 2s") as g:
        # The admin listener serves admin.max_connections (64) at once and
        # the rest wait to be accepted: 200 drippers leave in about four
        # rounds of its header timeout, and an honest request waits its turn.
        for name, port, wait in (("public", g.port, 6), ("admin", g.admin_port, 12)):
            conns = []
            for _ in range(200):
                try:
                    s = connect(port)
                    s.sendall(b"G")
                    conns.append(s)
                except OSError:
                    break
            t0 = time.monotonic()
            honest = [None, None]

            def ask():
                try:
                    honest[0] = g.request("/f.iso" if name == "public" else "/livez",
                                          admin=name == "admin", timeout=wait)[0]
                except OSError as e:
                    honest[0] = f"error {e}"
                honest[1] = time.monotonic() - t0

            asker = threading.Thread(target=ask)
            asker.start()
            while time.monotonic() < t0 + wait:
                for s in conns:
                    try:
                        s.send(b"E")
                    except OSError:
                        pass
                time.sleep(1)
            asker.join()
            closed = sum(closed_within(s, 1) for s in conns)
            say(f"{name}: {len(conns)} connections dripping a byte a second, {closed} closed "
                f"within {wait} s (header timeout 2 s); an honest request meanwhile got "
                f"{honest[0]} after {honest[1]:.1f} s")
            ok &= closed == len(conns) and honest[0] in (200, 302)
            for s in conns:
                s.close()
        try:
            status = g.request("/api/v1/status", admin=True,
                               headers={"Authorization": "Bearer " + "x" * 400_000})[0]
        except OSError as e:
            status = f"error {e}"
        say(f"admin: a 400 KB Authorization header got {status}")
        ok &= status == 431
    srv.shutdown()
    return ok


def descriptors(bin_path):
    srv, url = start_mirror()
    srv2, url2 = start_mirror()
    body = ("limits: {header_timeout: 60s, max_connections: 10000}\n"
            "fallback: https://fallback.invalid/\n"
            "health: {interval: 300ms, timeout: 250ms, rise: 1, fall: 2}\nmirrors:\n"
            + mirror_yaml("a", url) + mirror_yaml("b", url2))
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 4096)), hard))
    ok = True
    with Gate(bin_path, body, nofile=256) as g:
        before = g.probes_done()
        conns, stop = [], threading.Event()

        def flood():
            # 400 at once, then one more every 10 ms while the probes run,
            # so that a descriptor freed anywhere is wanted by accept too.
            while not stop.is_set() and len(conns) < 900:
                try:
                    s = connect(g.port, timeout=1)
                    s.sendall(b"GET / HTTP/1.1\r\n")
                    conns.append(s)
                except OSError:
                    pass
                if len(conns) >= 400:
                    time.sleep(0.01)

        flooder = threading.Thread(target=flood)
        flooder.start()
        while len(conns) < 400 and flooder.is_alive():
            time.sleep(0.05)
        time.sleep(3)  # ten probe intervals under the flood
        try:
            probes = f"{g.probes_done() - before:.0f}"
            states = {m["name"]: m["state"] for m in g.mirrors()}
        except OSError as e:
            probes, states = "unknown", {"admin listener": f"unreachable: {e}"}
        stop.set()
        flooder.join()
        say(f"{len(conns)} idle connections against a limit of 256 descriptors; "
            f"probes made meanwhile: {probes}; mirror states: {states}")
        ok &= bool(states) and all(v == "up" for v in states.values())
        for s in conns:
            s.close()
        deadline = time.monotonic() + 10
        loc, answer = None, None
        while time.monotonic() < deadline:
            try:
                status, headers, _ = g.request("/f.iso", timeout=2)
                loc, answer = headers.get("location"), status
                break
            except OSError as e:
                answer = e
                time.sleep(0.1)
        say(f"after the flood a client gets {answer}, sent to {loc}")
        ok &= bool(loc) and loc.startswith("http://127.0.0.1:")
    srv.shutdown()
    srv2.shutdown()
    return ok


def foreign_redirect(bin_path):
    ok = True
    for follow in (3, 0):
        port, admin_port = free_port(), free_port()
        bad, bad_url = start_mirror(redirect_to=f"http://127.0.0.1:{admin_port}/api/v1/mirrors")
        evil, evil_url = start_mirror(redirect_to="http://evil.invalid/pwn")
        good, good_url = start_mirror()
        body = (f"mode: proxy\nproxy: {{follow_redirects: {follow}}}\n"
                "health: {interval: 1h, timeout: 2s}\nmirrors:\n"
                + mirror_yaml("bad", bad_url) + mirror_yaml("evil", evil_url, lat=50.2)
                + mirror_yaml("good", good_url, country="US", lat=40.71, lon=-74.01))
        # the admin port is the one the bad mirror points at
        with Gate(bin_path, body, ports=(port, admin_port)) as g:
            answers = []
            for _ in range(20):
                status, headers, data = g.request("/small.txt")
                answers.append((status, headers.get("location"), data[:40]))
            leaked = [a for a in answers if b"mirrors" in a[2] or (a[1] or "").find(".invalid") >= 0
                      or str(admin_port) in (a[1] or "")]
            served = sum(a[0] == 200 and a[2].startswith(b"hello") for a in answers)
            seen = sorted({(a[0], a[1]) for a in answers}, key=str)
            say(f"follow_redirects {follow}: 20 requests, {served} served from the good mirror, "
                f"{len(leaked)} leaked the admin API or a foreign Location; answers: {seen}")
            ok &= not leaked and served == 20
        for s in (bad, evil, good):
            s.shutdown()
    return ok


def list_flood(bin_path):
    srv, url = start_mirror()
    base = url[: -len("pub/")]
    lines = []
    for i in range(5000):
        lat = -60 + (i * 7919 % 12000) / 100
        lon = -180 + (i * 104729 % 36000) / 100
        lines.append(f"  - {{name: m{i}, url: \"{base}m{i}/\", latitude: {lat:.2f}, longitude: {lon:.2f}}}\n")
    body = "health: {interval: 1h, timeout: 5s}\nmirrors:\n" + "".join(lines)
    with Gate(bin_path, body) as g:
        def redirect_rate(seconds):
            n = 0
            c = http.client.HTTPConnection("127.0.0.1", g.port, timeout=10)
            end = time.monotonic() + seconds
            while time.monotonic() < end:
                c.request("GET", "/f.iso", headers={"X-Forwarded-For": DE})
                r = c.getresponse()
                r.read()
                n += r.status == 302
            c.close()
            return n / seconds

        quiet = redirect_rate(3)
        stop = threading.Event()
        lists = [0]

        def flood(query):
            c = http.client.HTTPConnection("127.0.0.1", g.port, timeout=30)
            while not stop.is_set():
                c.request("GET", f"/f.iso?{query}", headers={"X-Forwarded-For": DE})
                c.getresponse().read()
                lists[0] += 1
            c.close()

        threads = [threading.Thread(target=flood, args=("json" if i % 2 else "meta4",))
                   for i in range(16)]
        for t in threads:
            t.start()
        busy = redirect_rate(5)
        stop.set()
        for t in threads:
            t.join(30)
        say(f"5,000 mirrors: redirects {quiet:.0f}/s alone, {busy:.0f}/s beside 16 list "
            f"floods ({lists[0] / 5:.0f} lists/s): ratio {busy / max(quiet, 1):.2f}")
    srv.shutdown()
    return busy >= quiet / 5


CHECKS = {
    "slow-readers": slow_readers,
    "pipeline": pipeline,
    "slowloris": slowloris,
    "descriptors": descriptors,
    "foreign-redirect": foreign_redirect,
    "list-flood": list_flood,
}


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    bin_path, names = sys.argv[1], sys.argv[2:] or list(CHECKS)
    failed = 0
    for name in names:
        if name not in CHECKS:
            sys.exit(f"no check named {name!r}; the checks: {', '.join(CHECKS)}")
        print(f"==> {name}", flush=True)
        try:
            ok = CHECKS[name](bin_path)
        except Exception as e:  # a check that cannot run has failed
            say(f"error: {e}")
            ok = False
        print(f"{'PASS' if ok else 'FAIL'} {name}", flush=True)
        failed += not ok
    print(f"{len(names) - failed} passed, {failed} failed")
    sys.exit(failed)


if __name__ == "__main__":
    main()
