"""Product-search service under load on loopback, plus the page screenshot.

Starts ``serve(INDEX)`` (uvicorn, one worker) in a child process, waits for ``/health``, then for each
concurrency C sends ``GET /search?q=...&k=10`` from C client threads (one keep-alive connection each)
until ``--requests`` requests or ``--max-s`` seconds, whichever comes first. Queries are the generated
test queries, cycled. Reports p50/p99 latency and throughput, and the in-process cost of one query
(encode + search) for comparison. Then opens the page in headless Chromium, searches, and saves a
screenshot.

    flock /tmp/pm-cpu.lock python benchmarks/product_search_http.py --index INDEX \
        --out benchmarks/results/product_search_http --screenshot benchmarks/results/product_search_page.png
"""

from __future__ import annotations

import argparse
import http.client
import json
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from product_search_scale import machine


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_ready(port: int, timeout: float) -> float:
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < timeout:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", "/health")
            if conn.getresponse().status == 200:
                return time.perf_counter() - t0
        except OSError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"service not ready after {timeout} s")


def load(port: int, queries: list[str], clients: int, n_requests: int, max_s: float) -> dict:
    lat: list[float] = []
    errors = [0]
    counter = [0]
    lock = threading.Lock()
    deadline = time.perf_counter() + max_s

    def worker() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        while True:
            with lock:
                i = counter[0]
                counter[0] += 1
            if i >= n_requests or time.perf_counter() > deadline:
                break
            path = "/search?" + urllib.parse.urlencode({"q": queries[i % len(queries)], "k": 10})
            t = time.perf_counter()
            try:
                conn.request("GET", path)
                res = conn.getresponse()
                res.read()
                ok = res.status == 200
            except OSError:
                ok = False
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            dt = time.perf_counter() - t
            with lock:
                if ok:
                    lat.append(dt)
                else:
                    errors[0] += 1

    threads = [threading.Thread(target=worker) for _ in range(clients)]
    t0 = time.perf_counter()
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    wall = time.perf_counter() - t0
    arr = np.asarray(lat) * 1000
    return {"clients": clients, "completed": len(lat), "errors": errors[0], "wall_s": round(wall, 2),
            "throughput_rps": round(len(lat) / wall, 1), "p50_ms": round(float(np.percentile(arr, 50)), 1),
            "p99_ms": round(float(np.percentile(arr, 99)), 1), "mean_ms": round(float(arr.mean()), 1)}


def in_process(index: Path, queries: list[str]) -> dict:
    from polymodal.search.encoders import load_query_encoder
    from polymodal.search.index import open_index

    idx = open_index(index)
    enc = load_query_encoder(idx.query_dir)
    enc.encode_text("warm up")
    t_enc, t_search = [], []
    for q in queries:
        t = time.perf_counter()
        v = enc.encode_text(q)
        t_enc.append(time.perf_counter() - t)
        t = time.perf_counter()
        idx.store.search(v, 10)
        t_search.append(time.perf_counter() - t)
    e, s = np.asarray(t_enc) * 1000, np.asarray(t_search) * 1000
    both = e + s
    return {"n": len(queries), "encode_ms_p50": round(float(np.percentile(e, 50)), 2),
            "search_ms_p50": round(float(np.percentile(s, 50)), 2),
            "search_ms_p99": round(float(np.percentile(s, 99)), 2),
            "total_ms_p50": round(float(np.percentile(both, 50)), 2),
            "total_ms_p99": round(float(np.percentile(both, 99)), 2),
            "single_thread_qps": round(len(queries) / (both.sum() / 1000), 1)}


def screenshot(port: int, path: Path, query: str, gender: str | None) -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import Select, WebDriverWait
    from tests.test_search_page import open_browser

    driver = open_browser()
    try:
        driver.set_window_size(1280, 1000)
        driver.get(f"http://127.0.0.1:{port}/")
        wait = WebDriverWait(driver, 30)
        wait.until(ec.presence_of_element_located((By.ID, "filter-gender")))
        driver.find_element(By.ID, "q").send_keys(query)
        if gender:
            Select(driver.find_element(By.ID, "filter-gender")).select_by_visible_text(gender)
        driver.find_element(By.ID, "go").click()
        wait.until(lambda d: "results" in d.find_element(By.ID, "status").text)
        wait.until(lambda d: d.execute_script(
            "return [...document.querySelectorAll('.card img')].every(i => i.complete && i.naturalWidth > 0)"))
        path.parent.mkdir(parents=True, exist_ok=True)
        driver.save_screenshot(str(path))
    finally:
        driver.quit()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--index", type=Path, required=True)
    ap.add_argument("--clients", default="8,32")
    ap.add_argument("--requests", type=int, default=600)
    ap.add_argument("--max-s", type=float, default=60)
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/product_search_http"))
    ap.add_argument("--screenshot", type=Path, default=None)
    ap.add_argument("--shot-query", default="navy blue men casual shirt")
    ap.add_argument("--shot-gender", default="Men")
    args = ap.parse_args()

    import pandas as pd

    from polymodal.search.index import open_index
    from polymodal.search.queries import split_queries

    idx = open_index(args.index)
    by_split = split_queries(pd.DataFrame(idx.catalog.reset_index(drop=True)))
    queries = [q.text for q in by_split["test"]]
    if len(queries) < 10:  # a toy catalogue (smoke runs): take every generated query
        queries = [q.text for qs in by_split.values() for q in qs]
    rng = np.random.default_rng(0)
    queries = [queries[i] for i in rng.permutation(len(queries))]
    report: dict = {"benchmark": "product_search_http", "index": str(args.index), "command": " ".join(sys.argv),
                    "machine": machine(), "index_info": idx.manifest["info"], "count": idx.manifest["count"]}
    report["in_process"] = in_process(args.index, queries[:300])
    port = free_port()
    code = f"from polymodal.search.service import serve; serve({str(args.index)!r}, port={port})"
    server = subprocess.Popen([sys.executable, "-c", code])
    try:
        report["startup_to_ready_s"] = round(wait_ready(port, 300), 1)
        load(port, queries, 4, 40, 30)  # warm-up, not reported
        report["http"] = [load(port, queries, int(c), args.requests, args.max_s) for c in args.clients.split(",")]
        for row in report["http"]:
            print(json.dumps(row), flush=True)
        if args.screenshot:
            screenshot(port, args.screenshot, args.shot_query, args.shot_gender)
            report["screenshot"] = str(args.screenshot)
    finally:
        server.terminate()
        server.wait(timeout=30)
    from polymodal.io import write_json, write_text

    write_json(args.out.with_suffix(".json"), report)
    ip = report["in_process"]
    lines = ["# Product-search service under load (loopback)", "", f"Command: `{report['command']}`  ",
             f"Machine: {report['machine']}  ", f"Index: {report['count']:,} products, {report['index_info']}", "",
             f"Start-up to ready: {report['startup_to_ready_s']} s (loading the index and the query encoder).", "",
             "| clients | completed | errors | throughput req/s | p50 ms | p99 ms |", "|---|---|---|---|---|---|"]
    for r in report["http"]:
        lines.append(f"| {r['clients']} | {r['completed']} | {r['errors']} | {r['throughput_rps']} | {r['p50_ms']} "
                     f"| {r['p99_ms']} |")
    lines += ["", f"In process, one thread, {ip['n']} queries: encode p50 {ip['encode_ms_p50']} ms, search p50 "
              f"{ip['search_ms_p50']} ms / p99 {ip['search_ms_p99']} ms, encode+search p50 {ip['total_ms_p50']} ms / "
              f"p99 {ip['total_ms_p99']} ms ({ip['single_thread_qps']} queries/s)."]
    write_text(args.out.with_suffix(".md"), "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
