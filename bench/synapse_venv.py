"""The Synapse used as a peer (tests/federation) and as a baseline (bench/): installed from PyPI
into a cached, git-ignored virtualenv on first use. Importing this module has no side effects."""

from __future__ import annotations

import fcntl
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SYNAPSE_VENV = ROOT / "bench" / ".venv-synapse"


class SynapseUnavailable(RuntimeError):
    pass


def ensure_synapse() -> Path:
    """The Synapse venv's python, installing matrix-synapse[postgres] from PyPI on first use.
    Processes that ask at the same time (parallel test workers) wait for one installation."""
    SYNAPSE_VENV.parent.mkdir(parents=True, exist_ok=True)
    with open(SYNAPSE_VENV.parent / ".venv-synapse.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        return _ensure_synapse()


def _ensure_synapse() -> Path:
    py = SYNAPSE_VENV / "bin" / "python"
    if py.exists() and subprocess.run([str(py), "-c", "import synapse.app.homeserver"],
                                      capture_output=True, check=False).returncode == 0:
        return py
    print(f"installing matrix-synapse[postgres] into {SYNAPSE_VENV} (about 30 s) ...", flush=True)
    try:
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(SYNAPSE_VENV)], check=True,
                       capture_output=True, text=True)
        r = subprocess.run([str(SYNAPSE_VENV / "bin" / "pip"), "install", "-q", "matrix-synapse[postgres]"],
                           capture_output=True, text=True, timeout=600, check=False)
    except (subprocess.SubprocessError, OSError) as e:
        raise SynapseUnavailable(f"could not create the Synapse virtualenv at {SYNAPSE_VENV}: {e}") from e
    if r.returncode:
        raise SynapseUnavailable(
            f"could not install matrix-synapse[postgres] into {SYNAPSE_VENV} (pip exit {r.returncode}).\n"
            f"Check that PyPI is reachable and that the build dependencies are present; pip said:\n"
            + r.stderr[-2000:])
    return py
