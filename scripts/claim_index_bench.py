#!/usr/bin/env python3
"""How long the dispatcher's "when is the next step due" read takes as the queue grows.

Builds the steps table's claim index as migration 1 does (ordered by priority, then
available_at, over pending ready steps) in an in-memory SQLite database, fills it with N
waiting steps of both priorities, and times the read two ways: MIN(available_at) over the
whole index (what tenure did before e6fa9a3), and the earlier of each priority's first entry
(what `tenure_store::next_step_available` does now). Prints each plan and its mean time.

    python3 scripts/claim_index_bench.py [N=200000]
"""
import random
import sqlite3
import sys
import time

n = int(sys.argv[1]) if len(sys.argv) > 1 else 200_000
db = sqlite3.connect(":memory:")
db.execute(
    "CREATE TABLE steps (id TEXT PRIMARY KEY, state TEXT NOT NULL, ready INTEGER NOT NULL,"
    " priority INTEGER NOT NULL, available_at BIGINT NOT NULL)"
)
db.execute(
    "CREATE INDEX steps_claim ON steps (priority, available_at)"
    " WHERE state = 'pending' AND ready = 1"
)
rng = random.Random(7)
db.executemany(
    "INSERT INTO steps VALUES (?, 'pending', 1, ?, ?)",
    ((str(i), rng.choice([0, 10]), rng.randint(0, 10**9)) for i in range(n)),
)
db.execute("ANALYZE")

before = "SELECT MIN(available_at) FROM steps WHERE state = 'pending' AND ready = 1"
now = (
    "SELECT MIN(t) FROM ("
    " SELECT MIN(available_at) AS t FROM steps WHERE state = 'pending' AND ready = 1 AND priority = ?"
    " UNION ALL"
    " SELECT MIN(available_at) FROM steps WHERE state = 'pending' AND ready = 1 AND priority = ?"
    ") AS firsts"
)
print(f"{n} waiting steps, SQLite {sqlite3.sqlite_version}")
for name, sql, args in [("before", before, ()), ("now", now, (0, 10))]:
    plan = "; ".join(row[3] for row in db.execute("EXPLAIN QUERY PLAN " + sql, args))
    rounds = 50
    start = time.perf_counter()
    for _ in range(rounds):
        first = db.execute(sql, args).fetchone()[0]
    each = (time.perf_counter() - start) / rounds
    print(f"{name:>6}: {each * 1e6:10.1f} us  (next due {first}; plan: {plan})")
