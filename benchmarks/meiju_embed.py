"""The cold step of the meiju benchmark: MiniLM embeddings of every MELD / MIntRec2.0 utterance.

    flock /tmp/pm-cpu.lock python benchmarks/meiju_embed.py [DATA_DIR [RESULT_NAME]]

Encodes each utterance once (the recipe's default ``context="pooled"`` builds the context vector
from the earlier utterances' embeddings, so contexts need no encoder pass). Fills the shared
embedding cache ($POLYMODAL_CACHE) so that benchmarks/meiju.py runs from a warm cache, and writes
benchmarks/results/meiju_embed.json with the counts, cache hits/misses, the wall time of encoding
and the machine. A second run reads everything from the cache.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

import torch  # noqa: E402

from polymodal.data.paths import resolve_data_dir  # noqa: E402
from polymodal.data.sources.meld import load_meld  # noqa: E402
from polymodal.data.sources.mintrec import load_mintrec  # noqa: E402
from polymodal.encoders.cache import EmbeddingCache  # noqa: E402
from polymodal.encoders.dialogue import embed_dialogue  # noqa: E402
from polymodal.encoders.text import SentenceTextEncoder  # noqa: E402
from polymodal.experiment import environment  # noqa: E402
from polymodal.io import write_json  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"


def main() -> None:
    torch.set_num_threads(2)
    data_dir = resolve_data_dir(sys.argv[1] if len(sys.argv) > 1 else None)
    name = sys.argv[2] if len(sys.argv) > 2 else "meiju_embed"
    cache, encoder = EmbeddingCache.default(), SentenceTextEncoder()
    t0 = time.perf_counter()
    rows = {}
    for source, table in (("meld", load_meld(data_dir)), ("mintrec2", load_mintrec(data_dir, version=2))):
        t = time.perf_counter()
        before = cache.stats.misses
        out = embed_dialogue(table.frame, encoder, cache, context="pooled")
        rows[source] = {"utterances": len(table.frame), "contexts": int(out["context_mask"].sum()),
                      "encoded": cache.stats.misses - before, "seconds": round(time.perf_counter() - t, 1)}
        print(source, rows[source], flush=True)
    command = " ".join(["python benchmarks/meiju_embed.py", *sys.argv[1:]])
    result = {"command": command, "sources": rows,
              "cache": cache.stats.as_dict(), "wall_seconds": round(time.perf_counter() - t0, 1),
              "environment": environment()}
    write_json(RESULTS / f"{name}.json", result)
    print(result)


if __name__ == "__main__":
    main()
