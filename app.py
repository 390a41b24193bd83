"""SA-Viz web app: `python app.py`, then open http://127.0.0.1:7860."""

from __future__ import annotations

import argparse
import logging
import os

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # never needs the network to start


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    from sa_viz.cli import add_weights_arguments

    env = os.environ.get
    parser = argparse.ArgumentParser(description="SA-Viz: ResNet-50 vs SA-ResNet-50 in the browser")
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
    add_weights_arguments(parser)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )

    from sa_viz.cli import models_from_args
    from sa_viz.engine import Engine
    from sa_viz.runtime import tune_allocator
    from sa_viz.ui import CSS, build_app

    tune_allocator()

    engine = Engine(lambda: models_from_args(args)).start()
    demo = build_app(engine)
    demo.queue(max_size=32, default_concurrency_limit=1)
    demo.launch(
        server_name=args.host,
        server_port=args.port,
        share=args.share,
        css=CSS,
        ssr_mode=False,
        show_error=True,
    )


if __name__ == "__main__":
    main()
