"""The web app's process: `sa-viz serve`, then open http://127.0.0.1:7860.

Every limit has a flag and an environment variable (`sa-viz serve --help`); README.md, "Security
and limits", says what each protects. This module makes the process-wide settings (temp folder,
signals, malloc, OpenCV threads); nothing outside `sa_viz.app` does.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sa_viz.app.tempspace import TempSpace

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # never needs the network to start


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    from sa_viz.models.flags import (
        add_model_file_argument,
        add_weights_arguments,
        run_model_files,
    )

    env = os.environ.get
    parser = argparse.ArgumentParser(
        prog="sa-viz serve",
        description="SA-Viz in the browser: two to four models compared, their CAMs and gates",
    )
    parser.add_argument(
        "--host",
        default=env("SA_VIZ_HOST", "127.0.0.1"),
        help="address to serve on (env SA_VIZ_HOST; 0.0.0.0 for every interface)",
    )
    parser.add_argument(
        "--port", type=int, default=int(env("SA_VIZ_PORT", "7860")), help="port (env SA_VIZ_PORT)"
    )
    parser.add_argument(
        "--share",
        action="store_true",
        default=env("SA_VIZ_SHARE", "").lower() in {"1", "true", "yes"},
        help="also open a public gradio.live link (env SA_VIZ_SHARE=1; needs internet)",
    )
    parser.add_argument(
        "--auth",
        default=env("SA_VIZ_AUTH"),
        metavar="USER:PASSWORD",
        help="ask for this user name and password before anything is served (env SA_VIZ_AUTH)",
    )
    limits = parser.add_argument_group("limits")
    limits.add_argument(
        "--max-upload-mb",
        type=positive(float),
        default=float(env("SA_VIZ_MAX_UPLOAD_MB", "50")),
        help="largest upload or data: URL image, in MB (env SA_VIZ_MAX_UPLOAD_MB; default 50)",
    )
    limits.add_argument(
        "--max-megapixels",
        type=positive(float),
        default=float(env("SA_VIZ_MAX_MEGAPIXELS", "50")),
        help="largest image, in megapixels (env SA_VIZ_MAX_MEGAPIXELS; default 50)",
    )
    limits.add_argument(
        "--max-queue",
        type=positive(int),
        default=int(env("SA_VIZ_MAX_QUEUE", "32")),
        help="requests that may wait; more are answered 'queue is full, try again' "
        "(env SA_VIZ_MAX_QUEUE; default 32)",
    )
    limits.add_argument(
        "--time-limit",
        type=positive(float),
        default=float(env("SA_VIZ_TIME_LIMIT", "30")),
        help="seconds one explanation may compute before it is stopped "
        "(env SA_VIZ_TIME_LIMIT; default 30)",
    )
    limits.add_argument(
        "--max-sessions",
        type=positive(int),
        default=int(env("SA_VIZ_MAX_SESSIONS", "10000")),
        help="sessions whose latest result stays reachable by view updates and exports; an "
        "older session is told that its result expired (env SA_VIZ_MAX_SESSIONS; default 10000)",
    )
    studies = parser.add_argument_group("studies (the Study tab)")
    studies.add_argument(
        "--studies-dir",
        type=Path,
        default=env("SA_VIZ_STUDIES_DIR"),
        help="a folder of studies written by `sa-viz study`: the Study tab opens those, and "
        "nothing else on the server (env SA_VIZ_STUDIES_DIR; default: none)",
    )
    studies.add_argument(
        "--max-study-images",
        type=positive(int),
        default=int(env("SA_VIZ_MAX_STUDY_IMAGES", "200")),
        help="images one study from the page may have (env SA_VIZ_MAX_STUDY_IMAGES; default 200)",
    )
    studies.add_argument(
        "--max-study-mb",
        type=positive(float),
        default=float(env("SA_VIZ_MAX_STUDY_MB", "200")),
        help="the images of one study from the page together, unpacked, in MB "
        "(env SA_VIZ_MAX_STUDY_MB; default 200)",
    )
    models = parser.add_argument_group("models")
    models.add_argument(
        "--models",
        default=env("SA_VIZ_MODELS", ""),
        metavar="A,B,...",
        help="models to offer besides the built-in ones: timm zoo names (seresnet50.ra2_in1k, "
        "ecaresnet50d.miil_in1k, ...), timm:NAME, or names registered by --model-file "
        "(env SA_VIZ_MODELS)",
    )
    add_model_file_argument(models)
    add_weights_arguments(parser)
    args = parser.parse_args(argv)
    if args.auth is not None and ":" not in args.auth[1:-1]:
        parser.error("--auth takes USER:PASSWORD, both non-empty")
    # Registered before the app's modules are imported: they list the models as they load.
    run_model_files(parser, args.model_file)
    if args.models:
        from sa_viz.models import get_model, list_models, parse_models, register_model

        try:
            names = parse_models(args.models)
        except ValueError as error:
            parser.error(f"--models: {error}")
        for name in names:  # listed, so the page offers them and the engine loads them
            if name not in list_models():
                register_model(get_model(name))
    return args


def positive(kind: type) -> Callable[[str], Any]:
    def parse(text: str) -> Any:
        value = kind(text)
        if value <= 0:
            raise argparse.ArgumentTypeError(f"must be positive, got {text}")
        return value

    parse.__name__ = kind.__name__  # argparse names the type in its error messages
    return parse


def own_temp_space() -> TempSpace:
    """Everything the app writes (rendered pictures, exports, gradio's copies of uploads and
    outputs, and whatever a library puts in the temp folder: torch makes `torchinductor_<user>`
    when it is imported) goes into one folder of its own, removed when the server stops. Made
    before anything imports torch, and the process's temp folder from then on."""
    import tempfile

    from sa_viz.app.tempspace import TempSpace

    space = TempSpace()
    os.environ["TMPDIR"] = str(space.root)
    tempfile.tempdir = None  # gettempdir() reads TMPDIR again
    os.environ.setdefault("GRADIO_TEMP_DIR", str(space.root / "gradio"))
    return space


def main(argv: list[str] | None = None) -> None:
    # Until the server runs, `kill` stops the process as Ctrl+C does, so the folder still goes.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    space = own_temp_space()
    try:
        serve(parse_args(argv), space)
    except KeyboardInterrupt:
        pass  # stopped before the server ran
    finally:
        space.cleanup()


def serve(args: argparse.Namespace, space: TempSpace) -> None:
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )

    from sa_viz.app.runtime import single_threaded_opencv, tune_allocator

    tune_allocator()
    single_threaded_opencv()
    from starlette.middleware import Middleware

    from sa_viz.app.engine import Engine, Sessions
    from sa_viz.app.gradio_internals import configure_queue
    from sa_viz.app.guard import RequestGuard, body_limit
    from sa_viz.app.layout import CSS
    from sa_viz.app.study_tab import StudyLimits
    from sa_viz.app.wiring import GRADIO_SESSIONS, build_app
    from sa_viz.data.preprocess import Limits
    from sa_viz.models.device import DeviceUnavailable, resolve_device
    from sa_viz.models.flags import models_from_args

    try:
        device = resolve_device(args.device)
    except DeviceUnavailable as error:
        raise SystemExit(f"sa-viz serve: error: {error}") from None
    logging.getLogger("sa_viz").info("models run on %s", device)
    limits = Limits(
        max_bytes=int(args.max_upload_mb * 2**20), max_pixels=int(args.max_megapixels * 1e6)
    )
    engine = Engine(lambda: models_from_args(args), limits=limits, time_limit=args.time_limit)

    def stop(_signal: int, _frame: object) -> None:
        """Ctrl+C or `kill` (SIGTERM): the running computation ends at its next check (between
        residual blocks, ScoreCAM batches or SVD steps) while gradio closes the server; then
        the process waits for it and removes its temp folder (below and in `main`)."""
        if engine.stopping:
            return  # a second Ctrl+C or SIGTERM: the process is already stopping
        engine.stop_computing()
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    engine.start()
    demo = None
    try:
        demo = build_app(
            engine,
            space=space,
            sessions=Sessions(args.max_sessions),
            study_limits=StudyLimits(args.max_study_images, int(args.max_study_mb * 2**20)),
            studies_dir=args.studies_dir,
        )
        configure_queue(demo, max_size=args.max_queue)
        guard = Middleware(
            RequestGuard, max_body=body_limit(limits.max_bytes), max_image_bytes=limits.max_bytes
        )
        demo.launch(
            server_name=args.host,
            server_port=args.port,
            share=args.share,
            auth=tuple(args.auth.split(":", 1)) if args.auth else None,
            css=CSS,
            ssr_mode=False,
            max_file_size=limits.max_bytes,
            enable_monitoring=False,  # no /monitoring route
            show_error=False,  # only the handlers' own messages reach the page (no paths)
            state_session_capacity=GRADIO_SESSIONS,
            # gradio records each public event's inputs and outputs for a run history page
            # (kept in the browser, or sent to a Hugging Face bucket): this app keeps no record
            # of what its users send, and never talks to the Hub.
            run_history=False,
            app_kwargs={"middleware": [guard]},
        )
    except KeyboardInterrupt:
        pass  # the signal came while gradio was still starting (or closing)
    finally:
        # gradio closes its server when a signal reaches it while it serves; one that came
        # during `launch` (before it serves) left it running, and its thread would keep the
        # process alive. Closing again does nothing.
        if demo is not None:
            demo.close(verbose=False)
        # The request still computing stops at its next check (between residual blocks, ScoreCAM
        # batches or SVD steps); waiting for it lets the process end cleanly, with no thread
        # inside torch or LAPACK while the interpreter shuts down.
        if not engine.shutdown(timeout=10):
            # Still reading checkpoints, or inside a step no check reaches: the interpreter's
            # shutdown must not meet a thread inside torch (that aborted the process before).
            logging.getLogger("sa_viz").warning("the models did not stop in 10 s; exiting now")
            space.cleanup()
            logging.shutdown()
            os._exit(0)
