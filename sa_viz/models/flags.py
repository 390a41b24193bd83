"""The command-line flags that choose each model's weights and the device (`--weights-dir`, one
flag per registered model, `--device`, `--no-download`, each with its environment variable),
shared by `sa-viz explain`, `study`, `weights` and `serve`, and the models they load."""

from __future__ import annotations

import argparse
import os
import runpy
from collections.abc import Sequence
from pathlib import Path

from sa_viz.models.registry import get_model, list_models
from sa_viz.models.weights import LoadedModel, load_models


def add_weights_arguments(parser: argparse.ArgumentParser) -> None:
    """The weights flags shared by the CLI and the app, one per registered model; each has an
    environment variable."""
    group = parser.add_argument_group("weights")
    group.add_argument(
        "--weights-dir",
        default=os.environ.get("SA_VIZ_WEIGHTS_DIR"),
        help="folder with the checkpoints (env SA_VIZ_WEIGHTS_DIR; default: ./weights when "
        "there is one, else a folder in the user's cache)",
    )
    for name in list_models():
        spec = get_model(name).weights
        group.add_argument(
            spec.flag,
            dest=f"weights_{name}",
            default=os.environ.get(spec.env_var),
            metavar="PATH",
            help=f"{get_model(name).title} checkpoint file (env {spec.env_var})",
        )
    group.add_argument(
        "--device",
        default=os.environ.get("SA_VIZ_DEVICE", "auto"),
        choices=["auto", "cpu", "cuda"],
        help="where the models run: auto (a CUDA GPU when there is one, else the CPU), cpu or "
        "cuda (env SA_VIZ_DEVICE; default auto)",
    )
    group.add_argument(
        "--no-download",
        action="store_true",
        default=os.environ.get("SA_VIZ_NO_DOWNLOAD", "").lower() in {"1", "true", "yes"},
        help="never try to download published weights (env SA_VIZ_NO_DOWNLOAD=1)",
    )


def add_model_file_argument(parser: argparse.ArgumentParser) -> None:
    """`--model-file FILE.py` (repeatable): the researcher's own models, registered by the file."""
    parser.add_argument(
        "--model-file",
        action="append",
        default=[],
        type=Path,
        metavar="FILE.py",
        help="a Python file that registers your own model (sa_viz.register_model(name, builder, "
        "checkpoint=...)); its name can then be given to --models. Repeatable",
    )


def run_model_files(parser: argparse.ArgumentParser, paths: Sequence[Path]) -> None:
    """Run each `--model-file`; one that is missing or fails ends the command with the
    parser's error, naming the file and what went wrong."""
    for path in paths:
        if not path.is_file():
            parser.error(f"--model-file {path}: no such file")
        try:
            runpy.run_path(str(path), run_name="sa_viz_model_file")
        except Exception as error:  # the researcher's code: any failure is theirs to see
            parser.error(f"--model-file {path}: {type(error).__name__}: {error}")


def models_from_args(
    args: argparse.Namespace, names: Sequence[str] | None = None
) -> dict[str, LoadedModel]:
    return load_models(
        args.weights_dir,
        {name: getattr(args, f"weights_{name}", None) for name in list_models()},
        allow_download=not args.no_download,
        names=names,
        device=getattr(args, "device", None),
    )
