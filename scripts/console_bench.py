#!/usr/bin/env python3
"""Times the console's pages against a running tenure: each page N times in a row over one
keep-alive connection, signed in with a token; prints p50, p99 and max (ms, as the client saw
them on loopback: the server's time plus the connection's) and the HTML's size.

    scripts/console_bench.py URL TOKEN PERSON RUN [N]

Used by scripts/console_bench.sh, which seeds the data first.
"""

import http.client
import statistics
import sys
import time
import urllib.parse


def main() -> None:
    url, token, person, run = sys.argv[1:5]
    n = int(sys.argv[5]) if len(sys.argv) > 5 else 200
    u = urllib.parse.urlparse(url)
    c = http.client.HTTPConnection(u.hostname, u.port)
    body = urllib.parse.urlencode({"token": token, "next": "/console"})
    c.request("POST", "/console/sign-in", body,
              {"content-type": "application/x-www-form-urlencoded"})
    r = c.getresponse()
    r.read()
    cookie = r.getheader("set-cookie", "").split(";")[0]
    if r.status != 303 or not cookie:
        sys.exit(f"sign-in failed: {r.status}")
    pages = [
        ("home", "/console"),
        ("catalog", "/console/request"),
        ("approvals", "/console/approvals"),
        ("people", "/console/people"),
        ("people, page 1000", f"/console/people?after={person}"),
        ("people by status", "/console/people?status=active"),
        ("people by name (q=)", "/console/people?q=lovelace"),
        ("people, q= no match", "/console/people?q=nobody-is-called-this"),
        ("person", f"/console/people/{person}"),
        ("runs", "/console/runs"),
        ("runs of a person", f"/console/runs?person={person}"),
        ("run", f"/console/runs/{run}"),
        ("systems", "/console/systems"),
        ("findings", "/console/findings"),
        ("dashboard", "/console/dashboard"),
        ("tasks", "/console/tasks"),
        ("audit", "/console/audit"),
        ("audit of a person", f"/console/audit?person={person}"),
    ]
    print(f"{'page':<22} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8} {'KiB':>7}  status")
    for name, path in pages:
        times, size, status = [], 0, 0
        # Fewer rounds for a page that takes long: the figure, not the wait, is the point.
        rounds = n
        for i in range(rounds):
            t = time.perf_counter()
            c.request("GET", path, headers={"cookie": cookie})
            r = c.getresponse()
            data = r.read()
            times.append((time.perf_counter() - t) * 1000)
            size, status = len(data), r.status
            if i == 2 and statistics.median(times) > 500:
                break
        times.sort()
        p99 = times[min(len(times) - 1, int(len(times) * 0.99))]
        print(f"{name:<22} {statistics.median(times):8.2f} {p99:8.2f} {times[-1]:8.2f} "
              f"{size / 1024:7.1f}  {status} ({len(times)} requests)")


if __name__ == "__main__":
    main()
