#!/usr/bin/python3
"""check_page.py URL DB — the live page in a real browser (Debian's headless
chromium through chromedriver), against the database hvn-index writes,
read with Python's sqlite3 module.

Checks that the page's totals and its heat map's cells equal the database,
and that a host named '<script>…</script>' is shown as text and not run.
Then it asks its parent (the Criterion test, which owns hvn-pub) to send a
change, one line "send <json>" on stdout, answered "sent" on stdin, and
checks that the node's cell changes within a second; then the same for a
removal, whose cell must leave. Prints "ok" and exits 0, or "fail: why"
and exits 1.
"""
import json
import sqlite3
import sys
import time

sys.path.insert(0, __import__("os").path.dirname(__file__))
from webdriver import Browser  # noqa: E402

LIVE_S = 1.0  # A change shows within a second


class Failed(Exception):
    """A check failed: the browser is closed before it is reported."""


def fail(why):
    raise Failed(why)


def db_fleet(path):
    """Returns the rows of compute_nodes as dicts by uuid."""
    con = sqlite3.connect("file:%s?mode=ro" % path, uri=True)
    con.row_factory = sqlite3.Row
    rows = {r["uuid"]: dict(r) for r in con.execute("SELECT * FROM compute_nodes")}
    con.close()
    return rows


def totals(rows):
    """Returns what the page's totals must show."""
    s = lambda k: sum(r[k] or 0 for r in rows.values())
    return {"t-nodes": [len(rows), None], "t-vcpus": [s("vcpus_used"), s("vcpus")],
            "t-ram": [s("memory_mb_used"), s("memory_mb")],
            "t-disk": [s("local_gb_used"), s("local_gb")], "t-vms": [s("running_vms"), None]}


PAGE_TOTALS = """
const out = {};
for (const id of ['t-nodes', 't-vcpus', 't-ram', 't-disk', 't-vms']) {
  const e = document.getElementById(id);
  out[id] = [Number(e.dataset.used), e.dataset.total === undefined ? null : Number(e.dataset.total)];
}
return out;"""

CELL_UTIL = "return window.hvnPage.cellUtil(arguments[0])"
CELL_PIXEL = "return window.hvnPage.cellPixel(arguments[0])"
CHANGED_AT = """
const li = document.querySelector('#recent li.' + arguments[1] + '[data-uuid="' + arguments[0] + '"]');
return li ? Number(li.dataset.at) : null;"""


def ask(line):
    """Returns once the parent answered a request line."""
    print(line, flush=True)
    answer = sys.stdin.readline().strip()
    if answer != "sent":
        raise Failed("the test answered %r to %r" % (answer, line))


def main():
    try:
        check()
    except Failed as e:  # Raised inside the with block: the browser is gone by now
        print("fail: " + str(e), flush=True)
        sys.exit(1)
    print("ok", flush=True)


def check():
    url, db = sys.argv[1], sys.argv[2]
    rows = db_fleet(db)
    with Browser() as b:
        b.get(url)
        if not b.wait("return document.body.dataset.ready", 15):
            fail("the page never loaded the fleet: " + str(b.js(
                "return document.getElementById('status').textContent")))
        # Totals and cells equal the database
        expected = totals(rows)
        if not b.wait("return JSON.stringify(%s) === JSON.stringify((() => {%s})())"
                      % (json.dumps(expected), PAGE_TOTALS), 3):
            fail("totals %s, database %s" % (b.js(PAGE_TOTALS), expected))
        cells = b.js("return window.hvnPage.cellUuids()")
        if sorted(cells) != sorted(rows):
            fail("%d cells, %d rows in the database" % (len(cells), len(rows)))
        # A hostile host name is text, never markup
        hostile = [r for r in rows.values() if r["host"].startswith("<script>")]
        if not hostile:
            fail("the fleet has no host named <script>")
        shown = b.js("return [...document.querySelectorAll('#nodes-body td')]"
                     ".some(td => td.textContent === arguments[0])", hostile[0]["host"])
        if not shown:
            fail("the host named %r is not shown as text" % hostile[0]["host"])
        if b.js("return window.__pwned !== undefined || document.scripts.length !== 1"):
            fail("the host name ran as a script")
        # A change shows within a second
        node = sorted(rows.values(), key=lambda r: r["host"])[0]
        old = b.js(CELL_UTIL, node["uuid"])
        pixel = b.js(CELL_PIXEL, node["uuid"])
        change = {k: v for k, v in node.items() if k not in
                  ("created_at", "updated_at", "publisher_id")}
        change["vcpus_used"] = 0 if old == "100" else change["vcpus"]
        want = "0" if old == "100" else "100"
        asked = time.time()
        ask("send " + json.dumps(change))
        if not b.wait("return (() => {%s})() === arguments[1]" % CELL_UTIL, LIVE_S * 5,
                      node["uuid"], want):
            fail("the cell of %s never became %s%% (it is %s)"
                 % (node["host"], want, b.js(CELL_UTIL, node["uuid"])))
        changed_s = b.js(CHANGED_AT, node["uuid"], "updated") / 1000 - asked
        if b.wait("return JSON.stringify((() => {%s})()) !== arguments[1]" % CELL_PIXEL, 1,
                  node["uuid"], json.dumps(pixel, separators=(",", ":"))) is None:
            fail("the square of %s was not repainted (still %s)" % (node["host"], pixel))
        first = b.js("const li = document.querySelector('#recent li');"
                     "return li ? [li.className, li.dataset.uuid] : null")
        if first != ["updated", node["uuid"]]:
            fail("the latest change listed is %s" % first)
        # A removal takes the cell away within a second
        gone = sorted(rows.values(), key=lambda r: r["host"])[-1]
        asked = time.time()
        ask("send " + json.dumps({"uuid": gone["uuid"], "deleted": True}))
        if not b.wait("return window.hvnPage.cellPixel(arguments[0]) === null", LIVE_S * 5,
                      gone["uuid"]):
            fail("the cell of removed %s stayed" % gone["host"])
        removed_s = b.js(CHANGED_AT, gone["uuid"], "removed") / 1000 - asked
        count = b.js("return window.hvnPage.cellCount()")
        nodes = b.js("return Number(document.getElementById('t-nodes').dataset.used)")
        if count != len(rows) - 1 or nodes != len(rows) - 1:
            fail("after the removal: %s cells, %s nodes, expected %d" % (count, nodes,
                                                                       len(rows) - 1))
        print("changed in %.3f s, removed in %.3f s" % (changed_s, removed_s), file=sys.stderr)
        if changed_s > LIVE_S or removed_s > LIVE_S:
            fail("too slow: changed in %.3f s, removed in %.3f s" % (changed_s, removed_s))


if __name__ == "__main__":
    main()
