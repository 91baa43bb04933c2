"""Parley vs Synapse on the same machine, one load generator: writes bench/results/<stamp>.md + .json
and refreshes bench/results/LATEST.md.

    python -m bench.run            # full run (under 10 minutes on 2 cores)
    python -m bench.run --quick    # about a minute: Parley (SQLite) and Synapse, small sizes
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
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from bench import workloads as w
from bench.servers import (
    ROOT,
    Server,
    SynapseUnavailable,
    ensure_synapse,
    postgres_version,
    start_parley,
    start_synapse,
    stop,
    synapse_version,
)

RESULTS = ROOT / "bench" / "results"
SYNAPSE = "Synapse (PostgreSQL)"
WORKERS = "Parley (2 workers, PostgreSQL + Redis)"

FULL: dict[str, Any] = {
    "setups": ["sqlite", "postgres", "workers", "synapse"],
    "repeats": 3,
    "send_configs": [(1, 5), (10, 5), (50, 5), (1, 100), (10, 100), (50, 100)],
    "send_total": {1: 40, 10: 150, 50: 200},  # messages per repeat, by number of senders
    "delivery_samples": 30,
    "sync_per_room": 10, "sync_rooms": [50, 200],
    "pagination_events": [300, 1000],
    "create_samples": 10,
    "members": [50, 200],
    "growth_users": [1000],
}
QUICK: dict[str, Any] = {
    "setups": ["sqlite", "synapse"],
    "repeats": 3,
    "send_configs": [(1, 5), (10, 5)],
    "send_total": {1: 20, 10: 60},
    "delivery_samples": 15,
    "sync_per_room": 5, "sync_rooms": [20],
    "pagination_events": [200],
    "create_samples": 4,
    "members": [20],
    "growth_users": [150],
}
ISSUE_SIZES = ("issue sizes: initial /sync 200 rooms × 50 messages; /messages through 10,000 events; "
               "a 2,000-member room; growth 10 → 1,000 users and 1,000 → 100,000 events")


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def _busy_ticks() -> tuple[int, int]:
    with open("/proc/stat") as f:
        vals = [int(x) for x in f.readline().split()[1:]]
    idle = vals[3] + vals[4]
    return sum(vals[:8]) - idle, sum(vals[:8])


async def other_load(seconds: float = 2.0) -> float:
    """Cores busy on this machine while no benchmark server runs: other people's work skews figures."""
    b0, t0 = _busy_ticks()
    await asyncio.sleep(seconds)
    b1, t1 = _busy_ticks()
    return (b1 - b0) / max(t1 - t0, 1) * (os.cpu_count() or 1)


async def repeat(n: int, fn: w.Measure) -> dict[str, Any]:
    """Run `fn` n times; each numeric figure becomes the median, with its spread (max/min)."""
    runs = [await fn() for _ in range(n)]
    out: dict[str, Any] = {"_runs": runs, "_spread": {}}
    for k, v in runs[0].items():
        if isinstance(v, (int, float)):
            vals = [r[k] for r in runs]
            out[k] = statistics.median(vals)
            lo, hi = min(vals), max(vals)
            out["_spread"][k] = (hi / lo) if lo > 0 else 1.0
    return out


async def measure(server: Server, p: dict[str, Any]) -> dict[str, Any]:
    n = p["repeats"]
    res: dict[str, Any] = {"idle": w.memory(server)}
    c = w.Client(server)
    growth: list[dict[str, Any]] = []
    probe = w.Probe(c)

    async def checkpoint(label: str) -> None:
        growth.append({"after": label, **await probe.run()})
        log(f"  {label}: {c.users_registered} users, ~{c.events_written} events")

    async def phase(name: str, body: Callable[[], Awaitable[None]]) -> None:
        # a failing phase (say a server error) is reported and the run goes on with the next one
        try:
            await body()
        except Exception as e:  # noqa: BLE001
            log(f"  {name} FAILED: {e}")
            c.errors.append(f"{name} aborted: {str(e)[:400]}")

    async def sends() -> None:
        fixtures = {rooms: w.SendFixture(c, rooms) for _, rooms in p["send_configs"]}
        for senders, rooms in p["send_configs"]:
            res[f"send_{senders}x{rooms}"] = await repeat(n, lambda s=senders, r=rooms: w.send_throughput(
                c, fixtures[r], s, p["send_total"][s]))

    async def delivery() -> None:
        dfx = w.DeliveryFixture(c)
        res["delivery_sync"] = await repeat(n, lambda: w.delivery_latency(c, p["delivery_samples"], fx=dfx))
        if server.name.startswith("Parley"):
            res["delivery_ws"] = await repeat(n, lambda: w.delivery_latency(c, p["delivery_samples"], True, dfx))

    async def syncs() -> None:
        sfx = w.SyncFixture(c, p["sync_per_room"])
        for rooms in p["sync_rooms"]:
            await sfx.grow_to(rooms)
            res[f"sync_{rooms}"] = await repeat(n, lambda: w.sync_measure(c, sfx))

    async def pages() -> None:
        pfx = w.PaginationFixture(c)
        for events in p["pagination_events"]:
            await pfx.grow_to(events)
            res[f"messages_{events}"] = await repeat(n, lambda: w.pagination(c, pfx))

    async def rooms() -> None:
        owner, = await c.users(1)
        res["create"] = await repeat(n, lambda: w.create_rooms_latency(c, owner, p["create_samples"]))
        mfx = w.MembersFixture(c)
        for m in p["members"]:
            res[f"join_{m}"] = await mfx.grow_to(m)
            res[f"member_sync_{m}"] = await repeat(n, lambda: w.member_sync(c, mfx))

    try:
        await phase("growth probe", lambda: checkpoint("start"))
        for name, body in (("send workloads", sends), ("delivery", delivery), ("sync workloads", syncs),
                           ("pagination workloads", pages), ("room workloads", rooms)):
            t0 = time.monotonic()
            await phase(name, body)
            log(f"  {name}: {time.monotonic() - t0:.0f} s")
            if name != "delivery":
                await phase("growth probe", lambda name=name: checkpoint(name))
        for users in p["growth_users"]:
            await phase("user growth", lambda users=users: w.fill_users(c, users))
            await phase("growth probe", lambda users=users: checkpoint(f"{users} users"))
        res["peak"] = w.memory(server)
        res["growth"] = growth
        res["errors"] = c.errors
    finally:
        await c.close()
    return res


# --- report -----------------------------------------------------------------------------------

def _git(*args: str) -> str:
    try:
        out = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=False)
        return out.stdout.strip() or "?"
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
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return {"nproc": os.cpu_count(), "cpu_model": model, "memory_gib": round(mem, 1),
            "kernel": platform.release(), "python": platform.python_version()}


def fmt(v: Any) -> str:
    if v is None or (isinstance(v, float) and v != v):
        return "—"
    if isinstance(v, float):
        if v >= 100:
            return f"{v:,.0f}"
        return f"{v:.1f}" if v >= 10 else f"{v:.2f}"
    return f"{v:,}"


def _short(setup: str) -> str:
    names = {"Parley (SQLite)": "SQLite", "Parley (PostgreSQL)": "PG", WORKERS: "2w", SYNAPSE: "Synapse"}
    return names.get(setup, setup)


def build_rows(results: dict[str, dict[str, Any]], p: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per figure: each setup's median, the ratio (times better than Synapse) per Parley
    setup, the target if the issue sets one, and whether any repeat spread max/min > 1.5."""
    rows: list[dict[str, Any]] = []

    def add(section: str, label: str, key: str, field: str, higher_better: bool, target: float | None = None,
            target_label: str = "", scale: float = 1.0, ratio: bool = True) -> None:
        vals: dict[str, Any] = {}
        wide: list[str] = []
        for setup, r in results.items():
            entry = r.get(key) if isinstance(r, dict) else None
            v = entry.get(field) if isinstance(entry, dict) else None
            vals[setup] = v * scale if isinstance(v, (int, float)) else None
            spread = entry.get("_spread", {}).get(field) if isinstance(entry, dict) else None
            if spread and spread > 1.5:
                wide.append(f"{_short(setup)} {spread:.1f}")
        syn = vals.get(SYNAPSE)
        ratios = {}
        for setup, v in vals.items():
            if ratio and setup.startswith("Parley") and v and syn:
                ratios[setup] = (v / syn) if higher_better else (syn / v)
        rows.append({"section": section, "label": label, "values": vals, "ratios": ratios, "target": target,
                     "target_label": target_label, "wide": wide, "higher_better": higher_better})

    for s, r in p["send_configs"]:
        k = f"send_{s}x{r}"
        sec = f"1. send, {s} sender{'s' if s > 1 else ''} over {r} rooms"
        add(sec, "throughput (msg/s)", k, "throughput", True, 10, "≥ 10x")
        add(sec, "latency p50 (ms)", k, "p50", False)
        add(sec, "latency p95 (ms)", k, "p95", False, 10, "≤ 1/10")
        add(sec, "latency p99 (ms)", k, "p99", False)
        add(sec, "8. CPU s per 1,000 messages (server)", k, "cpu_s_per_1000", False)
        add(sec, "cores busy: server (diagnostic)", k, "server_cores", False, ratio=False)
        add(sec, "cores busy: load generator (diagnostic)", k, "client_cores", False, ratio=False)
    for q in ("p50", "p95", "p99"):
        add("2. delivery", f"send → long-poll /sync {q} (ms)", "delivery_sync", q, False,
            *((4, "≤ 1/4") if q == "p95" else (None, "")))
    for q in ("p50", "p95", "p99"):
        add("2. delivery", f"send → WebSocket frame {q} (ms, Parley only)", "delivery_ws", q, False)
    for rooms in p["sync_rooms"]:
        k = f"sync_{rooms}"
        sec = f"3. /sync, user in {rooms} rooms × {p['sync_per_room']} msgs"
        big = rooms == max(p["sync_rooms"])
        add(sec, "initial /sync, fresh device (ms)", k, "initial_ms", False, *((5, "≤ 1/5") if big else (None, "")))
        add(sec, "initial /sync response size (KiB)", k, "initial_kib", False)
        add(sec, "incremental /sync, nothing new (ms)", k, "incr_empty_ms", False)
        add(sec, "incremental /sync, one new event (ms)", k, "incr_one_ms", False)
    for ev in p["pagination_events"]:
        k = f"messages_{ev}"
        sec = f"4. /messages back through a {ev:,}-event room, pages of 100"
        add(sec, "whole room (ms)", k, "total_ms", False)
        add(sec, "page p50 (ms)", k, "page_p50", False)
        add(sec, "page p95 (ms)", k, "page_p95", False)
    add("5. rooms", f"createRoom p50 (ms, {p['create_samples']} sequential)", "create", "p50", False)
    add("5. rooms", "createRoom p95 (ms)", "create", "p95", False)
    prev = 1
    for m in p["members"]:
        add("5. rooms", f"join p50 while the room grows {prev} → {m} members (ms)", f"join_{m}", "p50", False)
        add("5. rooms", f"join p95 while the room grows {prev} → {m} members (ms)", f"join_{m}", "p95", False)
        add("5. rooms", f"initial /sync of a member, {m}-member room (ms)", f"member_sync_{m}", "ms", False)
        add("5. rooms", f"initial /sync size, {m}-member room (KiB)", f"member_sync_{m}", "kib", False)
        prev = m
    add("7. memory", "RSS at idle after start (MiB, sum over processes)", "idle", "rss_kib", False, scale=1 / 1024)
    add("7. memory", "peak RSS, VmHWM at the end (MiB, sum over processes)", "peak", "hwm_kib", False, 2, "≤ 1/2",
        scale=1 / 1024)
    return rows


def met_cell(row: dict[str, Any], parleys: list[str]) -> str:
    if row["target"] is None:
        return ""
    cells = []
    for s in parleys:
        r = row["ratios"].get(s)
        cells.append("—" if r is None else ("**yes**" if r >= row["target"] else "no"))
    return " / ".join(cells)


def render(results: dict[str, dict[str, Any]], p: dict[str, Any],
           meta: dict[str, Any]) -> tuple[str, list[dict[str, Any]]]:
    setups = [s for s in results if "error" not in results[s]]
    failed = {s: r["error"] for s, r in results.items() if "error" in r}
    errors = {s: r.get("errors") for s, r in results.items() if r.get("errors")}
    parleys = [s for s in setups if s.startswith("Parley")]
    rows = build_rows({s: results[s] for s in setups}, p)
    m = meta["machine"]
    out = [f"# Parley vs Synapse — {meta['date']} ({meta['mode']} run)", "",
           f"- **machine**: nproc {m['nproc']}, {m['memory_gib']} GiB, {m['cpu_model']}, Linux {m['kernel']}",
           f"- **versions**: Parley {meta['parley_version']} (git {meta['parley_commit']}), "
           f"Synapse {meta['synapse_version']}, PostgreSQL {meta['postgres_version']}, Python {m['python']}",
           f"- **setups**: {', '.join(results)}; servers run one after the other (never competing for the "
           "cores); the load generator (one asyncio process, httpx) runs on the same machine",
           f"- **parameters**: `{json.dumps({k: v for k, v in p.items() if k != 'setups'})}`",
           f"- **scaled down** to keep a run under 10 minutes on 2 cores ({ISSUE_SIZES}); "
           "Synapse stores about 25–50 messages/s here, so building the issue's sizes would take it 5–40 minutes each",
           f"- each workload repeated {p['repeats']}x, the median shown; *wide* = max/min over the repeats > 1.5 "
           "(join rows: percentiles over all joins of one growth phase)",
           "- **ratio** = how many times better Parley is than Synapse (throughput: Parley/Synapse; "
           "times and sizes: Synapse/Parley), one per Parley setup; **met?** likewise, per Parley setup",
           f"- run took {meta['seconds']} s",
           "- **machine load** (cores busy with other work, sampled 2 s before each setup started): "
           + ", ".join(f"{_short(s)} {results[s].get('busy_before', float('nan')):.2f}" for s in setups)
           + ("  ⚠ **busy machine: figures are skewed**" if any(results[s].get("busy_before", 0) > 0.3
                                                               for s in setups) else ""), ""]
    # headline
    out += ["## Targets", "", "| target | " + " | ".join(parleys) + f" | {SYNAPSE} | met? |",
            "|---|" + "---|" * (len(parleys) + 2)]
    for row in rows:
        if row["target"] is not None:
            vals = " | ".join(f"{fmt(row['values'].get(s))} ({row['ratios'][s]:.1f}x)" if s in row["ratios"]
                              else fmt(row["values"].get(s)) for s in parleys)
            out.append(f"| {row['section']}: {row['label']} {row['target_label']} | {vals} | "
                       f"{fmt(row['values'].get(SYNAPSE))} | {met_cell(row, parleys)} |")
    out += ["", "## All figures", ""]
    ratio_head = "ratio " + " / ".join(_short(s) for s in parleys)
    out += ["| workload | figure | " + " | ".join(setups) + f" | {ratio_head} | target | met? | wide |",
            "|---|---|" + "---|" * (len(setups) + 4)]
    for row in rows:
        vals = " | ".join(fmt(row["values"].get(s)) for s in setups)
        ratios = " / ".join(f"{row['ratios'][s]:.1f}x" if s in row["ratios"] else "—" for s in parleys)
        out.append(f"| {row['section']} | {row['label']} | {vals} | {ratios} | {row['target_label']} | "
                   f"{met_cell(row, parleys)} | {', '.join(row['wide'])} |")
    if WORKERS not in results:
        out.append(f"| — | {WORKERS} | not yet available in this run"
                   f"{' (quick mode runs Parley SQLite and Synapse only)' if meta['mode'] == 'quick' else ''} "
                   "| | | | | |")
    for s, err in failed.items():
        out.append(f"| — | {s} | **not available**: {err.splitlines()[0][:200]} | | | | | |")
    if errors:
        out += ["", "## Errors met during the run", "",
                "Server errors are counted, not fatal: failed sends are left out of the figures; a phase "
                "that aborted leaves its rows empty.", ""]
        for s, errs in errors.items():
            out += [f"- **{s}**: " + e.replace("\n", " ")[:500] for e in errs]
    # growth
    out += ["", "## 6. Growth: the same small probe as the server fills up", "",
            "After each phase the same probe runs: 20 sequential sends (p50), a fresh device's initial "
            "/sync of a user in 5 rooms, one /messages page of 50, 10 registrations (p50). *users* and "
            "*events* are counted by the load generator (events ≈ messages + joins + 5 per createRoom; "
            "Parley's count is higher by the WebSocket delivery messages, which Synapse has no endpoint for). "
            "Scaled down from the issue's 10 → 1,000 users and "
            "1,000 → 100,000 events.", ""]
    probes = [("send_p50", "send p50 ms"), ("sync_ms", "initial sync ms"), ("messages_ms", "/messages ms"),
              ("register_p50", "register p50 ms")]
    names = " / ".join(_short(s) for s in setups)
    out.append("| after | users | events: " + names + " | "
               + " | ".join(f"{lab}: " + names for _, lab in probes) + " |")
    out.append("|---|---|---|" + "---|" * len(probes))
    npoints = min((len(results[s].get("growth", [])) for s in setups), default=0)
    for i in range(npoints):
        g0 = results[setups[0]]["growth"][i]
        cells = []
        for key, _ in probes:
            cells.append(" / ".join(fmt(results[s]["growth"][i][key]) for s in setups))
        events = " / ".join(f"{results[s]['growth'][i]['events']:,}" for s in setups)
        out.append(f"| {g0['after']} | {g0['users']:,} | {events} | " + " | ".join(cells) + " |")
    if SYNAPSE in setups and parleys and npoints:
        first, last = results[parleys[0]]["growth"], results[SYNAPSE]["growth"]
        out += ["", f"Send p50 ratio (Synapse/{_short(parleys[0])}) along the curve: "
                + ", ".join(f"{ls['send_p50'] / fs['send_p50']:.1f}x" for fs, ls in zip(first, last) if fs['send_p50'])]
    out += ["", "Rows are explained in bench/README.md."]
    return "\n".join(out) + "\n", rows


async def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="small sizes, Parley (SQLite) and Synapse only")
    ap.add_argument("--setups", help="comma-separated subset of sqlite,postgres,workers,synapse")
    args = ap.parse_args()
    p = dict(QUICK if args.quick else FULL)
    if args.setups:
        p["setups"] = args.setups.split(",")
    if "synapse" in p["setups"]:
        try:
            ensure_synapse()
        except SynapseUnavailable as e:
            print(f"error: Synapse, the baseline, is not available.\n{e}", file=sys.stderr)
            return 2
    results: dict[str, dict[str, Any]] = {}
    tmp = Path(tempfile.mkdtemp(prefix="parley-bench-"))
    started = time.monotonic()
    try:
        for setup in p["setups"]:
            busy = await other_load()
            if busy > 0.3:
                log(f"warning: {busy:.1f} cores busy with other work before {setup}: figures will be skewed")
            t0 = time.monotonic()
            try:
                server = await (start_synapse(tmp / setup) if setup == "synapse" else start_parley(setup, tmp / setup))
            except Exception as e:
                if setup in ("synapse", "sqlite"):
                    raise
                log(f"{setup}: could not start: {e}")
                results[{"postgres": "Parley (PostgreSQL)", "workers": WORKERS}[setup]] = {"error": str(e)}
                continue
            try:
                log(f"{server.name} on {', '.join(server.bases)} ...")
                results[server.name] = await measure(server, p)
                results[server.name]["busy_before"] = round(busy, 2)
            finally:
                await stop(server)
            log(f"{server.name} done in {time.monotonic() - t0:.0f} s")
    except BaseException:
        print(f"server logs kept in {tmp}", file=sys.stderr)
        raise
    if any(r.get("errors") or r.get("error") for r in results.values()):
        print(f"errors met: server logs kept in {tmp}", flush=True)
    else:
        shutil.rmtree(tmp, ignore_errors=True)
    meta = {"date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"), "machine": machine(),
            "parley_commit": _git("rev-parse", "--short", "HEAD") + ("+dirty" if _git("status", "--porcelain") != "?"
                                                                     and _git("status", "--porcelain") else ""),
            "parley_version": _parley_version(),
            "synapse_version": synapse_version() if "synapse" in p["setups"] else "—",
            "postgres_version": await postgres_version(),
            "mode": "quick" if args.quick else "full", "seconds": round(time.monotonic() - started)}
    md, rows = render(results, p, meta)
    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%d-%H%M")
    suffix = ("-quick" if args.quick else "") + ("-partial" if args.setups else "")
    (RESULTS / f"{stamp}{suffix}.md").write_text(md)
    (RESULTS / f"{stamp}{suffix}.json").write_text(json.dumps(
        {"meta": meta, "params": p, "rows": rows, "results": results}, indent=1, default=str))
    if not args.setups:  # a run over a chosen subset of setups is not a full report
        (RESULTS / "LATEST.md").write_text(md)
    print(md)
    print(f"took {meta['seconds']} s; wrote {RESULTS / (stamp + suffix)}.md (+ .json) and LATEST.md")
    return 0


def rerender(json_path: Path) -> None:
    """Write the Markdown report again from its JSON twin (after a change to the report's layout)."""
    d = json.loads(json_path.read_text())
    md, _ = render(d["results"], d["params"], d["meta"])
    json_path.with_suffix(".md").write_text(md)


def _parley_version() -> str:
    try:
        from importlib.metadata import version
        return version("parley")
    except Exception:  # noqa: BLE001
        return "?"


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
