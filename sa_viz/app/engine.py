"""The models of a running server: loaded in the background, used by one request at a time.

The app answers HTTP while the models load (torch's imports and the checkpoints take seconds);
requests that need them wait. Explanations are kept in a small LRU cache keyed by the input's
pixels and the settings that change the numbers, so a repeated image or a back-and-forth between
settings does not run the models again. An entry holds every gate map (~17 MB for a 224×337
input), so the cache is what bounds the memory results take: sessions hold weak references
and the file to compute a dropped result again from (`Engine.remember` / `Engine.recall`),
never results of their own. Each computation has a time
limit. No gradio in this module.
"""

from __future__ import annotations

import atexit
import dataclasses
import gc
import hashlib
import logging
import threading
import time
import weakref
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from sa_viz.app.runtime import HeapBudget, OffHeap, release_free_memory
from sa_viz.cam import DEFAULT_LAYER, METHODS
from sa_viz.data.preprocess import (
    DEFAULT_LIMITS,
    ImageSource,
    Limits,
    prepare_image,
)
from sa_viz.hooks import Stopped, time_limit
from sa_viz.models.registry import DEFAULT_PAIR, parse_pair
from sa_viz.models.weights import LoadedModel, WeightsStatus
from sa_viz.pipeline.explain import (
    Explanation,
    ModelExplanation,
    check_models,
    check_settings,
    explain_models,
    preprocessing_of,
)
from sa_viz.studies import run_study

log = logging.getLogger(__name__)

Progress = Callable[[float, str], None]


class ModelsUnavailable(RuntimeError):
    """The models could not be loaded (or not in time); the message says why."""


class ResultExpired(LookupError):
    """A session's result was dropped from the cache; explaining the image again restores it."""


class NothingYet(LookupError):
    """The session has not explained an image yet."""


@dataclass(frozen=True)
class Settings:
    """Everything that changes the computed numbers (not the view)."""

    crop: bool = False
    class_idx: int | None = None
    layer: str = "layer4"
    method: str = "gradcam"
    models: tuple[str, ...] = DEFAULT_PAIR  # compared in this order

    def __post_init__(self) -> None:
        check_settings(self.layer, self.method)
        object.__setattr__(self, "models", parse_pair(",".join(self.models)))


@dataclass(frozen=True)
class Kept:
    """A session's hold on its result; see `Engine.remember`."""

    result: weakref.ref[Explanation]
    source: str | None  # the uploaded file the result came from (None: not kept)
    settings: Settings


class Sessions:
    """What each session holds: the `Kept` of its latest result, by session id.

    Bounded: the `capacity` most recently used sessions (a `Kept` is a weak reference, a file
    name and the settings: a few hundred bytes). The ids of sessions pushed out are remembered
    (up to `forgotten` of them, ~100 bytes each), so a page whose result was pushed out by
    other users' traffic is told so instead of being asked to "explain an image first".
    """

    def __init__(self, capacity: int = 10_000, forgotten: int = 100_000) -> None:
        self.capacity = capacity
        self.forgotten = forgotten
        self._kept: OrderedDict[str, Kept] = OrderedDict()
        self._expired: OrderedDict[str, None] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._kept)

    def keep(self, session: str, kept: Kept) -> None:
        with self._lock:
            self._kept[session] = kept
            self._kept.move_to_end(session)
            self._expired.pop(session, None)
            while len(self._kept) > self.capacity:
                old, _ = self._kept.popitem(last=False)
                self._expired[old] = None
            while len(self._expired) > self.forgotten:
                self._expired.popitem(last=False)

    def get(self, session: str | None) -> Kept:
        """The session's `Kept`; `NothingYet` or `ResultExpired` (with a sentence) otherwise."""
        with self._lock:
            kept = self._kept.get(session) if session is not None else None
            if kept is not None:
                self._kept.move_to_end(session)
                return kept
            expired = session in self._expired
        if expired:
            raise ResultExpired(
                "This page's result has expired: the server keeps the results of its "
                f"{self.capacity:,} most recently active sessions, and other users' requests "
                "pushed yours out. Press Explain to compute it again."
            )
        raise NothingYet("Explain an image first.")


_STARTED: weakref.WeakSet[Engine] = weakref.WeakSet()


@atexit.register
def _stop_engines() -> None:
    """At exit, stop what the engines still compute (warming up, say) and wait for it: the
    interpreter must not finalise while a thread is inside torch (that aborted the process,
    `terminate called without an active exception`, when a script ended during a warm-up)."""
    for engine in list(_STARTED):
        engine.shutdown(timeout=10)


class Engine:
    def __init__(
        self,
        loader: Callable[[], Mapping[str, LoadedModel]],
        *,
        limits: Limits = DEFAULT_LIMITS,
        cache_size: int = 4,
        time_limit: float | None = 30.0,
    ) -> None:
        self._loader = loader
        self.limits = limits
        self.time_limit = time_limit
        self._models: Mapping[str, LoadedModel] | None = None
        self._failure: str | None = None
        self._ready = threading.Event()
        # One computation at a time per lane: one-pass methods in one, methods with many passes
        # (ScoreCAM) in the other, so a long one never holds up anyone's Grad-CAM.
        self._compute = threading.Lock()
        self._long = threading.Lock()
        self._study = threading.Lock()  # the Study tab's studies: one at a time, in their own lane
        self._cache: OrderedDict[tuple, Explanation] = OrderedDict()
        self._cache_size = cache_size
        self._cache_lock = threading.Lock()
        self._stop = threading.Event()  # set by `stop_computing`: computations end
        # View updates whose result was dropped from the cache compute it again; at most this
        # many wait for the models at once, so they never fill the lane that view updates of
        # cached results share (see `recall`).
        self._recomputing = threading.BoundedSemaphore(2)
        self.heap = HeapBudget()
        self._off_heap = OffHeap()
        self._loading: threading.Thread | None = None  # `start`'s, until the models are in

    def start(self) -> Engine:
        """Load the models in a background thread; returns at once."""
        _STARTED.add(self)
        self._loading = threading.Thread(target=self._load, name="sa-viz-load-models", daemon=True)
        self._loading.start()
        return self

    def _load(self) -> None:
        try:
            models = dict(self._loader())
            release_free_memory()  # what loading the checkpoints allocated and freed
            self._warm_up(models)
            # Everything alive now (torch, gradio, the models) lives as long as the server:
            # moved out of the cycle collector's sight, a full collection (after a refused
            # image, after full-backward CAM methods) takes ~0.1 ms instead of ~250 ms.
            gc.collect()
            gc.freeze()
            self.heap.start()
            self._models = models
        except Stopped:
            log.info("stopped while warming up the models")
            self._failure = "the server is stopping"
        except Exception as error:  # reported on the page; the server keeps serving
            log.exception("loading the models failed")
            self._failure = f"{type(error).__name__}: {error}"
        finally:
            self._ready.set()

    def _warm_up(self, models: Mapping[str, LoadedModel]) -> None:
        """One explanation of each model on a blank image before the first request: grows the
        heap to its working size and lets the libraries set up, so neither lands on the first
        user."""
        blank = prepare_image(
            np.full((224, 224, 3), 128, np.uint8), preprocessing=preprocessing_of(models)
        )
        with self._compute:  # `shutdown` waits for it like for any computation
            explain_models(models, blank, stop=self._stop)

    @property
    def ready(self) -> bool:
        return self._ready.is_set()

    def models(self, timeout: float | None = None) -> Mapping[str, LoadedModel]:
        if not self._ready.wait(timeout):
            raise ModelsUnavailable("The models are still loading; try again in a few seconds.")
        if self._models is None:
            raise ModelsUnavailable(f"The models could not be loaded: {self._failure}")
        return self._models

    def statuses(self, timeout: float | None = None) -> list[WeightsStatus]:
        return [m.status for m in self.models(timeout).values()]

    def explain(
        self,
        source: ImageSource,
        settings: Settings,
        progress: Progress | None = None,
    ) -> Explanation:
        """Explain `source` with the two models of `settings` (from the cache when the same
        pixels and settings were explained recently). Raises `ImageError` for unusable images."""
        report = progress or (lambda _f, _t: None)
        report(0.02, "Reading the image")
        prepared = prepare_image(
            source,
            crop=settings.crop,
            limits=self.limits,
            preprocessing=preprocessing_of(settings.models),
        )
        key = (hashlib.sha256(prepared.display.tobytes()).hexdigest(), prepared.size, settings)
        with self._cache_lock:
            if key in self._cache:
                self._cache.move_to_end(key)
                return self._cache[key]
        report(0.05, "Waiting for the models")
        loaded = self.models(timeout=300)
        models = {name: loaded[name] for name in settings.models if name in loaded}
        if len(models) != len(settings.models):
            raise ValueError(
                f"this server has not loaded {', '.join(set(settings.models) - set(models))}"
            )
        check_models(models, settings.layer)
        method = METHODS[settings.method]
        lane = self._long if method.long else self._compute
        with lane:
            report(0.1, f"{method.title}, predictions and gates")
            start = time.monotonic()
            per_model = explain_models(
                models,
                prepared,
                lambda fraction, title: report(0.1 + 0.85 * fraction, f"{method.title}: {title}"),
                class_idx=settings.class_idx,
                layer=settings.layer,
                method=settings.method,
                deadline=None if self.time_limit is None else start + self.time_limit,
                stop=self._stop,
            )
            if settings.method != "gradcam":
                # The other methods run full backward passes (or one pass per channel): ~1 GB of
                # activations and gradients that glibc would otherwise keep (measured: 2.4 GB
                # RSS after 30 Grad-CAM++ requests without this, 1.4 GB with it; ~70 ms).
                gc.collect()  # pytorch-grad-cam's objects hold tensors in reference cycles
            self.heap.enforce(force=settings.method != "gradcam")
        result = Explanation(
            prepared,
            self._keep(per_model),
            settings.layer,
            settings.method,
            settings.class_idx,
        )
        with self._cache_lock:
            self._cache[key] = result
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        report(0.95, "Rendering")
        return result

    def _keep(self, per_model: dict[str, ModelExplanation]) -> dict[str, ModelExplanation]:
        """The models' results with their gate maps and CAMs moved out of the heap, into one
        mapping per result (see `OffHeap`): they live as long as the cache keeps the result."""
        arrays = [
            array
            for m in per_model.values()
            for array in (
                m.cam,
                *(
                    t.numpy()
                    for g in m.gates.values()
                    for t in (g.channel, g.spatial)
                    if t is not None
                ),
            )
        ]
        moved = iter(self._off_heap.copy(arrays))
        kept = {}
        for name, m in per_model.items():
            cam = next(moved)
            gates = {
                unit: dataclasses.replace(
                    g,
                    # in the order moved: the channel gates (where the unit has them), then
                    # the spatial ones (Global Context's `gca` units have only these)
                    channel=None if g.channel is None else torch.from_numpy(next(moved)),
                    spatial=None if g.spatial is None else torch.from_numpy(next(moved)),
                )
                for unit, g in m.gates.items()
            }
            kept[name] = dataclasses.replace(m, cam=cam, gates=gates)
        return kept

    def remember(self, result: Explanation, source: ImageSource, settings: Settings) -> Kept:
        """What a session keeps of a result: a weak reference (alive while the cache, or a request
        being served, holds the result) and, for an uploaded file, how to compute it again."""
        again = (
            source
            if isinstance(source, (str, Path)) and not str(source).startswith("data:")
            else None
        )
        return Kept(weakref.ref(result), None if again is None else str(again), settings)

    def recall(self, kept: Kept) -> Explanation:
        """The session's result: from memory, or computed again from its file if the cache
        dropped it (the file stays in gradio's upload folder for an hour).

        Computing it again waits for the models like any explanation; at most two view updates
        do that at once (more are asked to press Explain), so view updates of results still in
        memory, which share their lane, never wait behind another user's computation."""
        result = kept.result()
        if result is not None:
            return result
        if METHODS[kept.settings.method].long:
            raise ResultExpired(
                f"This {METHODS[kept.settings.method].title} result is no longer in memory, and "
                "a view update does not run a long method again. Press Explain to compute it."
            )
        if kept.source is None or not Path(kept.source).is_file():
            raise ResultExpired(
                "This result is no longer in memory (the server keeps the most recent "
                "explanations of all its users). Press Explain to compute it again."
            )
        if not self._recomputing.acquire(blocking=False):
            raise ResultExpired(
                "This result is no longer in memory and the server is busy computing other "
                "results again. Press Explain to compute it, or try again in a few seconds."
            )
        try:
            return self.explain(kept.source, kept.settings)
        finally:
            self._recomputing.release()

    def study(
        self,
        images: Path,
        out: Path,
        names: Sequence[str],
        analyses: Sequence[str] = (),
        *,
        layer: str = DEFAULT_LAYER,
        title: str | None = None,
    ) -> dict[str, Any]:
        """A study of the images in the folder `images` with the models `names` (and the
        registered `analyses` of every image), into `out`, Grad-CAM at `layer`, its report
        titled by `title`; one at a time, beside (not behind) the explanations, and stopped
        like them."""
        loaded = self.models(timeout=300)
        missing = [name for name in names if name not in loaded]
        if missing:
            raise ValueError(f"this server has not loaded {', '.join(missing)}")
        models = {name: loaded[name] for name in names}
        with self._study, ExitStack() as stack:
            for m in models.values():
                stack.enter_context(time_limit(m.module, None, self._stop))
            # The progress bar is tqdm's: the Study tab's progress follows it.
            return run_study(
                images, out, models, batch_size=8, workers=0, progress=True, limits=self.limits,
                analyses=list(analyses), layer=layer, title=title,
            )  # fmt: skip

    def analyse(self, compute: Callable[[Mapping[str, LoadedModel]], Any]) -> Any:
        """`compute(models)` for an analysis of a result (deletion/insertion, knockout): in the
        lane of the long CAM methods, beside the one-pass explanations, within the time
        limit, stopped like any computation."""
        loaded = self.models(timeout=300)
        with self._long, ExitStack() as stack:
            deadline = time.monotonic() + self.time_limit if self.time_limit else None
            for m in loaded.values():
                stack.enter_context(time_limit(m.module, deadline, self._stop))
            return compute(loaded)

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def release_refused(self) -> None:
        """After a refused image: free what earlier refusals left. gradio keeps each failed
        event's error in a reference cycle with its frame (the request's payload among its
        locals) until Python's cycle collector runs, and the payload was parsed and decoded in
        many small pieces that glibc keeps as free heap: RSS rose ~107 MB per refused 40 MB
        data: URL, up to the next explanation. With the server's objects frozen (`_load`),
        the collection takes well under a millisecond, the heap trim ~8 ms."""
        gc.collect()
        self.heap.enforce(force=True)

    def stop_computing(self) -> None:
        """The running computation stops at its next check (between residual blocks, ScoreCAM
        batches or SVD steps), with `sa_viz.hooks.Stopped`; so does every later one."""
        self._stop.set()

    def shutdown(self, timeout: float = 10.0) -> bool:
        """`stop_computing`, then wait up to `timeout` s for the running computation to end;
        True once none runs."""
        self.stop_computing()
        started = time.monotonic()
        if not self._ready.wait(timeout):  # reading checkpoints cannot be stopped
            return False
        # The loading thread to its end: a warm-up it stopped leaves its models to be freed as
        # the thread returns, and the process aborted (`terminate called without an active
        # exception`, ~1 in 5 SIGTERMs during the warm-up) when that met the interpreter's
        # shutdown.
        loading = self._loading
        if loading is not None and loading is not threading.current_thread():
            loading.join(max(0.0, timeout - (time.monotonic() - started)))
            if loading.is_alive():
                return False
        for lane in (self._compute, self._long, self._study):
            if not lane.acquire(timeout=max(0.0, timeout - (time.monotonic() - started))):
                return False
            lane.release()
        return True
