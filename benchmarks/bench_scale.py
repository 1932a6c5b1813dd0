"""Benchmark: how the mining job scales -- driver memory over N inputs, files per 10K videos, Ray vs local.

Not a test: run it by hand. The full run takes 20-50 min on 2 cores (most of it the 10⁶-input runs);
``--quick`` (10⁴ dry, 2.5·10⁴ committed: both plan paths; 50 mined; 128 videos counted; 4 clips)
about 3 min on an idle 2-core machine. Every figure is measured in this run; on a shared
machine compare the ratios, not the absolute times.

The code measured is a copy of the working tree's package taken at the start (the driver, every
subprocess and the Ray workers import it; checked), so that concurrent edits by other sessions
cannot change it mid-run; ``--no-snapshot`` imports the tree live. The JSON records the commit, the
files changed in the working tree and a hash of the copy. Results are saved after each part.

(1) Driver memory over N inputs. One tiny real clip (64x48, 8 frames, one that yields frame rows)
    is hard-linked N times (hard links: every entry is a distinct real item -- symlinks would be
    merged by real path; one copy of the clip per 50,000 links, ext4's limit being 65,000) and
    listed, by absolute path, in an ``@list`` file. In a fresh
    subprocess per (mode, N) the driver's RSS is read after the imports and ``ray.init``, the
    kernel's peak mark is reset there (``/proc/self/clear_refs``) and the peak (``VmHWM``) read at
    the end: growth = peak - RSS after init (``ru_maxrss`` where /proc is missing). A thread also
    samples the RSS every 0.1 s and keeps the highest per phase of the job (resolve, plan,
    anti-join, mine, finalize: switched where the engine calls those functions). Modes:

    * ``dry``  -- ``run_mine_job_ray(..., dry_run=True)`` into an empty output: resolve, plan, count;
    * ``done`` -- a full run whose N inputs are all committed already: the output is built
                  directly with ``ShardWriter(out).task(key)`` (1000 items per task, one commit
                  record each, no data files), so the run resolves N inputs, checks them against
                  N committed keys, mines nothing and finalizes (``videos_skipped == N``);
    * ``mine`` -- a full run that mines N tiny items with 2 actors (small N only).

    The path each run took is read off the engine (``ray_plan.finish_in_driver``: the driver plans,
    up to ``plan_in_driver_max`` resolved inputs; ``ray_plan.dedup_dataset``: Ray Data
    aggregations and joins above it). ``--join-at`` adds a ``dry`` run with
    ``plan_in_driver_max=0`` (the join path at a size the driver path would take).

(2) Files per 10K videos. M hard links of the same clip are mined by the Ray engine (2 actors,
    default settings: ``shard_size`` 256 MB, ``items_per_task`` 32) and the objects under the
    output counted; the same M items are mined by the code of commit fea1f8f (one ``frames``
    file and one ``stats/<h>.json`` marker per video; extracted with ``git archive`` into a temp
    dir and run in a subprocess) and counted too. Scaled linearly to 10K videos (valid because M is
    large enough for every task to get ``items_per_task`` items).

(3) Ray vs the single-process miner. ``--videos`` synthetic clips (224x160, 24 frames) mined,
    each time into a fresh output, interleaved ``--reps`` times: ``local`` (``run_mine_job``),
    ``ray-1`` and ``ray-2`` (``run_mine_job_ray`` with 1 / 2 actors; Ray started once beforehand
    by ``ray.init`` and reused, its start timed apart). Best of the repetitions; the ratio is
    frames/s against ``local``. ``--cold`` also times ``ray-cold-2`` (no Ray running: the engine
    starts and stops one, what ``dynocc mine`` does on one machine); the full run also measures
    per-stage rates in this process on 10 clips (decode alone, decode+mine, the task writer).

    RAY_AUTH_MODE=disabled .venv/bin/python benchmarks/bench_scale.py [--quick] [--out bench_out/scale.json]
        [--sizes 10000,100000,1000000] [--done-sizes ...] [--join-at 10000] [--mine-n 1000]
        [--files-m 320] [--videos 50] [--reps 2] [--cold] [--parts memory,files,throughput]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("RAY_AUTH_MODE", "disabled")

OLD_COMMIT = "fea1f8f"  # the last commit with one frames file + one stats marker per video
ITEMS_PER_RECORD = 1000  # items per commit record of the pre-committed outputs
REPO = Path(__file__).resolve().parent.parent


def _ray_init():
    import ray

    ray.init(address="local", num_cpus=os.cpu_count() or 1, include_dashboard=False, log_to_driver=False,
             logging_level="WARNING")


# --------------------------------------------------------------------------- inputs


def make_clips(folder: Path, n: int, height: int, width: int, n_frames: int, first_seed: int = 0) -> list[str]:
    from dynocc.factory.io.decode import write_video
    from dynocc.factory.testing.synthetic import make_scene

    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for seed in range(first_seed, first_seed + n):
        path = folder / f"clip{seed:03d}.mp4"
        write_video(make_scene(seed, height=height, width=width, n_frames=n_frames, n_static=0).frames, path)
        paths.append(str(path))
    return paths


def make_master(folder: Path) -> tuple[str, dict]:
    """A tiny clip (64x48, 8 frames) that yields frame rows (so that each item writes data)."""
    from dynocc.factory.config import MinerConfig
    from dynocc.factory.engine.job import run_mine_job

    for seed in range(20):
        clip = make_clips(folder / "candidates", 1, 48, 64, 8, first_seed=seed)[0]
        s = run_mine_job([clip], str(folder / f"probe{seed}"), MinerConfig())
        if s.frames and s.videos_ok == 1:
            master = folder / "master.mp4"
            shutil.move(clip, master)
            return str(master), {"seed": seed, "size": "64x48", "frames": 8, "frames_with_pairs": s.frames,
                                 "pairs": s.pairs, "bytes": master.stat().st_size}
    raise RuntimeError("no seed in 0..19 gives a tiny clip with frame rows")


LINKS_PER_COPY = 50_000  # ext4 allows 65,000 links per inode: a copy of the clip per 50,000 links


def make_links(folder: Path, master: str, n: int, prefix: str = "t") -> list[str]:
    """``n`` hard links (distinct real items) to copies of ``master`` (one copy per LINKS_PER_COPY
    links, kept in ``folder/src``), absolute paths; existing ones kept."""
    folder = folder.absolute()
    (folder / "src").mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        src = folder / "src" / f"copy{i // LINKS_PER_COPY:03d}.mp4"
        if i % LINKS_PER_COPY == 0 and not src.exists():
            shutil.copyfile(master, src)
        p = os.path.join(folder, f"{prefix}{i:07d}.mp4")
        try:
            os.link(src, p)
        except FileExistsError:
            pass
        paths.append(p)
    return paths


def write_list(path: Path, entries: list[str]) -> str:
    with open(path, "w") as f:
        f.write("\n".join(entries) + "\n")
    return "@" + str(path)


def build_committed(out: Path, keys: list[str]) -> list[str]:
    """Commit every key (no rows, no failures) through the product's writer, ITEMS_PER_RECORD per
    task: one commit record per task. Returns the records (relative), in key order."""
    from dynocc.factory.io.writer import ShardWriter, task_key

    writer = ShardWriter(str(out))
    records = []
    for i in range(0, len(keys), ITEMS_PER_RECORD):
        chunk = keys[i:i + ITEMS_PER_RECORD]
        task = writer.task(task_key(chunk))
        for k in chunk:
            task.begin_item(k, Path(k).stem)
            task.end_item([], 0.0)
        stats = task.close()
        records.append(stats[0].commit)
    return records


def link_committed(src: Path, records: list[str], dst: Path) -> None:
    """An output whose commit records are (hard links of) ``records`` of ``src``."""
    (dst / "commits").mkdir(parents=True, exist_ok=True)
    for rel in records:
        os.link(src / rel, dst / rel)


def per_10k(objects: dict, videos: int) -> float:
    """Objects for 10K videos: the per-task/per-video ones scaled, the job's own (``_SUCCESS``) once."""
    job = objects.get("(top)", 0)
    return (objects["total"] - job) / videos * 10_000 + job


def count_objects(out: str) -> dict:
    counts: dict[str, int] = {}
    total = 0
    for dirpath, _, files in os.walk(out):
        top = os.path.relpath(dirpath, out).split(os.sep)[0]
        top = "(top)" if top == "." else top
        counts[top] = counts.get(top, 0) + len(files)
        total += len(files)
    counts["total"] = total
    return counts


# --------------------------------------------------------------------------- (1) driver memory


def _status_mb(field: str) -> float | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return None


def _reset_peak() -> bool:
    """Reset the kernel's peak-RSS mark (VmHWM) of this process (Linux >= 4.0)."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _peak_mb() -> float:
    """Peak RSS since the last :func:`_reset_peak` (VmHWM), else since start (``ru_maxrss``)."""
    hwm = _status_mb("VmHWM")
    return hwm if hwm is not None else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


class _PhaseSampler:
    """Samples this process's RSS every ``period`` s and keeps the highest per phase of the job
    (phases switch where the engine calls the wrapped functions below)."""

    def __init__(self, period: float = 0.1):
        import threading

        self.phase, self.peaks, self.seconds = "setup", {}, {}
        self._since = time.perf_counter()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(period,), daemon=True)

    def _run(self, period: float) -> None:
        while not self._stop.is_set():
            self.sample()
            self._stop.wait(period)

    def sample(self) -> None:
        rss = _status_mb("VmRSS")
        if rss is not None and rss > self.peaks.get(self.phase, 0.0):
            self.peaks[self.phase] = rss

    def enter(self, phase: str) -> None:
        self.sample()
        now = time.perf_counter()
        self.seconds[self.phase] = self.seconds.get(self.phase, 0.0) + now - self._since
        self.phase, self._since = phase, now
        self.sample()

    def start(self) -> None:
        self._since = time.perf_counter()
        self._thread.start()

    def stop(self) -> None:
        self.enter("end")
        self._stop.set()
        self._thread.join()


def memory_child(mode: str, listarg: str, out: str, n: int, plan_in_driver_max: int) -> None:
    """Runs in a fresh subprocess; prints one JSON line."""
    t_start = time.perf_counter()
    import ray
    import ray.data  # noqa: F401 - imported before the peak reset: a constant, not the job's

    import dynocc.factory
    from dynocc.factory.config import MinerConfig
    from dynocc.factory.engine import ray_engine, ray_plan
    from dynocc.factory.engine.ray_engine import run_mine_job_ray
    from dynocc.factory.io.writer import ShardWriter

    sampler = _PhaseSampler()
    paths: list[str] = []
    marks: dict = {}

    def wrap(owner, name: str, phase: str, path: str | None = None) -> None:
        fn = getattr(owner, name)

        def wrapped(*a, **k):
            if path:
                paths.append(path)
            sampler.enter(phase)
            return fn(*a, **k)

        setattr(owner, name, wrapped)

    # Phases, in the order the engine runs them (each call is lazy Ray Data: the work of a phase is
    # what runs until the next call): resolve (+ materialize, count) -> plan (driver: take_all, dedup,
    # commit records streamed; join: aggregations + joins, materialized) -> anti-join (+ counts) ->
    # mine (the pipeline, iter_rows) -> finalize (the driver sums the commit records).
    wrap(ray_plan, "resolved_dataset", "resolve")
    wrap(ray_plan, "finish_in_driver", "plan", "driver")
    wrap(ray_plan, "dedup_dataset", "plan", "join")
    wrap(ray_plan, "not_committed", "anti-join")
    wrap(ray_engine, "_pipeline", "mine")
    finalize = ShardWriter.finalize

    def timed_finalize(self, *a, **k):
        marks["peak_before_finalize_mb"] = _peak_mb()
        sampler.enter("finalize")
        t = time.perf_counter()
        try:
            return finalize(self, *a, **k)
        finally:
            marks["finalize_seconds"] = time.perf_counter() - t

    ShardWriter.finalize = timed_finalize
    config = MinerConfig()
    t = time.perf_counter()
    _ray_init()
    ray_init_s = time.perf_counter() - t
    base = _status_mb("VmRSS") or _peak_mb()
    reset = _reset_peak()  # else the peak of the imports and ray.init hides the growth
    sampler.start()
    t = time.perf_counter()
    s = run_mine_job_ray([listarg], out, config, actors=2, dry_run=(mode == "dry"),
                         plan_in_driver_max=plan_in_driver_max)
    seconds = time.perf_counter() - t
    sampler.stop()
    peak = _peak_mb()  # before ray.shutdown
    rss_end = _status_mb("VmRSS")
    ray.shutdown()
    checks = {"dry": s.to_mine == n and s.videos_skipped == 0,
              "done": s.videos_skipped == n and s.to_mine == 0 and not s.videos_ok and not s.videos_failed,
              "mine": s.videos_ok == n and not s.videos_failed}
    result = {"mode": mode, "n": n, "path": "+".join(paths) or "?", "plan_in_driver_max": plan_in_driver_max,
              "summary": {**s.as_dict(), "to_mine": s.to_mine}, "ok": checks[mode], "seconds": seconds,
              "ray_init_seconds": ray_init_s, "peak_reset": reset, "rss_after_init_mb": base,
              "peak_rss_mb": peak, "growth_mb": peak - base, "rss_end_mb": rss_end,
              "phase_growth_mb": {k: v - base for k, v in sampler.peaks.items() if k != "end"},
              "phase_seconds": {k: v for k, v in sampler.seconds.items()},
              "package": os.path.dirname(dynocc.factory.__file__),
              "child_seconds": time.perf_counter() - t_start, **marks}
    print("RESULT " + json.dumps(result), flush=True)


def _child(args: list[str], timeout: float, env: dict | None = None) -> tuple[dict | None, str]:
    cmd = [sys.executable, os.path.abspath(__file__), *args]
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired as e:
        return None, f"timed out after {timeout:.0f} s\n{(e.stderr or b'')[-2000:]!r}"
    line = next((ln for ln in p.stdout.splitlines() if ln.startswith("RESULT ")), None)
    if p.returncode or line is None:
        return None, f"exit {p.returncode}\n{p.stdout[-1500:]}\n{p.stderr[-3000:]}"
    return json.loads(line[len("RESULT "):]), ""


def memory(tmp: Path, master: str, sizes: list[int], done_sizes: list[int], mine_sizes: list[int],
           join_at: list[int], timeout: float) -> dict:
    from dynocc.factory.config import EngineConfig

    default_max = EngineConfig().plan_in_driver_max
    n_max = max(sizes + done_sizes + join_at + [0])
    t = time.perf_counter()
    keys = make_links(tmp / "items", master, n_max)
    links_s = time.perf_counter() - t
    print(f"  {n_max} hard links: {links_s:.1f} s", flush=True)
    t = time.perf_counter()
    full = tmp / "committed-all"
    n_done = max(done_sizes + [0])
    records = build_committed(full, keys[:n_done])
    build_s = time.perf_counter() - t
    print(f"  {len(records)} commit records naming {n_done} items: {build_s:.1f} s", flush=True)
    rows: list[dict] = []
    plan = [("dry", n, default_max) for n in sizes] + [("dry", n, 0) for n in join_at] + \
           [("done", n, default_max) for n in done_sizes] + [("mine", n, default_max) for n in mine_sizes]
    for mode, n, pmax in plan:
        if mode == "mine":
            entries = make_links(tmp / f"mine{n}", master, n, prefix="m")  # fresh items, fresh output
        else:
            entries = keys[:n]
        listarg = write_list(tmp / f"list-{mode}-{n}.txt", entries)
        out = tmp / f"mem-{mode}-{n}-{pmax}"
        shutil.rmtree(out, ignore_errors=True)
        if mode == "done":
            link_committed(full, records[:-(-n // ITEMS_PER_RECORD)], out)
        child = ["--_memory-child", mode, listarg, str(out), str(n), str(pmax)]
        r, err = _child(child, timeout)
        if r is None and "timed out" not in err:  # e.g. a module caught mid-edit by a concurrent session
            print(f"  {mode:<4} N={n:<8} failed once, run again: {err[-600:]}", flush=True)
            shutil.rmtree(out, ignore_errors=True)
            if mode == "done":
                link_committed(full, records[:-(-n // ITEMS_PER_RECORD)], out)
            r, err = _child(child, timeout)
        shutil.rmtree(out, ignore_errors=True)
        if r is None:
            print(f"  {mode:<4} N={n:<8} FAILED: {err}", flush=True)
            rows.append({"mode": mode, "n": n, "plan_in_driver_max": pmax, "error": err[-3000:]})
            continue
        snap = json.loads(os.environ.get(SNAPSHOT_ENV) or "null")
        if snap and not r["package"].startswith(snap["folder"]):
            r["ok"] = False
            r["error_package"] = f"imported {r['package']}, not the snapshot"
        rows.append(r)
        fin = (f", finalize {r['finalize_seconds']:.1f} s, peak before it {r['peak_before_finalize_mb']:.0f} MB"
               if "finalize_seconds" in r else "")
        print(f"  {mode:<4} N={n:<8} path {r['path']:<6} growth {r['growth_mb']:7.1f} MB (peak {r['peak_rss_mb']:.0f}, "
              f"after init {r['rss_after_init_mb']:.0f})  {r['seconds']:7.1f} s  ok={r['ok']}{fin}", flush=True)
    return {"plan_in_driver_max_default": default_max, "items_per_record": ITEMS_PER_RECORD,
            "links_seconds": links_s, "build_committed_seconds": build_s, "records": len(records), "runs": rows}


def spread(rows: list[dict], mode: str, pmax_default: int) -> dict | None:
    got = {r["n"]: r["growth_mb"] for r in rows
           if r.get("mode") == mode and "growth_mb" in r and r["plan_in_driver_max"] == pmax_default}
    if len(got) < 2:
        return None
    lo, hi = min(got), max(got)
    return {"from_n": lo, "to_n": hi, "growth_from_mb": got[lo], "growth_to_mb": got[hi],
            "spread_mb": max(got.values()) - min(got.values())}


# --------------------------------------------------------------------------- (2) files per 10K videos


def old_tree(tmp: Path) -> Path:
    """The package as of OLD_COMMIT, importable as ``dynocc`` (``PYTHONPATH=<returned>``)."""
    src = tmp / "oldtree"
    src.mkdir()
    archive = subprocess.run(["git", "-C", str(REPO), "archive", OLD_COMMIT, *PACKAGE_DIRS],
                             capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(src)], input=archive, check=True)
    _package_layout(src, tmp / "oldpkg")
    return tmp / "oldpkg"


def old_layout_child(listarg: str, out: str) -> None:
    import dynocc.factory
    from dynocc.factory.config import MinerConfig
    from dynocc.factory.engine.job import run_mine_job

    t = time.perf_counter()
    s = run_mine_job([listarg], out, MinerConfig())
    print("RESULT " + json.dumps({"package": os.path.dirname(dynocc.factory.__file__), "summary": s.as_dict(),
                                  "seconds": time.perf_counter() - t}), flush=True)


def files(tmp: Path, master: str, m: int, actors: int) -> dict:
    from dynocc.factory.config import EngineConfig, MinerConfig
    from dynocc.factory.engine.ray_engine import run_mine_job_ray

    eng = EngineConfig()
    entries = make_links(tmp / "files-items", master, m, prefix="f")
    listarg = write_list(tmp / "files-list.txt", entries)
    out = tmp / "files-new"
    t = time.perf_counter()
    s = run_mine_job_ray([listarg], str(out), MinerConfig(), actors=actors)
    new_s = time.perf_counter() - t
    if s.videos_ok != m or s.videos_failed:
        raise RuntimeError(f"files: {s.as_dict()}")
    new = count_objects(str(out))
    new_10k = per_10k(new, m)
    result = {"videos": m, "actors": actors, "shard_size_mb": eng.shard_size, "items_per_task": eng.items_per_task,
              "new": {"objects": new, "seconds": new_s, "frames_written": s.frames, "per_10k": new_10k,
                      "commits_per_10k": new.get("commits", 0) / m * 10_000},
              "old_model_per_10k": 2 * 10_000 + 1}
    print(f"  new layout: {m} videos -> {new['total']} objects {new}  ({new_s:.1f} s, {s.frames} frame rows)",
          flush=True)
    try:
        pkg = old_tree(tmp)
        env = {**os.environ, "PYTHONPATH": str(pkg)}
        r, err = _child(["--_old-layout-child", listarg, str(tmp / "files-old")], 1200, env=env)
        if r is None:
            raise RuntimeError(err)
        if not r["package"].startswith(str(tmp)):
            raise RuntimeError(f"the old run imported {r['package']}, not the extracted tree")
        old = count_objects(str(tmp / "files-old"))
        result["old"] = {"commit": OLD_COMMIT, "objects": old, "seconds": r["seconds"], "summary": r["summary"],
                         "per_10k": per_10k(old, m),
                         "resume_list_per_10k": old.get("stats", 0) / m * 10_000}
        print(f"  old layout ({OLD_COMMIT}): {m} videos -> {old['total']} objects {old}", flush=True)
    except Exception as e:  # noqa: BLE001 - the model (2 per video) is reported instead
        result["old_error"] = f"{type(e).__name__}: {str(e)[-2000:]}"
        print(f"  old layout: could not run {OLD_COMMIT} ({result['old_error'][:300]}); using 2 per video", flush=True)
    old_per_10k = result.get("old", {}).get("per_10k", result["old_model_per_10k"])
    result["ratio_old_over_new"] = old_per_10k / new_10k
    return result


# --------------------------------------------------------------------------- (3) Ray vs local


def stage_rates(clips: list[str], tmp: Path) -> dict:
    """Decode alone, decode+mine, and the task writer, in this process, on the same clips."""
    from dynocc.factory.config import MinerConfig
    from dynocc.factory.engine.job import item_extra_stats
    from dynocc.factory.engine.miners import item_miner_for
    from dynocc.factory.io.decode import decode_frames
    from dynocc.factory.io.sources import resolve_inputs
    from dynocc.factory.io.writer import ShardWriter, task_key

    config = MinerConfig()
    t = time.perf_counter()
    decoded = 0
    for c in clips:
        for _ in decode_frames(c, config.decode):
            decoded += 1
    t_decode = time.perf_counter() - t
    items, _ = resolve_inputs(clips)
    miner = item_miner_for(config)
    task = ShardWriter(str(tmp / "out-stages")).task(task_key(it.input for it in items))
    mined = 0
    t_mine = t_write = 0.0
    for item in items:
        t = time.perf_counter()
        r = miner.mine(item)
        t_mine += time.perf_counter() - t
        mined += r.frames_mined
        t = time.perf_counter()
        task.begin_item(item.input, item.video_id)
        task.add_rows(r.frame_rows)
        task.end_item(r.failures, r.seconds, item_extra_stats(r))
        t_write += time.perf_counter() - t
    t = time.perf_counter()
    task.close()
    t_write += time.perf_counter() - t
    return {"clips": len(clips), "frames_decoded": decoded, "frames_mined": mined, "decode_fps": decoded / t_decode,
            "decode_and_mine_fps": mined / t_mine, "write_fps": mined / t_write if t_write else None,
            "decode_share_of_mine": t_decode / t_mine, "write_share_of_item": t_write / (t_mine + t_write)}


def throughput(clips: list[str], tmp: Path, reps: int, cold: bool, stages: int) -> dict:
    import ray

    from dynocc.factory.config import MinerConfig
    from dynocc.factory.engine.job import run_mine_job
    from dynocc.factory.engine.ray_engine import run_mine_job_ray

    config = MinerConfig()
    runs: dict[str, list[dict]] = {}

    def record(name: str, fn) -> None:
        out = tmp / f"out-{name}-{len(runs.get(name, []))}"
        t = time.perf_counter()
        summary = fn(str(out))
        dt = time.perf_counter() - t
        shutil.rmtree(out, ignore_errors=True)
        if summary.videos_failed or summary.videos_ok != len(clips):
            raise RuntimeError(f"{name}: {summary.as_dict()}; first failures: "
                               f"{[(f['error_type'], f['message'][:300]) for f in summary.failures[:2]]}")
        runs.setdefault(name, []).append({"seconds": dt, "frames_mined": summary.frames_mined, "pairs": summary.pairs,
                                          "fps": summary.frames_mined / dt})
        print(f"  {name:<10} {dt:7.2f} s  {summary.frames_mined / dt:7.1f} frames/s  ({summary.pairs} pairs)",
              flush=True)

    assert ray.is_initialized(), "throughput() runs with Ray started (and timed) by the caller"
    for _ in range(reps):
        record("local", lambda out: run_mine_job(clips, out, config))
        for a in (1, 2):
            record(f"ray-{a}", lambda out, a=a: run_mine_job_ray(clips, out, config, actors=a))
            assert ray.is_initialized(), "the engine shut down a Ray it did not start"
    if cold:
        ray.shutdown()
        record("ray-cold-2", lambda out: run_mine_job_ray(clips, out, config, actors=2))  # starts and stops Ray
        assert not ray.is_initialized()
    best = {name: max(rs, key=lambda r: r["fps"]) for name, rs in runs.items()}
    base = best["local"]["fps"]
    per_rep = [{name: rs[i]["fps"] / runs["local"][i]["fps"] for name, rs in runs.items()
                if name != "local" and i < len(rs) and not name.startswith("ray-cold")} for i in range(reps)]
    out = {"clips": len(clips), "reps": reps, "runs": runs,
           "best": {name: {**r, "ratio_vs_local": r["fps"] / base} for name, r in best.items()},
           "ratio_per_rep": per_rep}
    if stages:
        out["stages"] = stage_rates(clips[:stages], tmp)
    return out


# --------------------------------------------------------------------------- main


def git_state() -> dict:
    """The code measured: HEAD and the files changed in the working tree (others may be editing)."""
    def git(*a: str) -> str:
        p = subprocess.run(["git", "-C", str(REPO), *a], capture_output=True, text=True)
        return p.stdout.rstrip() if p.returncode == 0 else ""

    return {"head": git("rev-parse", "--short", "HEAD"),
            "changed": [ln[3:] for ln in git("status", "--short", "--untracked-files=no").splitlines()]}


SNAPSHOT_ENV = "DYNOCC_BENCH_SNAPSHOT"
PACKAGE_DIRS = ("dynocc", "factory", "schemas", "trainer")  # pyproject's package-dir mapping


def _package_layout(src: Path, pkg: Path) -> None:
    """``pkg/dynocc`` importable as the editable install maps it (dynocc.factory = factory/, ...)."""
    for sub in PACKAGE_DIRS[1:]:
        os.symlink(src / sub, src / "dynocc" / sub)
    pkg.mkdir()
    os.symlink(src / "dynocc", pkg / "dynocc")


def snapshot_code(folder: Path, tries: int = 6) -> tuple[Path, dict]:
    """A copy of the working tree's package, taken once so that every part of the run measures the
    same code while other sessions edit the tree; retried while a copy does not import (a file
    caught mid-edit). Returns the PYTHONPATH entry and the state copied."""
    import hashlib

    for attempt in range(tries):
        shutil.rmtree(folder, ignore_errors=True)
        state = git_state()
        src = folder / "src"
        for d in PACKAGE_DIRS:
            shutil.copytree(REPO / d, src / d, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        digest = hashlib.sha1()
        for f in sorted(src.rglob("*.py")):
            digest.update(str(f.relative_to(src)).encode() + b"\0" + f.read_bytes())
        _package_layout(src, folder / "pkg")
        probe = subprocess.run([sys.executable, "-c", "import dynocc.factory as f, dynocc.factory.engine.ray_engine, "
                                "dynocc.factory.engine.job, dynocc.factory.io.writer; print(f.__file__)"],
                               capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(folder / "pkg")},
                               cwd=folder)  # not the repository: ``-c`` puts the cwd first on sys.path
        if probe.returncode == 0 and probe.stdout.strip().startswith(str(folder)):
            return folder / "pkg", {**state, "snapshot_sha1": digest.hexdigest()[:12], "snapshot_tries": attempt + 1}
        print(f"code snapshot does not import (try {attempt + 1}): {probe.stderr.strip()[-300:]}", flush=True)
        time.sleep(20)
    raise RuntimeError("the working tree's package did not import in 6 tries")


def _ints(text: str) -> list[int]:
    return [int(float(x)) for x in text.split(",") if x.strip()]


def _check_workers_import(snapshot: str) -> str:
    """Where a Ray worker imports ``dynocc.factory`` from (must be the snapshot)."""
    import ray

    @ray.remote(num_cpus=0)
    def where() -> str:
        import dynocc.factory

        return os.path.dirname(dynocc.factory.__file__)

    path = ray.get(where.remote())
    if snapshot and not path.startswith(snapshot):
        raise RuntimeError(f"Ray workers import dynocc from {path}, not from the snapshot {snapshot}")
    return path


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default="bench_out/scale.json")
    ap.add_argument("--quick", action="store_true", help="smaller sizes (about 3 minutes on an idle 2-core machine)")
    ap.add_argument("--sizes", default=None, help="N for the dry runs (default 1e4,1e5,1e6; quick 1e4)")
    ap.add_argument("--done-sizes", default=None, help="N for the already-committed runs (default: --sizes; "
                    "quick 2.5e4)")
    ap.add_argument("--join-at", default=None, help="N for a dry run forced onto the join path (default 1e4; quick none)")
    ap.add_argument("--mine-n", default=None, help="N for the full run that mines (default 1000; quick 50)")
    ap.add_argument("--files-m", type=int, default=None, help="videos for the file count (default 320; quick 128)")
    ap.add_argument("--files-actors", type=int, default=2)
    ap.add_argument("--videos", type=int, default=None, help="clips for Ray vs local (default 50; quick 4)")
    ap.add_argument("--reps", type=int, default=None, help="repetitions of Ray vs local (default 2; quick 1)")
    ap.add_argument("--cold", action="store_true", help="also time ray-cold-2 (no Ray running: the engine starts "
                    "and stops one, as `dynocc mine` does)")
    ap.add_argument("--parts", default="memory,files,throughput")
    ap.add_argument("--child-timeout", type=float, default=2400.0, help="seconds per memory subprocess")
    ap.add_argument("--no-snapshot", action="store_true", help="import the working tree as it is, live (default: "
                    "a copy taken at the start, so that concurrent edits do not change the code mid-run)")
    ap.add_argument("--_memory-child", nargs=5, help=argparse.SUPPRESS)
    ap.add_argument("--_old-layout-child", nargs=2, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args._memory_child:
        mode, listarg, out, n, pmax = args._memory_child
        memory_child(mode, listarg, out, int(n), int(pmax))
        return 0
    if args._old_layout_child:
        old_layout_child(*args._old_layout_child)
        return 0
    if not args.no_snapshot and SNAPSHOT_ENV not in os.environ:
        folder = Path(tempfile.mkdtemp(prefix="dynocc-bench-scale-code-"))
        try:
            pkg, state = snapshot_code(folder)
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise
        print(f"measuring a snapshot of the working tree (HEAD {state['head']}, changed: "
              f"{', '.join(state['changed']) or 'none'}; sha1 {state['snapshot_sha1']})", flush=True)
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(pkg)] + [p for p in [os.environ.get("PYTHONPATH")] if p]),
               SNAPSHOT_ENV: json.dumps({"pkg": str(pkg), "folder": str(folder), **state})}
        try:  # run from the snapshot folder: Ray puts the driver's cwd on its workers' sys.path
            return subprocess.run([sys.executable, os.path.abspath(__file__), *argv, "--out", os.path.abspath(args.out)],
                                  env=env, cwd=folder).returncode
        finally:
            shutil.rmtree(folder, ignore_errors=True)
    snapshot = json.loads(os.environ.get(SNAPSHOT_ENV) or "null")
    quick = args.quick
    sizes = _ints(args.sizes if args.sizes is not None else ("10000" if quick else "10000,100000,1000000"))
    done_sizes = _ints(args.done_sizes if args.done_sizes is not None
                       else ("25000" if quick else ",".join(map(str, sizes))))
    join_at = _ints(args.join_at if args.join_at is not None else ("" if quick else "10000"))
    mine_sizes = _ints(args.mine_n if args.mine_n is not None else ("50" if quick else "1000"))
    files_m = args.files_m or (128 if quick else 320)
    n_videos = args.videos or (4 if quick else 50)
    reps = args.reps or (1 if quick else 2)
    parts = set(args.parts.split(","))

    import dynocc.factory

    code = {**(snapshot or git_state()), "snapshot": bool(snapshot), "package": os.path.dirname(dynocc.factory.__file__)}
    code.pop("pkg", None)
    code.pop("folder", None)
    if snapshot and not code["package"].startswith(snapshot["folder"]):
        raise RuntimeError(f"imported dynocc from {code['package']}, not from the snapshot")
    result: dict = {"date": time.strftime("%Y-%m-%d %H:%M"), "quick": quick, "code": code, "argv": argv,
                    "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                                "platform": platform.platform()}}
    out_path = Path(args.out)
    out_path.parent.mkdir(parents=True, exist_ok=True)

    def save() -> None:  # after each part: a crash later keeps what was measured
        result["total_seconds"] = time.perf_counter() - t0
        out_path.write_text(json.dumps(result, indent=1) + "\n")

    def part(name: str, fn) -> None:
        try:
            result[name] = fn()
        except Exception as e:  # noqa: BLE001 - reported; the other parts still run
            import traceback

            result[name] = {"error": f"{type(e).__name__}: {e}", "traceback": traceback.format_exc()[-4000:]}
            print(f"  {name} FAILED: {type(e).__name__}: {e}", flush=True)
        save()

    tmp = Path(tempfile.mkdtemp(prefix="dynocc-bench-scale-"))
    t0 = time.perf_counter()
    try:
        import ray

        master, result["tiny_clip"] = make_master(tmp / "tiny")
        if "memory" in parts:
            print(f"(1) driver memory: dry {sizes}, committed {done_sizes}, join path forced at {join_at}, "
                  f"mining {mine_sizes}", flush=True)
            part("memory", lambda: memory(tmp, master, sizes, done_sizes, mine_sizes, join_at, args.child_timeout))
            shutil.rmtree(tmp / "items", ignore_errors=True)
            shutil.rmtree(tmp / "committed-all", ignore_errors=True)
        if parts & {"files", "throughput"}:
            t = time.perf_counter()
            _ray_init()
            result["ray_init_seconds"] = time.perf_counter() - t
            result["code"]["ray_worker_package"] = _check_workers_import(snapshot["folder"] if snapshot else "")
            print(f"ray.init: {result['ray_init_seconds']:.2f} s", flush=True)
            try:
                if "files" in parts:
                    print(f"(2) files: {files_m} tiny videos", flush=True)
                    part("files", lambda: files(tmp, master, files_m, args.files_actors))
                if "throughput" in parts:
                    print(f"(3) Ray vs local: {n_videos} clips 224x160, 24 frames, {reps} rep(s)", flush=True)
                    clips = make_clips(tmp / "clips", n_videos, 160, 224, 24)
                    part("throughput", lambda: throughput(clips, tmp, reps, cold=args.cold,
                                                          stages=0 if quick else 10))
            finally:
                if ray.is_initialized():
                    ray.shutdown()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    save()
    report(result)
    print(f"written: {args.out}  ({result['total_seconds']:.0f} s)")
    return 0


def report(result: dict) -> None:
    for name in ("memory", "files", "throughput"):
        if "error" in result.get(name, {}):
            print(f"\n{name}: FAILED: {result[name]['error']}")
    mem = result.get("memory")
    if mem and "error" not in mem:
        pmax = mem["plan_in_driver_max_default"]
        print(f"\n(1) driver peak RSS growth since ray.init (MB); plan_in_driver_max {pmax}")
        print(f"  {'mode':<5} {'N':>9} {'path':<7} {'growth':>7} {'peak':>7} {'job s':>8} {'child s':>8} "
              f"{'finalize s':>10}  check")
        for r in mem["runs"]:
            if "error" in r:
                print(f"  {r['mode']:<5} {r['n']:>9} FAILED")
                continue
            path = r["path"] + ("*" if r["plan_in_driver_max"] != pmax else "")
            fin = f"{r['finalize_seconds']:10.1f}" if "finalize_seconds" in r else f"{'-':>10}"
            print(f"  {r['mode']:<5} {r['n']:>9} {path:<7} {r['growth_mb']:7.1f} {r['peak_rss_mb']:7.0f} "
                  f"{r['seconds']:8.1f} {r['child_seconds']:8.1f} {fin}  {'ok' if r['ok'] else 'WRONG: ' + json.dumps(r['summary'])}")
        if any(r.get("plan_in_driver_max") != pmax for r in mem["runs"]):
            print("  * plan_in_driver_max=0: the join path forced")
        for mode in ("dry", "done"):
            s = spread(mem["runs"], mode, pmax)
            if s:
                print(f"  {mode}: spread {s['from_n']} -> {s['to_n']}: {s['spread_mb']:.1f} MB (target <= 100)")
        print("  peak growth (MB) per phase / seconds per phase")
        for r in mem["runs"]:
            if "phase_growth_mb" in r:
                print(f"  {r['mode']:<5} {r['n']:>9} " + "  ".join(
                    f"{k} {v:.0f}/{r['phase_seconds'].get(k, 0):.0f}s" for k, v in r["phase_growth_mb"].items()))
    f = result.get("files")
    if f and "error" not in f:
        old = f.get("old")
        print(f"\n(2) objects per 10K videos ({f['videos']} videos, {f['actors']} actors, shard_size "
              f"{f['shard_size_mb']:g} MB, items_per_task {f['items_per_task']})")
        print(f"  new: {f['new']['per_10k']:.0f} (commits/ to list on resume: {f['new']['commits_per_10k']:.0f})")
        if old:
            print(f"  old ({old['commit']}): {old['per_10k']:.0f} (stats/ to list on resume: "
                  f"{old['resume_list_per_10k']:.0f})")
        else:
            print(f"  old (model, 2 per video): {f['old_model_per_10k']}")
        print(f"  ratio old/new: {f['ratio_old_over_new']:.1f}x (target >= 10x)")
    thr = result.get("throughput")
    if thr and "error" not in thr:
        print(f"\n(3) Ray vs local ({thr['clips']} clips; best of {thr['reps']}; Ray started beforehand: "
              f"ray.init {result['ray_init_seconds']:.2f} s)")
        print(f"  {'run':<11} {'seconds':>8} {'frames/s':>9} {'ratio':>6}")
        for name, r in thr["best"].items():
            print(f"  {name:<11} {r['seconds']:8.2f} {r['fps']:9.1f} {r['ratio_vs_local']:6.2f}")
        print("  ratio per repetition: " + "; ".join(
            ", ".join(f"{k} {v:.2f}" for k, v in rep.items()) for rep in thr["ratio_per_rep"]))
        st = thr.get("stages")
        if st:
            print(f"  stages ({st['clips']} clips, one process): decode {st['decode_fps']:.0f} frames/s; decode+mine "
                  f"{st['decode_and_mine_fps']:.1f} frames/s (decode = {100 * st['decode_share_of_mine']:.0f}% of it); "
                  f"task writer {st['write_fps']:.0f} frames/s ({100 * st['write_share_of_item']:.1f}% of an item)")


if __name__ == "__main__":
    sys.exit(main())
