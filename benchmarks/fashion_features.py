"""Benchmark: cold frozen-feature extraction for the fashion products (photos and names), timed apart.

    flock /tmp/pm-cpu.lock python benchmarks/fashion_features.py [--data-dir ../shared/data] [--cache-dir DIR]

Encodes the 11,882 photos with EfficientNet-Lite0 (224 px squash, ImageNet weights, 1280-d) and the
44,446 product names with all-MiniLM-L6-v2 (384-d) through the embedding cache, timing each. On a
cold cache this is the one-off extraction cost the taxonomy-classifier recipe reports separately; on a
warm one it measures the cache read. Writes benchmarks/results/fashion_features.json.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

import torch  # noqa: E402

from polymodal.data.paths import resolve_cache_dir, resolve_data_dir  # noqa: E402
from polymodal.data.sources.fashion import fashion_image_features, load_fashion  # noqa: E402
from polymodal.encoders.cache import EmbeddingCache  # noqa: E402
from polymodal.encoders.text import SentenceTextEncoder  # noqa: E402
from polymodal.experiment import environment  # noqa: E402
from polymodal.io import write_json  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data-dir", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--cache-dir", type=Path, default=None)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=RESULTS / "fashion_features.json")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    t = time.perf_counter()
    data = load_fashion(resolve_data_dir(args.data_dir))
    load_s = time.perf_counter() - t
    cache = EmbeddingCache(resolve_cache_dir(args.cache_dir) / "embeddings")
    t = time.perf_counter()
    _, has = fashion_image_features(list(data.products["image"]), cache, skips=data.skips)
    image_s = time.perf_counter() - t
    image_stats = cache.stats.as_dict()
    t = time.perf_counter()
    cache.encode(SentenceTextEncoder(), [n for n in data.products["name"]])
    name_s = time.perf_counter() - t
    out = {
        "command": "flock /tmp/pm-cpu.lock python benchmarks/fashion_features.py",
        "threads": args.threads,
        "load_seconds": round(load_s, 1),
        "image_seconds": round(image_s, 1),
        "images_encoded": int(has.sum()),
        "image_cache": image_stats,
        "name_seconds": round(name_s, 1),
        "names": len(data.products),
        "cache_total": cache.stats.as_dict(),
        "skips": data.skips.to_dict(),
        "environment": environment(),
    }
    write_json(args.out, out)
    print({k: out[k] for k in ("load_seconds", "image_seconds", "images_encoded", "name_seconds")})


if __name__ == "__main__":
    main()
