"""Product-search index benchmark: build time, size, ANN recall@10 vs exact, in-process latency, memory.

Sizes: the real catalogue (the index's own product vectors) and synthetic catalogues made of perturbed
copies of those vectors (each copy: vector + Gaussian noise of 0.3 x the per-dimension std, then
normalised). Query vectors are the real test queries encoded by the index's query encoder. Each size
runs in its own child process so its peak RSS is its own.

    flock /tmp/pm-cpu.lock python benchmarks/product_search_scale.py --index INDEX \
        --sizes 11882,100000,300000,1000000 --budget-s 900 --out benchmarks/results/product_search_scale

Writes OUT.json and OUT.md (with the machine).
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

import numpy as np


def machine() -> dict:
    import lancedb

    return {"platform": platform.platform(), "python": platform.python_version(), "cpus": os.cpu_count(),
            "cpu_model": _cpu_model(),
            "mem_gb": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
            "lancedb": lancedb.__version__, "note": "2 cores shared with other engineers; heavy jobs under a CPU lock"}


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def dir_size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def query_vectors(index_dir: Path, n: int) -> np.ndarray:
    """Real test queries (generated from the catalogue) through the index's query encoder."""
    import pandas as pd

    from polymodal.search.encoders import load_query_encoder
    from polymodal.search.index import open_index
    from polymodal.search.queries import split_queries

    idx = open_index(index_dir)
    cat = idx.catalog.reset_index(drop=True)
    by_split = split_queries(pd.DataFrame(cat))
    queries = by_split["test"]
    if len(queries) < 10:  # a toy catalogue (smoke runs): take every generated query
        queries = [q for qs in by_split.values() for q in qs]
    rng = np.random.default_rng(0)
    pick = rng.choice(len(queries), size=min(n, len(queries)), replace=False)
    enc = load_query_encoder(idx.query_dir)
    return np.stack([enc.encode_text(queries[i].text) for i in pick])


def one_size(args: argparse.Namespace) -> dict:
    from polymodal.search.index import build_index, open_index
    from polymodal.search.store import AnnConfig

    src = open_index(args.index)
    version = src.path
    base = np.load(args.vectors) if args.vectors else None
    if base is None:
        raise SystemExit("--vectors is required in --one mode")
    queries = np.load(args.queries)
    n = args.one
    rng = np.random.default_rng(0)
    reps = int(np.ceil(n / len(base)))
    std = base.std(axis=0)
    chunks = []
    for r in range(reps):
        take = min(len(base), n - r * len(base))
        noise = rng.normal(size=(take, base.shape[1])).astype(np.float32) * (0.3 * std)
        v = base[:take] if r == 0 else base[:take] + noise
        chunks.append(v.astype(np.float32))
    vecs = np.concatenate(chunks)
    del chunks
    import pandas as pd

    ids = np.arange(n).astype(str)
    cat = pd.DataFrame({"id": ids, "name": ids})
    out = Path(tempfile.mkdtemp(prefix="ps-bench-", dir=args.tmp))
    try:
        ann = AnnConfig(kind=args.ann, nprobes=args.nprobes, refine_factor=args.refine)
        t0 = time.perf_counter()
        build_index(out / "idx", cat, vecs, ann=ann, recall_queries=0)
        build_s = time.perf_counter() - t0
        del vecs
        size = dir_size(out / "idx")
        rss_build = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        idx = open_index(out / "idx")
        lat_ann, lat_exact, overlap = [], [], []
        for q in queries:
            t = time.perf_counter()
            a = idx.store.search(q, 10)
            lat_ann.append(time.perf_counter() - t)
            t = time.perf_counter()
            e = idx.store.search(q, 10, exact=True)
            lat_exact.append(time.perf_counter() - t)
            overlap.append(len(set(a.ids) & set(e.ids)) / 10)
        return {"n": n, "dim": int(base.shape[1]), "ann": ann.as_dict(), "has_ann_index": idx.store.has_index,
                "build_s": round(build_s, 2), "size_mb": round(size / 2**20, 1),
                "recall_at_10_vs_exact": float(np.mean(overlap)), "n_queries": len(queries),
                "search_ms_p50": round(1000 * float(np.percentile(lat_ann, 50)), 2),
                "search_ms_p99": round(1000 * float(np.percentile(lat_ann, 99)), 2),
                "exact_ms_p50": round(1000 * float(np.percentile(lat_exact, 50)), 2),
                "exact_ms_p99": round(1000 * float(np.percentile(lat_exact, 99)), 2),
                "peak_rss_mb_build": round(rss_build, 1),
                "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}
    finally:
        shutil.rmtree(out, ignore_errors=True)
        del version


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--index", type=Path, required=True)
    ap.add_argument("--sizes", default="11882,100000,300000,1000000")
    ap.add_argument("--budget-s", type=float, default=900, help="stop before a size whose projected build exceeds this")
    ap.add_argument("--queries-n", type=int, default=300)
    ap.add_argument("--ann", default="ivf_pq")
    ap.add_argument("--nprobes", type=int, default=20)
    ap.add_argument("--refine", type=int, default=10)
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/product_search_scale"))
    ap.add_argument("--tmp", default=None)
    ap.add_argument("--one", type=int, default=None)
    ap.add_argument("--vectors", default=None)
    ap.add_argument("--queries", default=None)
    args = ap.parse_args()
    if args.one is not None:
        print(json.dumps(one_size(args)))
        return

    from polymodal.search.index import open_index

    idx = open_index(args.index)
    work = Path(tempfile.mkdtemp(prefix="ps-bench-inputs-"))
    base = idx.store.all_vectors()
    np.save(work / "base.npy", base)
    np.save(work / "queries.npy", query_vectors(args.index, args.queries_n))
    results, started, skipped = [], time.perf_counter(), []
    for n in [int(s) for s in args.sizes.split(",")]:
        if results:
            last = results[-1]
            projected = last["build_s"] * n / last["n"] * 1.2
            if projected > args.budget_s:
                skipped.append({"n": n, "reason": f"projected build {projected:.0f} s > budget {args.budget_s:.0f} s"})
                continue
        cmd = [sys.executable, __file__, "--index", str(args.index), "--one", str(n), "--vectors",
               str(work / "base.npy"), "--queries", str(work / "queries.npy"), "--ann", args.ann,
               "--nprobes", str(args.nprobes), "--refine", str(args.refine)]
        if args.tmp:
            cmd += ["--tmp", args.tmp]
        t = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=args.budget_s * 3)
        if proc.returncode != 0:
            skipped.append({"n": n, "reason": f"child failed rc={proc.returncode}: {proc.stderr[-500:]}"})
            break
        row = json.loads(proc.stdout.strip().splitlines()[-1])
        row["child_wall_s"] = round(time.perf_counter() - t, 1)
        results.append(row)
        print(json.dumps(row), flush=True)
    shutil.rmtree(work, ignore_errors=True)
    report = {"benchmark": "product_search_scale", "index": str(args.index),
              "index_manifest_info": idx.manifest["info"],
              "command": " ".join(sys.argv), "machine": machine(), "results": results, "skipped": skipped,
              "wall_s": round(time.perf_counter() - started, 1),
              "synthetic": "perturbed copies: base vector + N(0, (0.3 * per-dim std)^2), normalised"}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    from polymodal.io import write_json, write_text

    write_json(args.out.with_suffix(".json"), report)
    lines = ["# Product-search index: build, size, ANN recall, in-process latency, memory", "",
             f"Command: `{report['command']}`  ", f"Machine: {report['machine']}", "",
             "| items | dim | build s | size MB | ANN recall@10 vs exact | ANN p50 / p99 ms | exact p50 / p99 ms "
             "| peak RSS MB |", "|---|---|---|---|---|---|---|---|"]
    for r in results:
        lines.append(f"| {r['n']:,} | {r['dim']} | {r['build_s']} | {r['size_mb']} | {r['recall_at_10_vs_exact']:.3f} "
                     f"| {r['search_ms_p50']} / {r['search_ms_p99']} | {r['exact_ms_p50']} / {r['exact_ms_p99']} "
                     f"| {r['peak_rss_mb']} |")
    for s in skipped:
        lines.append(f"\nNot measured: {s['n']:,} items ({s['reason']}).")
    write_text(args.out.with_suffix(".md"), "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
