#!/usr/bin/python3
"""Prints what a client that knows only the issue sees in hvn-index's tables.

    dump_db.py sqlite PATH
    dump_db.py postgresql URI

One JSON object on stdout: {"nodes": {uuid: {column: value}}, "events":
[{column: value}, ...] oldest first}. Uses Python's sqlite3 module or
psycopg2 only: none of hvnotify's code.
"""
import json
import sys


def rows(cursor):
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, r)) for r in cursor.fetchall()]


def main():
    kind, target = sys.argv[1], sys.argv[2]
    if kind == "sqlite":
        import sqlite3
        db = sqlite3.connect("file:%s?mode=ro" % target, uri=True)
    else:
        import psycopg2
        db = psycopg2.connect(target)
    cur = db.cursor()
    cur.execute("SELECT * FROM compute_nodes")
    nodes = {r["uuid"]: r for r in rows(cur)}
    cur.execute("SELECT * FROM compute_node_events ORDER BY id")
    events = rows(cur)
    print(json.dumps({"nodes": nodes, "events": events}))


if __name__ == "__main__":
    main()
