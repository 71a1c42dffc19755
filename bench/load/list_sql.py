#!/usr/bin/env python3
"""Time the list page query itself on SQLite files, outside the server.

    bench/load/list_sql.py small.db large.db

Each file is a talos SQLite database (seed one with the load helper:
`load_tools seed sqlite://<file> <n> <keys-out> 1`). Prints the time of the
first list page (51 rows: a page of 50 and the look-ahead row, the statement
the SQLite adapter runs for an unfiltered list) as min and median of 5 rounds
of 1000 queries, and the query plan. Used to tell whether a slower list page
at 1M keys comes from SQLite or from the rest of the server.
"""
import sqlite3
import sys
import time

NID = "00000000-0000-0000-0000-000000000000"
QUERY = "SELECT * FROM issued_api_keys WHERE nid = ? ORDER BY key_id LIMIT 51"


def bench(path, rounds=5, n=1000):
    c = sqlite3.connect(path)
    count = c.execute("SELECT count(*) FROM issued_api_keys").fetchone()[0]
    for _ in range(50):
        c.execute(QUERY, (NID,)).fetchall()
    per = []
    for _ in range(rounds):
        t = time.perf_counter()
        for _ in range(n):
            rows = c.execute(QUERY, (NID,)).fetchall()
        per.append((time.perf_counter() - t) / n * 1e6)
    assert len(rows) == min(51, count)
    plan = c.execute("EXPLAIN QUERY PLAN " + QUERY, (NID,)).fetchall()
    return count, min(per), sorted(per)[len(per) // 2], plan[0][-1]


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    base = None
    for path in sys.argv[1:]:
        count, best, median, plan = bench(path)
        base = base or median
        print(f"{count:>9} keys  min {best:7.1f} us  median {median:7.1f} us  "
              f"(x{median / base:.2f})  {plan}")


if __name__ == "__main__":
    main()
