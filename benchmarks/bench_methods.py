"""Time and peak memory of one explanation per CAM method and layer, on the largest input the app
accepts (a 4:1 photo: 224×896 in whole-image mode), under the server's time limit.

Each (method, layer) runs in a fresh process (peak resident memory is per process): the models
are loaded and warmed up, resident memory is read, then one explanation of both models runs the
way the server runs it (`Engine.explain`, time limit included) and the process's peak resident
memory (ru_maxrss) is read. "extra" is the peak minus the warmed-up size: what one request may
add on top of a running server.

    SA_VIZ_WEIGHTS_DIR=/tmp/w python benchmarks/bench_methods.py [--time-limit 30]
        [--methods gradcam,eigencam] [--layers layer1,layer4] [--width 896]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def one(method: str, layer: str, width: int, time_limit: float) -> dict:
    import resource
    import time

    import numpy as np

    from sa_viz.app.engine import Engine, Settings
    from sa_viz.app.runtime import resident_bytes, tune_allocator
    from sa_viz.hooks import TimeLimitExceeded
    from sa_viz.models.weights import load_models

    tune_allocator()
    engine = Engine(lambda: load_models(allow_download=False), time_limit=time_limit).start()
    engine.models(timeout=300)
    before = resident_bytes()
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (224, width, 3), dtype=np.uint8)  # 224×width input, no resize
    start = time.perf_counter()
    try:
        engine.explain(image, Settings(layer=layer, method=method))
        outcome = "done"
    except TimeLimitExceeded:
        outcome = "stopped by the time limit"
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return {
        "method": method,
        "layer": layer,
        "seconds": round(seconds, 2),
        "outcome": outcome,
        "warm_mb": round(before / 2**20),
        "peak_mb": round(peak / 2**20),
        "extra_mb": round((peak - before) / 2**20),
    }


def main() -> None:
    from sa_viz.cam import METHODS

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--methods", default=",".join(METHODS))
    parser.add_argument("--layers", default="layer1,layer4")
    parser.add_argument("--width", type=int, default=896)
    parser.add_argument("--time-limit", type=float, default=30.0)
    parser.add_argument("--one", help=argparse.SUPPRESS)  # method:layer, in the child process
    args = parser.parse_args()
    if args.one:
        method, layer = args.one.split(":")
        print(json.dumps(one(method, layer, args.width, args.time_limit)))
        return
    print(f"input 224×{args.width}, time limit {args.time_limit:g} s, both models per request")
    print(f"{'method':<14}{'layer':<8}{'seconds':>8}{'extra MB':>10}{'peak MB':>9}  outcome")
    for method in args.methods.split(","):
        for layer in args.layers.split(","):
            child = subprocess.run(
                [sys.executable, __file__, "--one", f"{method}:{layer}", "--width", str(args.width),
                 "--time-limit", str(args.time_limit)],
                capture_output=True, text=True, cwd=REPO,
                env={**os.environ, "PYTHONPATH": str(REPO)},
            )  # fmt: skip
            if child.returncode != 0:
                print(f"{method:<14}{layer:<8} failed: {child.stderr.strip()[-300:]}")
                continue
            r = json.loads(child.stdout.strip().splitlines()[-1])
            print(
                f"{method:<14}{layer:<8}{r['seconds']:>8.2f}{r['extra_mb']:>10}{r['peak_mb']:>9}"
                f"  {r['outcome']}",
                flush=True,
            )


if __name__ == "__main__":
    main()
