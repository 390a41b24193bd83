"""A bounded load ("soak") test of the app as users meet it, through gradio_client on loopback.

    python benchmarks/soak.py [--requests 200] [--clients 4] [--weights-dir DIR] [--port PORT]
        [--methods gradcam,gradcam++,layercam] [--view-every 2] [--timeout 300] [--sample-every 2]
        [--slow-clients 1] [--slow-methods eigencam,eigengradcam,scorecam] [--evicted-clients 2]
        [--time-limit 10]

Starts `sa-viz serve` (as bench_app.py does: a free loopback port, never downloads, the weights it
finds or the untrained fallback: load does not depend on weight values), waits for the first HTTP
200 and for the models (/weights_status), warms up with one request, then sends `--requests`
/explain requests from `--clients` threads, each with its own `gradio_client.Client` (its own
session; all with one TLS context, as the README's example makes them: a default Client loads the CA
bundle for every HTTP request, ~50 ms each). The inputs cycle through the four example photos
(sa_viz/data/examples/) and variants of them (mirrored and cropped copies written here) and through
the CAM methods gradcam, gradcam++ and layercam, so some requests are answered from the server's
cache and most are not. After every `--view-every`-th explain, the same client also asks for
/gate_view (another unit and group) and /cam_view (another opacity), which render from that
session's result; these are counted separately. Each /cam_view's text (the CAM targets and the
agreement of the two maps, independent of the opacity) must equal the one its own /explain returned:
a difference means the session was answered with another's result (counted as cross-talk).

Beside them, `--slow-clients` clients run the slow methods back to back on a 4:1 panorama at
layer1 (EigenCAM, EigenGradCAM) and ScoreCAM at layer4, which the server's time limit
(`--time-limit`, passed as SA_VIZ_TIME_LIMIT) stops: a stop by the limit is the expected outcome,
counted apart, not an error. `--evicted-clients` clients explain one image each before the load
starts, so the load pushes their results out of the server's 4-entry cache, then ask for a view
every few seconds: each computes their result again (or is asked to press Explain when two
already do), and is timed apart. The views that follow a client's own /explain are of results in
memory: none may take over 1 s, also while a slow method runs (printed as a check).

Prints throughput, p50/p95/max latency of explain and of view calls, errors (every exception;
the first few messages), and the server's resident memory (VmRSS from /proc) after warm-up, its
peak (VmHWM) and at the end. Exits with status 1 if any call failed, any cross-talk was seen or a
view of a result in memory took over 1 s while a slow method ran. Not a pytest: run it by hand on
a quiet machine.
"""

from __future__ import annotations

import argparse
import itertools
import os
import re
import shutil
import ssl
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from bench_app import REPO, free_port, memory_kb, server_times, start_server, stop
from PIL import Image, ImageOps

METHODS = ("gradcam", "gradcam++", "layercam")
SLOW = {"eigencam": "layer1", "eigengradcam": "layer1", "scorecam": "layer4"}
VIEW_TARGET_S = 1.0
UNITS = ("layer1.0", "layer2.3", "layer3.5", "layer4.2", "layer3.0")
ASSETS = ("chelsea.jpg", "coffee.jpg", "astronaut.jpg", "rocket.jpg")
KEEP_MESSAGES = 5


def input_images(folder: Path) -> list[Path]:
    """The four photos and three variants of each (mirrored, two crops): 16 different inputs.
    The photos themselves are sent as they are (the app's examples)."""
    paths = []
    for name in ASSETS:
        source = REPO / "sa_viz" / "data" / "examples" / name
        image = Image.open(source).convert("RGB")
        w, h = image.size
        stem = Path(name).stem
        variants = {
            "mirror": ImageOps.mirror(image),
            "crop-left": image.crop((0, 0, int(w * 0.8), int(h * 0.85))),
            "crop-right": image.crop((int(w * 0.2), int(h * 0.1), w, h)),
        }
        paths.append(source)
        for label, variant in variants.items():
            path = folder / f"{stem}-{label}.jpg"
            variant.save(path, quality=90)
            paths.append(path)
    return paths


def schedule(
    count: int, images: int, methods: tuple[str, ...], seed: int = 0
) -> list[tuple[int, str]]:
    """(image index, method) of each request: fixed-seed draws, so repeats (cache hits) happen
    at a rate that depends on `count` and distinct inputs make up the rest."""
    rng = np.random.default_rng(seed)
    return [
        (int(rng.integers(images)), methods[int(rng.integers(len(methods)))]) for _ in range(count)
    ]


def torch_threads() -> int:
    """torch's default thread count here (what the server starts with), from a child process so
    that this one stays small."""
    command = [sys.executable, "-c", "import torch; print(torch.get_num_threads())"]
    return int(subprocess.run(command, check=True, capture_output=True, text=True).stdout)


@dataclass
class Tally:
    """Every call's latency and every failure, from all client threads."""

    explain: list[float] = field(default_factory=list)
    view: list[float] = field(default_factory=list)
    view_spans: list[tuple[float, float]] = field(default_factory=list)  # (start, end)
    slow: list[tuple[str, float, str]] = field(default_factory=list)  # method, seconds, outcome
    slow_spans: list[tuple[float, float]] = field(default_factory=list)
    evicted: list[float] = field(default_factory=list)
    asked_again: int = 0  # evicted views answered "press Explain"
    errors: int = 0
    cross_talk: int = 0
    messages: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, kind: str, seconds: float) -> None:
        with self.lock:
            (self.explain if kind == "explain" else self.view).append(seconds)

    def fail(self, what: str, error: BaseException | str, *, cross_talk: bool = False) -> None:
        text = error if isinstance(error, str) else f"{type(error).__name__}: {error}"
        with self.lock:
            if cross_talk:
                self.cross_talk += 1
            else:
                self.errors += 1
            if len(self.messages) < KEEP_MESSAGES:
                self.messages.append(f"{what}: {' '.join(str(text).split())[:300]}")


class RssSampler(threading.Thread):
    """The server's VmRSS (MB) every `every` seconds until stopped."""

    def __init__(self, pid: int, every: float) -> None:
        super().__init__(name="rss-sampler", daemon=True)
        self.pid, self.every = pid, every
        self.samples: list[int] = []
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.wait(self.every):
            try:
                self.samples.append(memory_kb(self.pid)["VmRSS"] // 1024)
            except (OSError, KeyError):  # the server has exited: the main thread reports it
                return


def call(client, timeout: float, *args, **kwargs):
    """client.predict with a time limit: a hung request is an error here, not a hung soak."""
    return client.submit(*args, **kwargs).result(timeout=timeout)


def worker(
    client,
    jobs: itertools.count,
    lock: threading.Lock,
    plan: list[tuple[int, str]],
    images: list[Path],
    args: argparse.Namespace,
    tally: Tally,
) -> None:
    from gradio_client import handle_file

    while True:
        with lock:
            i = next(jobs)
        if i >= len(plan):
            return
        image, method = plan[i]
        what = f"request {i} /explain {images[image].name} {method}"
        start = time.perf_counter()
        try:
            out = call(
                client,
                args.timeout,
                handle_file(str(images[image])),
                method=method,
                api_name="/explain",
            )
        except Exception as error:
            tally.fail(what, error)
            continue
        tally.record("explain", time.perf_counter() - start)
        if i % args.view_every:
            continue
        cam_text = out[6]
        views = (
            ("/gate_view", (UNITS[i % len(UNITS)], i % 64, "jet", 0.5, "unit range")),
            ("/cam_view", ("jet", 0.3 + 0.02 * (i % 30), "per model")),
        )
        for api_name, inputs in views:
            start = time.perf_counter()
            try:
                view = call(client, args.timeout, *inputs, api_name=api_name)
            except Exception as error:
                tally.fail(f"request {i} {api_name} after {images[image].name} {method}", error)
                continue
            end = time.perf_counter()
            tally.record("view", end - start)
            with tally.lock:
                tally.view_spans.append((start, end))
            if api_name == "/cam_view" and view[3] != cam_text:
                tally.fail(
                    f"request {i} /cam_view after {images[image].name} {method}",
                    f"text {view[3]!r} differs from its /explain's {cam_text!r}",
                    cross_talk=True,
                )


def slow_worker(client, panorama: Path, done: threading.Event, args, tally: Tally) -> None:
    """Slow methods back to back until the main load is done; a stop by the limit is expected."""
    from gradio_client import handle_file

    for method in itertools.cycle(args.slow_methods.split(",")):
        if done.is_set():
            return
        layer = SLOW.get(method, "layer4")
        start = time.perf_counter()
        try:
            call(
                client,
                args.timeout,
                handle_file(str(panorama)),
                method=method,
                layer=layer,
                api_name="/explain",
            )
            outcome = "done"
        except Exception as error:
            if "limit of" not in str(error):
                tally.fail(f"slow {method} at {layer}", error)
                continue
            outcome = "stopped by the limit"
        end = time.perf_counter()
        with tally.lock:
            tally.slow.append((method, end - start, outcome))
            tally.slow_spans.append((start, end))


def evicted_worker(client, image: Path, done: threading.Event, args, tally: Tally) -> None:
    """Explain once (before the load), then a view every few seconds of a result the load has
    pushed out of the cache: each computes it again, waiting for the models."""
    from gradio_client import handle_file

    call(client, args.timeout, handle_file(str(image)), api_name="/explain")
    i = 0
    while not done.wait(3.0):
        i += 1
        start = time.perf_counter()
        try:
            call(client, args.timeout, UNITS[i % len(UNITS)], i % 64, api_name="/gate_view")
        except Exception as error:
            if "Press Explain" in str(error):
                with tally.lock:
                    tally.asked_again += 1
                continue
            tally.fail(f"evicted /gate_view {image.name}", error)
            continue
        with tally.lock:
            tally.evicted.append(time.perf_counter() - start)


def overlapping(spans: list[tuple[float, float]], during: list[tuple[float, float]]) -> list[float]:
    """Durations of the `spans` that overlap any of `during`."""
    return [end - start for start, end in spans if any(s < end and start < e for s, e in during)]


def percentiles(label: str, values: list[float]) -> str:
    if not values:
        return f"  {label:<28} none completed"
    p50, p95 = np.percentile(values, [50, 95]) * 1000
    return (
        f"  {label:<28} n={len(values):<4} p50 {p50:7.0f} ms   p95 {p95:7.0f} ms   "
        f"max {max(values) * 1000:7.0f} ms"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=200, help="/explain requests in all")
    parser.add_argument("--clients", type=int, default=4, help="concurrent clients (threads)")
    parser.add_argument("--weights-dir", default=os.environ.get("SA_VIZ_WEIGHTS_DIR"))
    parser.add_argument("--port", type=int, default=None, help="default: a free loopback port")
    parser.add_argument(
        "--view-every", type=int, default=2, help="/gate_view + /cam_view after every n-th explain"
    )
    parser.add_argument(
        "--methods", default=",".join(METHODS), help="CAM methods to cycle through, comma-separated"
    )
    parser.add_argument("--timeout", type=float, default=300, help="seconds one call may take")
    parser.add_argument("--sample-every", type=float, default=2.0, help="RSS sampling, seconds")
    parser.add_argument("--slow-clients", type=int, default=1, help="clients running slow methods")
    parser.add_argument("--slow-methods", default=",".join(SLOW))
    parser.add_argument(
        "--evicted-clients", type=int, default=2, help="clients whose results the load evicts"
    )
    parser.add_argument("--time-limit", type=float, default=10.0, help="the server's, seconds")
    args = parser.parse_args()
    if args.requests < 1 or args.clients < 1 or args.view_every < 1:
        parser.error("--requests, --clients and --view-every must be positive")
    env = {
        **os.environ,
        "SA_VIZ_NO_DOWNLOAD": "1",
        "GRADIO_ANALYTICS_ENABLED": "False",
        "SA_VIZ_TIME_LIMIT": str(args.time_limit),
    }
    if args.weights_dir:
        env["SA_VIZ_WEIGHTS_DIR"] = args.weights_dir
    port = args.port or free_port()
    work = Path(tempfile.mkdtemp(prefix="sa-viz-soak-"))
    process = None
    try:
        images = input_images(work)
        methods = tuple(args.methods.split(","))
        plan = schedule(args.requests, len(images), methods)
        warmup_image = work / "warmup.jpg"  # in no request: the warm-up is no cache hit for one
        ImageOps.flip(Image.open(images[0]).convert("RGB")).save(warmup_image, quality=90)
        panorama = work / "panorama.jpg"  # 4:1: the largest input whole-image mode takes
        Image.open(images[1]).convert("RGB").resize((896, 224)).save(panorama, quality=90)
        evicted_images = []
        for n in range(args.evicted_clients):  # inputs no other request sends
            path = work / f"evicted-{n}.jpg"
            ImageOps.flip(Image.open(images[2 + n]).convert("RGB")).save(path, quality=90)
            evicted_images.append(path)
        threads = torch_threads()

        from gradio_client import Client, handle_file

        log_path = work / "server.log"
        process, ready_seconds = start_server(port, log_path, env)
        url = f"http://127.0.0.1:{port}/"
        tls = ssl.create_default_context()
        clients = [Client(url, verbose=False, ssl_verify=tls) for _ in range(args.clients)]
        start = time.perf_counter()
        status = clients[0].predict(api_name="/weights_status")  # waits for the models
        models_seconds = time.perf_counter() - start
        start = time.perf_counter()
        call(clients[0], args.timeout, handle_file(str(warmup_image)), api_name="/explain")
        warmup_seconds = time.perf_counter() - start
        after_warmup = memory_kb(process.pid)["VmRSS"]
        explains_before = len(server_times(log_path, "explain"))

        sampler = RssSampler(process.pid, args.sample_every)
        tally = Tally()
        done = threading.Event()
        side = [
            threading.Thread(
                target=evicted_worker,
                args=(Client(url, verbose=False, ssl_verify=tls), path, done, args, tally),
                name=f"evicted-{n}",
            )
            for n, path in enumerate(evicted_images)
        ]
        for thread in side:  # their results first, so that the load evicts them
            thread.start()
        time.sleep(1.0 + 0.5 * len(side))
        slow = [
            threading.Thread(
                target=slow_worker,
                args=(Client(url, verbose=False, ssl_verify=tls), panorama, done, args, tally),
                name=f"slow-{n}",
            )
            for n in range(args.slow_clients)
        ]
        for thread in slow:
            thread.start()
        jobs, lock = itertools.count(), threading.Lock()
        workers = [
            threading.Thread(
                target=worker,
                args=(client, jobs, lock, plan, images, args, tally),
                name=f"client-{n}",
            )
            for n, client in enumerate(clients)
        ]
        sampler.start()
        start = time.perf_counter()
        for thread in workers:
            thread.start()
        for thread in workers:
            thread.join()
        duration = time.perf_counter() - start
        done.set()
        for thread in side + slow:
            thread.join()
        sampler.done.set()
        sampler.join()
        if process.poll() is not None:
            tally.fail("server", f"the app exited with status {process.returncode}")
            end = {"VmRSS": 0, "VmHWM": 0}
        else:
            end = memory_kb(process.pid)
        explain_server = server_times(log_path, "explain")[explains_before:]

        distinct = len(set(plan))
        untrained = "UNTRAINED" in str(status)
        print(
            f"{os.cpu_count()} CPUs, torch {threads} threads; weights: "
            f"{args.weights_dir or 'as the app finds them'}"
            f"{' (untrained fallback)' if untrained else ''}"
        )
        print(
            f"  server: first HTTP 200 after {ready_seconds:.1f} s, models loaded "
            f"{models_seconds:.1f} s later, warm-up request {warmup_seconds:.2f} s"
        )
        print(
            f"  {args.requests} /explain requests from {args.clients} client(s) over "
            f"{len(images)} images × {len(methods)} method(s); {distinct} distinct inputs "
            f"({distinct / args.requests:.0%}), the rest repeats (the server caches its "
            "most recent results)"
        )
        print(
            f"  duration {duration:.1f} s; throughput {len(tally.explain) / duration:.2f} "
            f"explain/s, {(len(tally.explain) + len(tally.view)) / duration:.2f} calls/s in all"
        )
        print(percentiles("explain, client round trip", tally.explain))
        print(percentiles("explain, server time", explain_server))
        print(percentiles("view (/gate_view, /cam_view)", tally.view))
        during = overlapping(tally.view_spans, tally.slow_spans)
        slowest = max(during, default=0.0)
        print(percentiles("view while a slow one ran", during))
        print(
            f"  check: no view of a result in memory over {VIEW_TARGET_S:g} s while a slow method "
            f"ran: {'yes' if slowest <= VIEW_TARGET_S else 'NO'} (max {slowest * 1000:.0f} ms)"
        )
        print(percentiles("view, evicted (recomputed)", tally.evicted))
        print(
            f"  evicted views asked to press Explain (two already recomputing): {tally.asked_again}"
        )
        for method in args.slow_methods.split(","):
            runs = [(s, o) for m, s, o in tally.slow if m == method]
            stopped = sum(o != "done" for _, o in runs)
            if runs:
                print(
                    f"  slow {method:<13} at {SLOW.get(method, 'layer4')}: {len(runs)} runs, "
                    f"{stopped} stopped by the {args.time_limit:g} s limit, "
                    f"max {max(s for s, _ in runs):.1f} s"
                )
        print(f"  errors: {tally.errors}   cross-talk: {tally.cross_talk}")
        for message in tally.messages:
            print(f"    {message}")
        failures = len(re.findall(r" ERROR ", log_path.read_text()))
        print(f"  server log: {failures} ERROR lines")
        peak = max([end["VmHWM"] // 1024, *sampler.samples])
        growth = (end["VmRSS"] - after_warmup) / 1024
        print(
            f"  RSS after warm-up {after_warmup / 1024:.0f} MB, peak {peak} MB, "
            f"final {end['VmRSS'] / 1024:.0f} MB, growth {growth:+.1f} MB"
        )
        print(f"  RSS every {args.sample_every:g} s (MB): {sampler.samples}")
        stopping = time.perf_counter()
        stop(process)
        code = process.wait()
        how = "killed after the SIGTERM timeout" if code == -9 else f"exit status {code}"
        print(f"  server stopped after SIGTERM: {how}, {time.perf_counter() - stopping:.1f} s")
        process = None
        return 1 if tally.errors or tally.cross_talk or slowest > VIEW_TARGET_S else 0
    finally:
        if process is not None:
            stop(process)
            process.wait()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
