"""The built web client in Debian's Chromium against a real Parley process (SQLite).

The browser scenario itself is web/e2e/app.test.mjs (Node's test runner with playwright-core):
register, log in, reload, create a channel, a second person joins and both talk in real time
(one over the WebSocket, one over long-poll), older history on scroll, an XSS corpus rendered as
text, log out. `make test` builds web/out first (web/scripts/build.sh).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from tests.e2e.conftest import start_server, stop_server

REPO = Path(__file__).resolve().parents[2]
WEB = REPO / "web"
CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")


def test_web_client_in_a_real_browser(tmp_path: Path) -> None:
    assert (WEB / "out" / "index.html").is_file(), "web/out is not built: run `make web-client` (make test does)"
    assert (WEB / "node_modules" / "playwright-core").is_dir(), "run `make web-client` to install web/ dependencies"
    assert Path(CHROMIUM).exists(), f"{CHROMIUM} is missing: apt-get install chromium"
    node = shutil.which("node")
    assert node, "Node.js >= 20 is needed for the browser test"
    proc, base = start_server(tmp_path, f"sqlite:///{tmp_path}/parley.db",
                              PARLEY_WEB_CLIENT_DIR=str(WEB / "out"))
    try:
        env = {**os.environ, "PARLEY_URL": base, "CHROMIUM_PATH": CHROMIUM}
        run = subprocess.run([node, "--test", "--test-concurrency=1", "--test-reporter=spec", "e2e/"],
                             cwd=WEB, env=env, capture_output=True, text=True, timeout=240)
    finally:
        stop_server(proc)
    report = run.stdout + run.stderr
    assert run.returncode == 0, report
    assert "# fail 0" in report or "ℹ fail 0" in report, report
    log = (tmp_path / "server.log").read_text(errors="replace")
    assert "Traceback" not in log, log
