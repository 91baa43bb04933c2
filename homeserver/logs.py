"""Log setup: human-readable text or one JSON object per line, and the per-request access log.

The access log is the `parley.access` logger at INFO: one line per HTTP request (and per
WebSocket session, when it ends) with the status and the duration. Query strings are never
logged: they may carry `access_token`.
"""

from __future__ import annotations

import logging
import sys
import time
from typing import Any

import orjson

ACCESS = logging.getLogger("parley.access")
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    """One JSON object per record: ts, level, logger, msg, any `extra=` fields, exc."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for k, v in vars(record).items():
            if k not in _STANDARD and not k.startswith("_"):
                out[k] = v
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return orjson.dumps(out, default=str).decode()


def setup_logging(level: str, fmt: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    for h in list(root.handlers):
        root.removeHandler(h)
    root.addHandler(handler)
    root.setLevel(level)
    # httpx and httpcore log every outbound request (federation, previews, pushes) at INFO: that
    # is a line per transaction per destination. Their warnings still show.
    for noisy in ("httpx", "httpcore"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))


def log_access(client: str, method: str, path: str, route: str, status: int, seconds: float) -> None:
    if not ACCESS.isEnabledFor(logging.INFO):
        return
    ms = round(seconds * 1000, 1)
    ACCESS.info("%s %s %s %d %.1fms", client, method, path, status, ms,
                extra={"client": client, "method": method, "path": path, "route": route,
                       "status": status, "duration_ms": ms})
