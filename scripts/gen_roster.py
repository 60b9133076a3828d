#!/usr/bin/env python3
"""Writes a synthetic HR roster (CSV, tenure's default columns) to standard output.

    scripts/gen_roster.py ROWS [--first N] [--change-every K] [--drop-every K]

Rows are deterministic: person n (from --first, default 1) is E0000001, ... Every K-th person
gets another title (--change-every) or is left out (--drop-every), to make a roster that
differs from an earlier one. Used by scripts/roster_bench.sh.
"""

import argparse
import sys

DEPARTMENTS = ["Engineering", "Sales", "Support", "Finance", "People", "Marketing"]
TITLES = ["Engineer", "Senior Engineer", "Account Executive", "Analyst", "Manager"]
LOCATIONS = ["London", "Berlin", "Paris", "Lisbon", "New York"]
FIRST = ["Ada", "Grace", "Alan", "Edsger", "Barbara", "Donald", "Frances", "Radia"]
LAST = ["Lovelace", "Hopper", "Turing", "Dijkstra", "Liskov", "Knuth", "Allen", "Perlman"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("rows", type=int)
    ap.add_argument("--first", type=int, default=1)
    ap.add_argument("--change-every", type=int, default=0)
    ap.add_argument("--drop-every", type=int, default=0)
    a = ap.parse_args()

    out = sys.stdout
    write = out.write
    write("id,name,email,worker_type,department,title,location,manager,start_date,end_date\n")
    for n in range(a.first, a.first + a.rows):
        if a.drop_every and n % a.drop_every == 0:
            continue
        pid = f"E{n:07d}"
        first, last = FIRST[n % len(FIRST)], LAST[(n // 8) % len(LAST)]
        contractor = n % 10 == 7
        title = TITLES[n % len(TITLES)]
        if a.change_every and n % a.change_every == 0:
            title = "Staff " + title
        manager = f"E{max(1, n // 10):07d}" if n > 1 else ""
        start = f"20{10 + n % 15:02d}-{1 + n % 12:02d}-{1 + n % 28:02d}"
        end = f"2027-{1 + n % 12:02d}-28" if contractor else ""
        write(
            f"{pid},{first} {last} {n},{first.lower()}.{n}@example.com,"
            f"{'contractor' if contractor else 'employee'},{DEPARTMENTS[n % len(DEPARTMENTS)]},"
            f"{title},{LOCATIONS[n % len(LOCATIONS)]},{manager},{start},{end}\n"
        )


if __name__ == "__main__":
    main()
