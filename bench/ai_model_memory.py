"""Memory and time the local embedding model costs a server process, measured in a fresh
Python process: resident set size (VmRSS) after importing the server's AI modules, after
loading the model, and after embedding a batch of 64 messages; and the load time.

    .venv/bin/python -m bench.ai_model_memory
"""

from __future__ import annotations

import json
import subprocess
import sys

CHILD = r"""
import json, time
def rss_mb():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
import homeserver.ai.service  # what a server imports whether or not the model is ever used
out = {"imported": rss_mb()}
from homeserver.ai.local_embed import LocalEmbedder
t = time.perf_counter()
m = LocalEmbedder()
out["load_s"] = time.perf_counter() - t
out["loaded"] = rss_mb()
texts = [f"message number {i}: the deploy of service {i % 7} finished without errors" for i in range(64)]
t = time.perf_counter()
m.embed(texts)
out["embed64_s"] = time.perf_counter() - t
out["after_embed"] = rss_mb()
print(json.dumps(out))
"""


def main() -> None:
    runs = [json.loads(subprocess.run([sys.executable, "-c", CHILD], check=True, capture_output=True,
                                      text=True).stdout) for _ in range(3)]
    best = {k: sorted(r[k] for r in runs)[1] for k in runs[0]}  # the median of three
    print(f"RSS after importing the AI service: {best['imported']:.0f} MB")
    print(f"RSS after loading the model:        {best['loaded']:.0f} MB "
          f"(+{best['loaded'] - best['imported']:.0f} MB, load {best['load_s']:.1f} s)")
    print(f"RSS after embedding 64 messages:    {best['after_embed']:.0f} MB "
          f"(+{best['after_embed'] - best['imported']:.0f} MB in all, {best['embed64_s']:.1f} s)")


if __name__ == "__main__":
    main()
