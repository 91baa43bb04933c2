"""Parley vs Synapse, same machine, same load generator: writes bench/results/<date>.md + .json.

    python -m bench.run            # full run (about 10 minutes on 2 cores)
    python -m bench.run --quick    # about a minute: a subset at small sizes
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import platform
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any, Awaitable, Callable

from bench import workloads as w
from bench.servers import ROOT, Server, start_parley, start_synapse, stop, synapse_version

RESULTS = ROOT / "bench" / "results"

FULL = {
    "send_configs": [(1, 5), (10, 5), (50, 5), (1, 100), (10, 100), (50, 100)],
    "send_total": 200, "repeats": 3, "delivery_samples": 50,
    "sync_sizes": [(20, 10), (100, 10)], "pagination_sizes": [300, 1000],
    "create_samples": 20, "members": 200,
    "setups": ["sqlite", "postgres", "workers", "synapse"],
}
QUICK = {
    "send_configs": [(10, 5)], "send_total": 100, "repeats": 1, "delivery_samples": 20,
    "sync_sizes": [(20, 5)], "pagination_sizes": [300], "create_samples": 5, "members": 20,
    "setups": ["sqlite", "synapse"],
}


async def repeat(n: int, fn: Callable[[], Awaitable[dict[str, Any]]]) -> dict[str, Any]:
    runs = [await fn() for _ in range(n)]
    out: dict[str, Any] = {}
    for k, v in runs[0].items():
        if isinstance(v, (int, float)):
            vals = [r[k] for r in runs]
            out[k] = statistics.median(vals)
            lo, hi = min(vals), max(vals)
            if n > 1 and lo > 0 and hi / lo > 1.5:
                out.setdefault("_wide", []).append(k)
        else:
            out[k] = v
    return out


async def measure(server: Server, p: dict[str, Any]) -> dict[str, Any]:
    res: dict[str, Any] = {"idle": w.memory(server)}
    c = w.Client(server)
    try:
        for senders, rooms in p["send_configs"]:
            res[f"send_{senders}x{rooms}"] = await repeat(
                p["repeats"], lambda: w.send_throughput(c, senders, rooms, p["send_total"]))
        res["delivery_sync"] = await repeat(p["repeats"], lambda: w.delivery_latency(c, p["delivery_samples"]))
        if server.name.startswith("Parley"):
            res["delivery_ws"] = await repeat(p["repeats"], lambda: w.delivery_latency(c, p["delivery_samples"], True))
        for rooms, per_room in p["sync_sizes"]:
            res[f"sync_{rooms}x{per_room}"] = await w.initial_sync(c, rooms, per_room)
        for events in p["pagination_sizes"]:
            res[f"messages_{events}"] = await w.pagination(c, events)
        res["rooms"] = await w.rooms_and_members(c, p["create_samples"], p["members"])
        res["peak"] = w.memory(server)
    finally:
        await c.close()
    return res


def _git(*args: str) -> str:
    try:
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    except OSError:
        return "?"


def machine() -> dict[str, Any]:
    model = "?"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2**30
    return {"cpus": os.cpu_count(), "cpu_model": model, "memory_gib": mem, "python": platform.python_version()}


def fmt(v: Any, unit: str = "") -> str:
    if v is None or (isinstance(v, float) and v != v):
        return "—"
    if isinstance(v, float):
        return f"{v:,.1f}{unit}" if v < 100 else f"{v:,.0f}{unit}"
    return f"{v:,}{unit}"


def build_rows(results: dict[str, dict[str, Any]], p: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per figure: values per setup, Synapse's, and how many times better Parley is."""
    rows: list[dict[str, Any]] = []

    def add(label: str, get: Callable[[dict[str, Any]], Any], higher_better: bool, unit: str = "",
            target: float | None = None, target_label: str = "") -> None:
        vals: dict[str, Any] = {}
        wide = False
        for setup, r in results.items():
            try:
                vals[setup] = get(r)
            except (KeyError, TypeError):
                vals[setup] = None
        syn = vals.get("Synapse (PostgreSQL)")
        ratios = {}
        for setup, v in vals.items():
            if setup.startswith("Parley") and v and syn:
                ratios[setup] = (v / syn) if higher_better else (syn / v)
        rows.append({"label": label, "values": vals, "ratios": ratios, "unit": unit, "target": target,
                     "target_label": target_label, "wide": wide})

    for s, r in p["send_configs"]:
        key = f"send_{s}x{r}"
        is_target = (s, r) == (10, 5)
        add(f"send throughput, {s} senders / {r} rooms (msg/s)", lambda x, k=key: x[k]["throughput"], True,
            target=10 if is_target else None, target_label="≥ 10x" if is_target else "")
        add(f"send latency p50, {s}/{r} (ms)", lambda x, k=key: x[k]["p50"], False)
        add(f"send latency p95, {s}/{r} (ms)", lambda x, k=key: x[k]["p95"], False,
            target=10 if is_target else None, target_label="≤ 1/10" if is_target else "")
        add(f"send latency p99, {s}/{r} (ms)", lambda x, k=key: x[k]["p99"], False)
    key0 = f"send_{p['send_configs'][0][0]}x{p['send_configs'][0][1]}"
    for name in ("10x5",) if any(c == (10, 5) for c in p["send_configs"]) else (key0[5:],):
        add(f"CPU seconds per 1,000 messages ({name.replace('x', ' senders / ')} rooms)",
            lambda x, k=f"send_{name}": x[k]["cpu_s_per_1000"], False)
    for q in ("p50", "p95", "p99"):
        add(f"delivery send → /sync {q} (ms)", lambda x, q=q: x["delivery_sync"][q], False,
            target=4 if q == "p95" else None, target_label="≤ 1/4" if q == "p95" else "")
    for q in ("p50", "p95", "p99"):
        add(f"delivery send → WebSocket {q} (ms)", lambda x, q=q: x["delivery_ws"][q], False)
    for rooms, per_room in p["sync_sizes"]:
        k = f"sync_{rooms}x{per_room}"
        big = (rooms, per_room) == p["sync_sizes"][-1]
        add(f"initial /sync, {rooms} rooms × {per_room} msgs (ms)", lambda x, k=k: x[k]["initial_ms"], False,
            target=5 if big else None, target_label="≤ 1/5" if big else "")
        add(f"initial /sync size, {rooms}×{per_room} (KiB)", lambda x, k=k: x[k]["initial_bytes"] / 1024, False)
        add(f"incremental /sync, nothing new, {rooms} rooms (ms)", lambda x, k=k: x[k]["incr_empty_ms"], False)
        add(f"incremental /sync, one new event, {rooms} rooms (ms)", lambda x, k=k: x[k]["incr_one_ms"], False)
    for events in p["pagination_sizes"]:
        k = f"messages_{events}"
        add(f"/messages through {events} events, total (ms)", lambda x, k=k: x[k]["total_ms"], False)
        add(f"/messages page of 100, p50 at {events} events (ms)", lambda x, k=k: x[k]["p50"], False)
    add("createRoom p50 (ms)", lambda x: x["rooms"]["create"]["p50"], False)
    add("createRoom p95 (ms)", lambda x: x["rooms"]["create"]["p95"], False)
    add(f"join p50, room growing to {p['members']} members (ms)", lambda x: x["rooms"]["join"]["p50"], False)
    add(f"join p95, room growing to {p['members']} members (ms)", lambda x: x["rooms"]["join"]["p95"], False)
    add(f"initial /sync of a member of the {p['members']}-member room (ms)", lambda x: x["rooms"]["member_sync_ms"], False)
    add(f"initial /sync size, {p['members']}-member room (KiB)", lambda x: x["rooms"]["member_sync_bytes"] / 1024, False)
    add("RSS at idle after start (MiB, all processes)", lambda x: x["idle"]["rss_kib"] / 1024, False)
    add("peak RSS, VmHWM (MiB, all processes)", lambda x: x["peak"]["hwm_kib"] / 1024, False,
        target=2, target_label="≤ 1/2")
    return rows


def render(results: dict[str, dict[str, Any]], p: dict[str, Any], meta: dict[str, Any]) -> str:
    setups = list(results)
    parleys = [s for s in setups if s.startswith("Parley")]
    rows = build_rows(results, p)
    out = [f"# Parley vs Synapse — {meta['date']}", "",
           f"- machine: {meta['machine']['cpus']} CPUs ({meta['machine']['cpu_model']}), "
           f"{meta['machine']['memory_gib']} GiB, Python {meta['machine']['python']}",
           f"- Parley {meta['parley_commit']}, Synapse {meta['synapse_version']}, mode: {meta['mode']}",
           f"- parameters: {json.dumps({k: v for k, v in p.items() if k != 'setups'})}",
           "- each throughput/latency workload repeated " + str(p["repeats"]) + "x, medians shown; "
           "ratios are *times better than Synapse* (higher is better for Parley)", ""]
    head = "| workload | " + " | ".join(setups) + " | ratio " + " / ".join(s.split(" ", 1)[1] for s in parleys) + " | target | met? |"
    out += [head, "|" + "---|" * (len(setups) + 4)]
    for row in rows:
        vals = " | ".join(fmt(row["values"].get(s)) for s in setups)
        ratios = " / ".join(f"{row['ratios'][s]:.1f}x" if s in row["ratios"] else "—" for s in parleys)
        met = ""
        if row["target"] is not None:
            best = [row["ratios"].get(s) for s in parleys if row["ratios"].get(s)]
            met = "—" if not best else ("yes" if row["ratios"].get(parleys[0], 0) >= row["target"] else "no")
        out.append(f"| {row['label']} | {vals} | {ratios} | {row['target_label']} | {met} |")
    wide = [f"{s}: {k} ({', '.join(v['_wide'])})" for s, r in results.items() for k, v in r.items()
            if isinstance(v, dict) and v.get("_wide")]
    out += ["", "Wide spread (max/min > 1.5 across repeats): " + ("; ".join(wide) if wide else "none"), ""]
    ws = results.get(parleys[0], {}).get("delivery_ws", {}) if parleys else {}
    if ws:
        out.append(f"WebSocket target (< 10 ms on one worker, p95): {'met' if ws.get('p95', 99) < 10 else 'missed'} "
                   f"({ws.get('p95', float('nan')):.1f} ms)")
    out.append("The 'met?' column compares the first Parley setup with Synapse. "
               "Sizes are scaled down from the issue's (see parameters) to keep a run within 10 minutes.")
    return "\n".join(out) + "\n"


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    p = QUICK if args.quick else FULL
    results: dict[str, dict[str, Any]] = {}
    tmp = Path(tempfile.mkdtemp(prefix="parley-bench-"))
    started = time.monotonic()
    try:
        for setup in p["setups"]:
            if setup == "synapse":
                server = await start_synapse(tmp / "synapse")
            else:
                server = await start_parley(setup, tmp / setup)
            try:
                print(f"[{time.monotonic() - started:5.0f}s] {server.name} ...", flush=True)
                results[server.name] = await measure(server, p)
            finally:
                await stop(server)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    meta = {"date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"), "machine": machine(),
            "parley_commit": _git("rev-parse", "--short", "HEAD"), "synapse_version": synapse_version(),
            "mode": "quick" if args.quick else "full", "seconds": round(time.monotonic() - started)}
    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%d-%H%M")
    suffix = "-quick" if args.quick else ""
    md = render(results, p, meta)
    (RESULTS / f"{stamp}{suffix}.md").write_text(md)
    (RESULTS / f"{stamp}{suffix}.json").write_text(json.dumps({"meta": meta, "params": p, "results": results},
                                                              indent=1, default=str))
    if not args.quick:
        (RESULTS / "LATEST.md").write_text(md)
    print(md)
    print(f"took {meta['seconds']} s; wrote {RESULTS / (stamp + suffix)}.md")


if __name__ == "__main__":
    asyncio.run(main())
