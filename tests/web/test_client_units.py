"""The web client's unit tests (vitest): the sync engine (WebSocket, resume, fallback to long-poll,
token refresh) and the room store (echoes, gaps, history pages, invites, direct rooms)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

WEB = Path(__file__).resolve().parents[2] / "web"


def test_web_client_unit_tests() -> None:
    vitest = WEB / "node_modules" / ".bin" / "vitest"
    assert vitest.exists(), "run `make web-client` to install web/ dependencies (make test does)"
    run = subprocess.run([str(vitest), "run"], cwd=WEB, capture_output=True, text=True, timeout=180,
                         env={**os.environ, "CI": "true", "NO_COLOR": "1"})
    report = run.stdout + run.stderr
    assert run.returncode == 0, report
    assert " passed" in report and " failed" not in report, report
