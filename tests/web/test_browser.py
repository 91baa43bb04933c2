"""The built web client in Debian's Chromium against a real Parley process (SQLite).

The browser scenarios are web/e2e/*.test.mjs (Node's test runner with playwright-core):
register, log in, reload, token refresh, create a channel, a second person joins and both talk in
real time (one over the WebSocket, one falling back to long-poll), direct messages, older history
on scroll, an XSS corpus rendered as text, log out; edits, deletion, reactions, threads, typing,
invites, a windowed long channel, uploads, settings, organizations, keyboard use, an axe-core scan;
and a server restart in mid-conversation; end-to-end encrypted direct messages between two
browsers and between the browser and matrix-js-sdk (tests/jssdk/party.mjs), after which the
server's database and media store must hold none of their plaintexts.
For the restart the browser test asks this harness, over a small control endpoint on loopback,
to stop the server and to start it again on the same port and database.
`make test` builds web/out first (web/scripts/build.sh).

The server runs with plugins on and the shipped poll plugin in its plugins folder (installed and
enabled from the plugins page by the test), for: notification settings as push rules and the
badges they give, browser notifications (Web Push), the plugins page, a slash command answered
by the poll plugin, @-mentions, presence dots and the "new messages" divider.
"""

from __future__ import annotations

import os
import re
import shutil
import sqlite3
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from tests.e2e.conftest import free_port, spawn_server, stop_server, wait_ready

REPO = Path(__file__).resolve().parents[2]
WEB = REPO / "web"
CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
JSSDK = REPO / "tests" / "jssdk"
# Every plaintext web/e2e/crypto.test.mjs sends end-to-end encrypted contains this.
SEALED = "e2ee-sealed"


class RestartableServer:
    """One Parley on a fixed port and database that can be stopped and started again."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.base = ""
        self.lock = threading.Lock()
        self.logs: list[str] = []
        shutil.copytree(REPO / "plugins" / "poll", tmp / "plugins" / "poll",
                        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))

    def start(self) -> None:
        with self.lock:
            assert self.proc is None
            self.proc, self.base = spawn_server(self.tmp, f"sqlite:///{self.tmp}/parley.db", port=self.port,
                                                PARLEY_WEB_CLIENT_DIR=str(WEB / "out"), PARLEY_PLUGINS__ENABLED="true",
                                                PARLEY_PLUGINS__DIR=str(self.tmp / "plugins"),
                                                PARLEY_PLUGINS__RESTART_BACKOFF_MAX_S="2",
                                                PARLEY_ADMINS=f"@{ADMIN_USER}:e2e.parley")
            wait_ready(self.proc, self.base, self.tmp / "server.log")

    def stop(self) -> None:
        with self.lock:
            if self.proc is not None:
                stop_server(self.proc)
                self.proc = None
                self.logs.append((self.tmp / "server.log").read_text(errors="replace"))


@contextmanager
def control_endpoint(server: RestartableServer) -> Iterator[str]:
    """POST /stop and POST /start, each answering once the server is down or ready."""

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 (the http.server API)
            action = {"/stop": server.stop, "/start": server.start}.get(self.path)
            if action is None:
                self.send_error(404)
                return
            action()
            self.send_response(204)
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


# The plugins page and slash commands: the server's one admin (RestartableServer runs with
# plugins on and the shipped poll plugin in its plugins folder, found but not installed).
ADMIN_USER = "webadmin"


def test_web_client_in_a_real_browser(tmp_path: Path) -> None:
    assert (WEB / "out" / "index.html").is_file(), "web/out is not built: run `make web-client` (make test does)"
    assert (WEB / "node_modules" / "playwright-core").is_dir(), "run `make web-client` to install web/ dependencies"
    assert Path(CHROMIUM).exists(), f"{CHROMIUM} is missing: apt-get install chromium"
    node = shutil.which("node")
    assert node, "Node.js >= 20 is needed for the browser test"
    subprocess.run([str(JSSDK / "deps.sh")], check=True)  # matrix-js-sdk, the browser's encrypted peer
    server = RestartableServer(tmp_path)
    server.start()
    try:
        with control_endpoint(server) as control:
            env = {**os.environ, "PARLEY_URL": server.base, "PARLEY_CONTROL_URL": control,
                   "CHROMIUM_PATH": CHROMIUM, "PARLEY_ADMIN_USER": ADMIN_USER}
            run = subprocess.run([node, "--test", "--test-concurrency=1", "--test-reporter=spec", "e2e/"],
                                 cwd=WEB, env=env, capture_output=True, text=True, timeout=900)
    finally:
        server.stop()
    report = run.stdout + run.stderr
    print(report)  # shown with -s or on failure
    assert run.returncode == 0, report
    counts = {k: int(v) for k, v in re.findall(r"ℹ (pass|fail|cancelled|skipped|todo) (\d+)", report)}
    assert counts.get("pass", 0) >= 12 and counts["fail"] == counts["cancelled"] == counts["skipped"] == 0, report
    for log in server.logs:
        assert "Traceback" not in log, log
    _assert_database_free_of(tmp_path / "parley.db", SEALED)
    # Nor the plaintext of an attachment sent to an encrypted room: the media store holds ciphertext.
    stored = [p for p in (tmp_path / "media").rglob("*") if p.is_file()]
    assert stored, "the browser tests uploaded files"
    for path in stored:
        assert SEALED.encode() not in path.read_bytes(), path


def _assert_database_free_of(db_path: Path, needle: str) -> None:
    """No row of any table holds `needle`: the server never saw an encrypted message's plaintext."""
    db = sqlite3.connect(db_path)
    try:
        tables = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        assert "events" in tables and "to_device_inbox" in tables
        events = db.execute("SELECT count(*) FROM events WHERE type = 'm.room.encrypted'").fetchone()[0]
        assert events >= 4, "the encrypted conversations took place"
        for table in tables:
            for row in db.execute(f"SELECT * FROM {table}"):  # noqa: S608 (names from sqlite_master)
                assert needle not in repr(row), (table, row)
    finally:
        db.close()
