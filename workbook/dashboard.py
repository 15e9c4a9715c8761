"""The instructor's view of the room: learners x exercises, as text, JSON or a page for the projector.

table() reads the room's results (the instructor's role sees every learner's rows) and judges
nothing itself: a cell is the learner's latest verdict for that exercise, its failing criterion
in words (the check's statement), and under the table, per exercise, the criteria that hold the
most learners back, which is what to explain to the whole room. The page is served on
127.0.0.1 by default, only to a request that carries the token, and never shows a password. The
page's first request trades the token for an HttpOnly cookie and moves to an address without it,
so the token is not left in the address bar on the projector.
"""
from __future__ import annotations

import functools
import hmac
import html
import importlib
import http.cookies
import http.server
import json
import secrets
import time
import urllib.parse
from collections import Counter
from datetime import datetime, timezone

import sqlalchemy as sa

from workbook import classroom, db, manifest
from workbook.status import FAILED, NOT_ATTEMPTED, PASSED

CLASSES = {"passed": "passed", "failed": "failed", "not attempted": "not-attempted", "error": "error"}
SHORT = {"passed": "✓ passed", "failed": "✗ failing", "not attempted": "· not attempted", "error": "– not judged"}


def table(now: float | None = None) -> dict:
    now = time.time() if now is None else now
    name = classroom.room()
    with db.admin() as conn:
        learners = classroom.roster(conn, name)
    eng = db.engine(name)
    try:
        with eng.connect() as c:
            rows = c.execute(sa.text("SELECT learner, exercise, status, criterion, message, "
                                     "extract(epoch FROM at) FROM results ORDER BY at, id")).all()
    finally:
        eng.dispose()
    numbers = [ex.number for ex in manifest.exercises()]
    cells: dict[str, dict[str, dict]] = {role: {} for role, _ in learners}
    last: dict[str, float] = {}
    for learner, exercise, status, criterion, message, at in rows:
        if learner not in cells or exercise not in numbers:
            continue
        last[learner] = float(at)
        before = cells[learner].get(exercise)
        # Failing since the first failure after the latest pass: how long this learner is stuck.
        since = before["since"] if before and before["status"] != PASSED and before.get("since") else float(at)
        cells[learner][exercise] = {"status": status, "criterion": criterion, "message": message,
                                    "at": float(at), "since": since if status != PASSED else None}
    out = []
    for role, display in learners:
        row = {"learner": display, "role": role, "last_check": last.get(role), "exercises": {}}
        for n in numbers:
            cell = cells[role].get(n) or {"status": NOT_ATTEMPTED, "criterion": None, "message": "",
                                          "at": None, "since": None}
            cell["minutes"] = round((now - cell["since"]) / 60, 1) if cell.get("since") and \
                cell["status"] != NOT_ATTEMPTED else None
            row["exercises"][n] = cell
        out.append(row)
    for row in out:
        for n, cell in row["exercises"].items():
            cell["statement"] = statement(n, cell["criterion"]) if cell["criterion"] else None
    passed = {n: sum(r["exercises"][n]["status"] == PASSED for r in out) for n in numbers}
    return {"classroom": name, "exercises": numbers, "learners": out, "passed": passed,
            "held_back": held_back(out, numbers), "at": now}


def held_back(learners: list[dict], numbers: list[str]) -> dict[str, list[dict]]:
    """Per exercise, the criteria learners fail now (their latest verdict), most learners first:
    what to explain to the whole room."""
    out = {}
    for n in numbers:
        counts = Counter(r["exercises"][n]["criterion"] for r in learners
                         if r["exercises"][n]["status"] == FAILED and r["exercises"][n]["criterion"])
        out[n] = [{"criterion": c, "statement": statement(n, c), "learners": k}
                  for c, k in sorted(counts.items(), key=lambda item: (-item[1], item[0]))]
    return out


@functools.cache
def _statements(number: str) -> dict[str, str]:
    """The exercise's criteria in words, from its check module (imported only when needed)."""
    ex = manifest.get(number)
    return {c.id: c.statement for c in importlib.import_module(ex.check).CRITERIA}


def statement(number: str, criterion: str) -> str:
    """What the criterion asks, in words; its id when the check no longer has it."""
    try:
        return _statements(number).get(criterion, criterion)
    except Exception:  # noqa: BLE001  (a check that does not import: the id still says something)
        return criterion


def _when(at: float | None) -> str:
    return datetime.fromtimestamp(at, timezone.utc).strftime("%H:%M:%S") if at else "never"


def as_text(t: dict) -> str:
    lines = [f"{'learner':<20} " + " ".join(f"{n:<16}" for n in t["exercises"]) + " last check"]
    for row in t["learners"]:
        cells = [f"{SHORT.get(row['exercises'][n]['status'], '?')[:16]:<16}" for n in t["exercises"]]
        lines.append(f"{row['learner'][:20]:<20} " + " ".join(cells) + f" {_when(row['last_check'])}")
    total = len(t["learners"])
    lines.append(f"{'passed':<20} " + " ".join(f"{t['passed'][n]} of {total}".ljust(16) for n in t["exercises"]))
    held = [(n, h) for n in t["exercises"] for h in t["held_back"][n]]
    if held:
        lines += ["", "What holds learners back (their latest check):"]
        lines += [f"  {n}  {_learners(h['learners'])}: {h['statement']}" for n, h in held]
    return "\n".join(lines)


def _learners(n: int) -> str:
    return f"{n} learner{'s' if n != 1 else ''}"


def as_html(t: dict, stuck_minutes: float, refresh: int = 10) -> str:
    total = len(t["learners"])
    head = "".join(f"<th>{n}<br><small class=count>{t['passed'][n]} of {total} passed {n}</small></th>"
                   for n in t["exercises"])
    body = []
    for row in t["learners"]:
        tds = []
        for n in t["exercises"]:
            c = row["exercises"][n]
            # An error is the server's (busy, cancelled), never the learner's: grey, never red.
            stuck = c["status"] == FAILED and c["minutes"] is not None and c["minutes"] >= stuck_minutes
            # Everything in a cell came from a learner's role: escaped, and the class is ours.
            label = html.escape(SHORT.get(c["status"], c["status"]))
            detail = f"<br><small>{html.escape(c['statement'])}</small>" if c["statement"] else ""
            since = f"<br><small>for {c['minutes']:.0f} min</small>" if stuck else ""
            cls = CLASSES.get(c["status"], "unknown") + (" stuck" if stuck else "")
            tds.append(f"<td class='{cls}' title='{html.escape(c['message'] or '')}'>{label}{detail}{since}</td>")
        body.append(f"<tr><th class=name>{html.escape(row['learner'])}</th>{''.join(tds)}"
                    f"<td>{_when(row['last_check'])}</td></tr>")
    return f"""<!doctype html><html><head><meta charset=utf-8>
<meta http-equiv=refresh content={refresh}><title>{html.escape(t['classroom'])}: the room</title>
<style>body{{font:18px sans-serif;margin:1em}} table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:.3em .6em;text-align:center}} th.name{{text-align:left}}
td small{{display:inline-block;max-width:16em}}
.passed{{background:#d4f5d4}} .failed{{background:#fde2c4}} .error{{background:#eee;color:#666}}
.stuck{{background:#f59a9a;font-weight:bold}}</style></head><body>
<h1>{html.escape(t['classroom'])}: {total} learners</h1>
<p>Updated {_when(t['at'])} UTC; red: failing the same exercise for {stuck_minutes:g} minutes or more.</p>
<table id=room><tr><th>learner</th>{head}<th>last check</th></tr>{''.join(body)}</table>
{_held_html(t)}</body></html>"""


def _held_html(t: dict) -> str:
    items = "".join(f"<li><b>{html.escape(n)}</b> {_learners(h['learners'])}: "
                    f"{html.escape(h['statement'])}</li>" for n in t["exercises"] for h in t["held_back"][n])
    return f"<h2>What holds learners back</h2><ul id=held>{items}</ul>" if items else ""


COOKIE = "workbook_room"


def handler(token: str, stuck_minutes: float):
    expected = token.encode()

    def valid(given: str | None) -> bool:
        # On bytes: compare_digest refuses str with non-ASCII characters, and anyone may send those.
        return given is not None and hmac.compare_digest(given.encode(), expected)

    class Page(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            url = urllib.parse.urlsplit(self.path)
            given = urllib.parse.parse_qs(url.query).get("token", [None])[0]
            if given is not None and valid(given) and url.path != "/data.json":
                # The address bar may be on the projector: trade the token for a cookie, and
                # show the page at an address without it.
                self.send_response(303)
                self.send_header("Location", url.path or "/")
                self.send_header("Set-Cookie", f"{COOKIE}={token}; HttpOnly; SameSite=Strict; Path=/")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            if not (valid(given) or valid(self._cookie())):
                return self._send(403, "text/plain", "A token is needed: open the URL `classroom serve` printed.")
            try:
                t = table()
            except Exception as exc:  # noqa: BLE001  (the projector shows why, and tries again)
                return self._send(503, "text/plain", f"Could not read the room: {db.first_line(exc)}")
            if url.path == "/data.json":
                return self._send(200, "application/json", json.dumps(t))
            self._send(200, "text/html; charset=utf-8", as_html(t, stuck_minutes))

        def _cookie(self) -> str | None:
            try:
                jar = http.cookies.SimpleCookie(self.headers.get("Cookie", ""))
            except http.cookies.CookieError:
                return None
            return jar[COOKIE].value if COOKIE in jar else None

        def _send(self, code: int, kind: str, text: str) -> None:
            data = text.encode()
            self.send_response(code)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(data)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args):  # the terminal stays quiet; the page is the display
            pass
    return Page


def serve(host: str, port: int, stuck_minutes: float, token: str | None = None) -> None:
    token = token or secrets.token_urlsafe(16)
    table()  # fail now, with a verdict, rather than on the projector
    server = http.server.ThreadingHTTPServer((host, port), handler(token, stuck_minutes))
    print(f"The room: http://{host}:{server.server_address[1]}/?token={token}  (Ctrl-C stops it)", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
