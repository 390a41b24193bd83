"""The `sa-viz` command (also `python -m sa_viz`): explain, study, cluster, weights, serve."""

from __future__ import annotations

import argparse
import json
import sys
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sa_viz.models.weights import LoadedModel, WeightsStatus
    from sa_viz.pipeline.explain import Explanation


def models_or_exit(
    parser: argparse.ArgumentParser, args: argparse.Namespace, names: Sequence[str]
) -> dict[str, LoadedModel]:
    """The models `names` from the weights flags, each one's weights status on stderr (and a
    note for each kind of module that looks like attention but that no probe reads); a device
    that is not there ends the command with the parser's error."""
    from sa_viz.models.device import DeviceUnavailable
    from sa_viz.models.flags import models_from_args

    try:
        models = models_from_args(args, names)
    except DeviceUnavailable as error:
        parser.error(str(error))
    from sa_viz.probes import unread_lines, unread_of

    for loaded in models.values():
        print(
            ("warning: " if loaded.status.untrained else "") + loaded.status.message,
            file=sys.stderr,
        )
        # Named, not silently left out of the gate figures and the JSON's `gates`.
        for line in unread_lines(unread_of(loaded.module)):
            print(f"note: {loaded.title} has {line}", file=sys.stderr)
    return models


# sa-viz explain ------------------------------------------------------------------------------


def explain_parser() -> argparse.ArgumentParser:
    from sa_viz.cam import DEFAULT_LAYER, LAYERS, METHODS
    from sa_viz.models import list_models
    from sa_viz.models.flags import (
        add_model_file_argument,
        add_weights_arguments,
    )
    from sa_viz.render import COLORMAPS, DEFAULT_ALPHA, DEFAULT_COLORMAP

    parser = argparse.ArgumentParser(
        prog="sa-viz explain",
        description="Explain images with two models (default ResNet-50 and SA-ResNet-50): per "
        "image, a side-by-side CAM figure, a gate figure for one attention unit of each model "
        "that has gates, and a JSON of predictions.",
    )
    parser.add_argument("images", nargs="+", type=Path, help="image files")
    parser.add_argument("--out", type=Path, required=True, help="folder for the results")
    parser.add_argument(
        "--models",
        default="resnet50,sa_resnet50",
        help="one to four models to compare, in order, from: " + ", ".join(list_models()) + ", "
        "timm's attention zoo (seresnet50.ra2_in1k, ecaresnet50d.miil_in1k, "
        "gcresnet50t.ra2_in1k, resnest50d.in1k, skresnext50_32x4d.ra_in1k, resnet50.a1_in1k), "
        "timm:NAME, or a --model-file's (the figure shows them in this order; "
        "default resnet50,sa_resnet50)",
    )
    add_model_file_argument(parser)
    parser.add_argument(
        "--unit",
        default="layer3.0",
        help="attention unit for the gate figure (layer1.0 … layer4.2)",
    )
    parser.add_argument("--layer", default=DEFAULT_LAYER, choices=LAYERS, help="CAM layer")
    parser.add_argument("--method", default="gradcam", choices=list(METHODS), help="CAM method")
    parser.add_argument(
        "--class",
        dest="class_",
        metavar="CLASS",
        help="explain this ImageNet class (index or "
        "name) in both models; default: each model's own top-1",
    )
    parser.add_argument("--crop", action="store_true", help="centre-crop (evaluation protocol)")
    parser.add_argument("--colormap", default=DEFAULT_COLORMAP, choices=COLORMAPS)
    parser.add_argument("--alpha", type=float, default=DEFAULT_ALPHA, help="overlay opacity")
    parser.add_argument(
        "--analyses",
        default="",
        metavar="A,B,...",
        help="analyses of each image and model, in its JSON, from: " + known_analyses() + " "
        "(knockout and gate_randomisation: models with gates; mprt also writes "
        "<name>_mprt.png, every model's curve on one chart)",
    )
    add_figure_arguments(parser)
    add_debug_argument(parser)
    add_weights_arguments(parser)
    return parser


def explain_main(argv: Sequence[str] | None = None) -> int:
    from sa_viz.models import parse_models
    from sa_viz.models.flags import run_model_files

    parser = explain_parser()
    args = parser.parse_args(argv)
    chosen = parse_analyses(parser, args.analyses)
    run_model_files(parser, args.model_file)
    formats, width = figure_options(parser, args)
    from sa_viz.data.imagenet import class_index

    try:
        class_idx = None if args.class_ is None else class_index(args.class_)
        names = parse_models(args.models)
        check_unit(args.unit, names)
    except ValueError as error:
        parser.error(str(error))

    from sa_viz.pipeline.explain import analyse_explanation, explain

    models = models_or_exit(parser, args, names)
    try:
        args.out.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        print(f"error: can't create {args.out}: {error.strerror}", file=sys.stderr)
        return 2
    failures = 0
    for path, stem in zip(args.images, output_stems(args.images), strict=True):
        try:
            result = explain(
                path,
                models=models,
                class_idx=class_idx,
                layer=args.layer,
                method=args.method,
                crop=args.crop,
            )
            found = analyse_explanation(result, models, chosen)
            written = write_outputs(
                result,
                args.out,
                stem,
                args.unit,
                args.colormap,
                args.alpha,
                found,
                path.name,
                formats=formats,
                width=width,
            )
        except ValueError as error:  # ImageError, or settings the models can't take
            print(f"error: {path}: {error}", file=sys.stderr)
            failures += 1
            continue
        except Exception as error:  # unforeseen: the next image may still work
            report_unforeseen(str(path), error, args.debug)
            failures += 1
            continue
        print(f"{path}: " + ", ".join(str(p) for p in written))
    return 1 if failures else 0


def add_figure_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--format",
        default="png",
        metavar="F,F,...",
        help="the figures' formats, from png, svg, pdf (default png); SVG and PDF keep text as "
        "text (fonts embedded in PDF) and each map as one image at its own resolution",
    )
    parser.add_argument(
        "--figure-width",
        default=None,
        metavar="W",
        help="draw the figures for a paper: single (3.5 in, one column), double (7.1 in) or a "
        "width in inches, with 8-9 pt text (default: each figure's own size, for the screen)",
    )


def figure_options(
    parser: argparse.ArgumentParser, args: argparse.Namespace
) -> tuple[tuple[str, ...], float | None]:
    """`--format` and `--figure-width`: the formats, the width in inches (None: the figures'
    own); the parser's error for any other."""
    from sa_viz.outputs.files import parse_formats
    from sa_viz.render.paper import figure_width

    try:
        return parse_formats(args.format), figure_width(args.figure_width)
    except ValueError as error:
        parser.error(f"--format/--figure-width: {error}")


def add_debug_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--debug",
        action="store_true",
        help="print the whole traceback of an unexpected failure (default: one line naming "
        "the file and the stage that failed)",
    )


def report_unforeseen(subject: str, error: Exception, debug: bool) -> None:
    """One line on stderr for a failure the code did not foresee: what failed, in which stage
    (`sa_viz.errors`), and the error; with `debug`, the traceback too."""
    from sa_viz.errors import failed_while

    if debug:
        traceback.print_exception(error, file=sys.stderr)
    first_line = (str(error).splitlines() or [""])[0]
    hint = "" if debug else " (run again with --debug for the traceback)"
    print(
        f"error: {subject}: {failed_while(error)}: {type(error).__name__}: {first_line}{hint}",
        file=sys.stderr,
    )


def check_unit(unit: str, names: Sequence[str]) -> None:
    """A ValueError naming the units when no compared model with gates has `unit` (a model
    without gates gets no gate figure either way)."""
    from sa_viz.probes import unit_names

    units = {name: unit_names(name) for name in names}
    gated = {name: found for name, found in units.items() if found}
    if gated and not any(unit in found for found in gated.values()):
        choices = sorted({u for found in gated.values() for u in found})
        raise ValueError(
            f"--unit {unit!r}: not an attention unit; choose one of {', '.join(choices)}"
        )


def output_stems(paths: Sequence[Path]) -> list[str]:
    """A distinct file-name stem per image: its own, or with its extension (and a number) added
    when images share a stem (cat.jpg, cat.png, other/cat.jpg → cat, cat_png, cat_jpg_2)."""
    stems: list[str] = []
    for path in paths:
        suffix = path.suffix.lstrip(".")
        stem = path.stem
        if stem in stems and suffix:
            stem = f"{path.stem}_{suffix}"
        base, number = stem, 2
        while stem in stems:
            stem, number = f"{base}_{number}", number + 1
        stems.append(stem)
    return stems


def write_outputs(
    result: Explanation,
    out: Path,
    stem: str,
    unit: str,
    colormap: str,
    alpha: float,
    analyses: dict[str, Any] | None = None,
    file: str | None = None,
    *,
    formats: Sequence[str] = ("png",),
    width: float | None = None,
) -> list[Path]:
    """Write the comparison figure and the gate grid, in each of `formats` and `width` inches
    wide (None: their own size), and the explanation's document (`sa_viz.outputs.document`,
    with the `analyses`, if any, and the image's `file` name)."""
    from sa_viz import render
    from sa_viz.errors import stage
    from sa_viz.outputs import files
    from sa_viz.outputs.document import explanation_document
    from sa_viz.render import figure_views
    from sa_viz.render.views import seen_by

    image = result.image.display
    panels = [
        (
            f"{m.title}: {m.top5[0].label} ({m.top5[0].probability:.2f})\n"
            f"CAM for '{m.target.label}' ({m.target.probability:.2f})",
            m.cam,
            m.untrained,
        )
        for m in result.models.values()
    ]
    pictures = {}
    with stage("drawing"):  # matplotlib draws as it encodes
        fig = render.comparison_figure(
            image,
            panels,
            colormap=colormap,
            alpha=alpha,
            suptitle=f"{result.method} at {result.layer}",
            width=width,
        )
        pictures |= files.figure_files(f"{stem}_cam", fig, formats)
        gated = [m for m in result.models.values() if unit in m.gates]
        for m in gated:
            fig = render.gate_grid_figure(
                seen_by(result, m.name),  # its gates lie on its own crop's pixels
                m.gates[unit],
                unit,
                colormap=colormap,
                alpha=alpha,
                untrained=m.untrained,
                width=width,
            )
            name = f"{stem}_gates_{unit}" if len(gated) == 1 else f"{stem}_gates_{m.name}_{unit}"
            pictures |= files.figure_files(name, fig, formats)
        titles = {name: m.title for name, m in result.models.items()}
        # The charts of the analyses that have one (the MPRT: every model's curve, its baseline)
        for name, fig in figure_views.analysis_charts(analyses or {}, titles, width).items():
            pictures |= files.figure_files(f"{stem}_{name}", fig, formats)
    with stage("export"):
        written = [files.write_bytes(out / name, data) for name, data in pictures.items()]
        document = explanation_document(result, analyses=analyses, file=file)
        written.append(files.write_json(out / f"{stem}.json", document))
    return written


# sa-viz weights ------------------------------------------------------------------------------


def weights_main(argv: Sequence[str] | None = None) -> int:
    from sa_viz.models.flags import add_weights_arguments, models_from_args

    parser = argparse.ArgumentParser(
        prog="sa-viz weights",
        description="Show which weights each model uses; import or download checkpoints.",
    )
    from sa_viz.models import get_model, list_models

    sub = parser.add_subparsers(dest="command")
    status = sub.add_parser("status", help="each model's weights status (the default)")
    status.add_argument("--json", action="store_true", help="machine-readable output")
    add_weights_arguments(status)
    imp = sub.add_parser("import", help="check an official SA-Net checkpoint, store a clean copy")
    imp.add_argument("path", type=Path, help="the official sa_resnet50.pth.tar")
    add_weights_arguments(imp)
    down = sub.add_parser("download", help="download the published weights that have a URL")
    down.add_argument(
        "models",
        nargs="*",
        choices=[name for name in list_models() if get_model(name).weights.url],
        help="which models (default: every one with a published URL)",
    )
    add_weights_arguments(down)
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] not in {"status", "import", "download", "-h", "--help"}:
        argv.insert(0, "status")
    args = parser.parse_args(argv)

    from sa_viz.models.weights import CheckpointError, download, import_official, weights_dir

    if args.command == "import":
        try:
            target, digest = import_official(args.path, args.weights_dir)
        except CheckpointError as error:
            print(f"error: {error}", file=sys.stderr)
            return 1
        print(f"{args.path} loads strictly into SA-ResNet-50.")
        print(f"wrote {target} ({target.stat().st_size / 1e6:.1f} MB, weights only)")
        print(f"sha256 {digest}")
        return 0
    if args.command == "download":
        try:
            names = args.models or [n for n in list_models() if get_model(n).weights.url]
            for name in names:
                print(f"wrote {download(name, args.weights_dir)}")
        except (CheckpointError, ValueError) as error:
            print(f"error: {error}", file=sys.stderr)
            return 1
        return 0

    args.no_download = True  # a status report never touches the network
    args.device = "cpu"  # nor needs a GPU
    models = models_from_args(args)
    if args.json:
        print(json.dumps({n: m.status.to_dict() for n, m in models.items()}, indent=2))
        return 0
    print(f"weights folder: {weights_dir(args.weights_dir)}")
    for loaded in models.values():
        print(format_status(loaded.status))
    return 0


def format_status(status: WeightsStatus) -> str:
    """One model's weights status as an aligned block of lines."""
    if not status.pretrained:
        state = "UNTRAINED: fixed-seed random initialisation (weights missing or unusable)"
    elif status.untrained_units:
        state = f"loaded, but {len(status.untrained_units)} attention units have untrained gates"
    else:
        state = "pretrained, published hash verified" if status.verified else "loaded from file"
    rows = {
        "status": state,
        "file": status.path,
        "size": f"{status.size / 1e6:.1f} MB" if status.size else None,
        "sha256": status.sha256,
        "source": status.source,
        "note": None if status.verified else status.message,
        "get it": status.how_to_get,
    }
    lines = [f"\n{status.title}"]
    lines += [f"  {key:<7} {value}" for key, value in rows.items() if value]
    return "\n".join(lines)


def serve_main(argv: Sequence[str] | None = None) -> int:
    """`sa-viz serve`: the web app (sa_viz/app/server.py); it sets up its own temp folder
    before torch is imported, so nothing heavy is imported before this call."""
    from sa_viz.app.server import main as server_main

    server_main(list(argv) if argv is not None else None)
    return 0


def study_parser() -> argparse.ArgumentParser:
    from sa_viz.cam import DEFAULT_LAYER, LAYERS
    from sa_viz.models.flags import add_model_file_argument, add_weights_arguments
    from sa_viz.models.registry import DEFAULT_PAIR

    parser = argparse.ArgumentParser(
        prog="sa-viz study",
        description="Explain a whole dataset with two models: one Parquet row per image and "
        "model (top-5, correct@1/@5, the raw Grad-CAM, every unit's gate summaries, the pair's "
        "CAM agreement) and study.json (accuracy with 95%% intervals, the paired comparison). "
        "Run the same command again to resume an interrupted study.",
    )
    parser.add_argument(
        "source",
        type=Path,
        help="a folder of images (recursive), an ImageFolder (one sub-folder per class), an "
        "ImageNet validation folder with LOC_val_solution.csv or its XML annotations, the root "
        "of Kaggle's ImageNet localisation download, or a .csv/.jsonl list",
    )
    parser.add_argument("--out", type=Path, required=True, help="folder for the study")
    parser.add_argument(
        "--models",
        default=",".join(DEFAULT_PAIR),
        help="one to four models, as for sa-viz explain (default: %(default)s)",
    )
    parser.add_argument("--batch-size", type=int, default=16, help="images per forward pass")
    parser.add_argument("--limit", type=int, default=None, help="study the first N images only")
    parser.add_argument("--layer", default=DEFAULT_LAYER, choices=LAYERS, help="CAM layer")
    parser.add_argument(
        "--whole-image",
        action="store_true",
        help="each image whole (shorter side 224) instead of the centre crop; one image a batch",
    )
    parser.add_argument(
        "--engine",
        default="local",
        choices=["local", "ray"],
        help="local: this process (default); ray: a Ray cluster, each worker holding the models "
        'once (needs pip install "sa-viz[ray]")',
    )
    parser.add_argument(
        "--address",
        default=None,
        help="with --engine ray: the cluster to join (e.g. auto or HOST:6379; default: "
        "RAY_ADDRESS, else a Ray instance started on this machine)",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=None,
        help="local: decoding processes (0: none; default: none on 2 cores or fewer, else half "
        "the cores, at most 8); ray: workers, each with the models and one CPU, or one GPU "
        "where the cluster has GPUs (default: one per GPU, else 2)",
    )
    parser.add_argument(
        "--analyses",
        default="",
        metavar="A,B,...",
        help="analyses to run on every image and model, from: " + known_analyses() + " "
        "(localisation needs boxes; each adds passes: deletion_insertion 34 per model and "
        "image, mprt about 50)",
    )
    parser.add_argument(
        "--report-classes",
        default=None,
        metavar="C,C,...",
        help="classes (index or name) for the report's per-class gate figure (default: the "
        "three most frequent labels)",
    )
    add_model_file_argument(parser)
    add_figure_arguments(parser)  # the report's figures: PNG for its page, others besides
    add_debug_argument(parser)
    add_weights_arguments(parser)
    return parser


def known_analyses() -> str:
    """The registered analyses' names, for the flags' help."""
    from sa_viz.analyses import analyses

    return ", ".join(analyses())


def parse_analyses(parser: argparse.ArgumentParser, text: str) -> list[str]:
    """`--analyses A,B`: registered analyses' names (the parser's error for any other)."""
    from sa_viz.analyses import analyses as known

    chosen = [a for a in text.split(",") if a]
    unknown = [a for a in chosen if a not in known()]
    if unknown:
        parser.error(f"--analyses: unknown {', '.join(unknown)}; known: {', '.join(known())}")
    return chosen


def check_study_args(
    parser: argparse.ArgumentParser, args: argparse.Namespace
) -> tuple[list[int], list[str]]:
    """The study's flags checked (the parser's error otherwise): its report classes and its
    analyses."""
    from sa_viz.data.imagenet import class_index

    try:
        report_classes = [class_index(c) for c in (args.report_classes or "").split(",") if c]
    except ValueError as error:
        parser.error(f"--report-classes: {error}")
    if args.batch_size < 1 or (args.limit is not None and args.limit < 0):
        parser.error("--batch-size must be at least 1 and --limit at least 0")
    chosen = parse_analyses(parser, args.analyses)
    if args.workers is not None and args.workers < 0:
        parser.error("--workers must be 0 or more")
    if args.engine == "ray":
        if args.workers is not None and args.workers < 1:
            parser.error("--engine ray needs --workers 1 or more")
        from sa_viz.pipeline.study_ray import RayUnavailable, import_ray

        try:
            import_ray()
        except RayUnavailable as error:
            parser.error(str(error))
    return report_classes, chosen


def study_main(argv: Sequence[str] | None = None) -> int:
    """`sa-viz study SOURCE --out DIR`: a dataset through the two models, into Parquet."""
    from sa_viz.models.flags import run_model_files
    from sa_viz.models.registry import parse_models

    parser = study_parser()
    args = parser.parse_args(argv)
    report_classes, chosen = check_study_args(parser, args)
    if args.model_file and args.engine == "ray":
        parser.error(
            "--model-file works with --engine local: Ray's workers start without your file "
            "(a timm zoo model by name works on both)"
        )
    run_model_files(parser, args.model_file)
    formats, width = figure_options(parser, args)
    try:
        names = parse_models(args.models)
    except ValueError as error:
        parser.error(str(error))
    from sa_viz.data.sources import SourceError, read_source
    from sa_viz.studies import run_study

    try:
        source = read_source(args.source)
    except (FileNotFoundError, SourceError) as error:
        parser.error(str(error))
    models = models_or_exit(parser, args, names)
    # Where the images are, when that is not the folder given (the Kaggle download's root).
    inside = "" if source.root == args.source else f" in {source.root}"
    print(
        f"{args.source}: {source.layout}{inside}, {len(source.items)} images, "
        f"{source.labelled} labelled, {len(source.problems)} problems "
        f"(see {args.out / 'problems.txt'})",
        file=sys.stderr,
    )
    try:
        summary = run_study(
            source,
            args.out,
            models,
            batch_size=1 if args.whole_image else args.batch_size,
            limit=args.limit,
            layer=args.layer,
            crop=not args.whole_image,
            workers=args.workers,
            engine=args.engine,
            address=args.address,
            report_classes=report_classes or None,
            analyses=chosen,
            figure_formats=formats,
            figure_width=width,
        )
    except KeyboardInterrupt:
        print(
            "\nstopped: the parts written so far are kept; run the same command to resume",
            file=sys.stderr,
        )
        return 130
    except ValueError as error:  # a resumed study with other settings, or a foreign row file
        print(f"sa-viz study: error: {error}", file=sys.stderr)
        return 2
    except Exception as error:  # unforeseen: the parts written so far are kept
        report_unforeseen(str(args.source), error, args.debug)
        return 1
    counts = summary["counts"]
    print(
        f"studied {counts['studied']} of {counts['listed']} images in {summary['seconds']} s; "
        f"{counts['problems']} problems; {args.out / 'study.json'}; tables for papers in "
        f"{args.out / 'tables'}"
    )
    for name, figures in summary["accuracy"].items():
        top1 = figures["top1"]
        if top1["n"]:
            low, high = top1["ci95"]
            print(
                f"  {name}: top-1 {top1['accuracy']:.3f} "
                f"(95% CI {low:.3f}–{high:.3f}, n={top1['n']})"
            )
    return 0


# sa-viz cluster ------------------------------------------------------------------------------


def cluster_parser() -> argparse.ArgumentParser:
    from sa_viz.studies.clusters import MAX_CLUSTERS, MIN_IMAGES

    parser = argparse.ArgumentParser(
        prog="sa-viz cluster",
        description="Strategies per class (spectral relevance analysis, Lapuschkin et al. "
        "2019): per class and model, the study's Grad-CAMs clustered by spectral clustering, "
        "the number of clusters chosen by the eigengap, with a t-SNE map. Writes "
        "STUDY_DIR/clusters.parquet, clusters.json and a figure per class and model in "
        "STUDY_DIR/clusters/.",
    )
    parser.add_argument("study", type=Path, help="a study's folder (sa-viz study --out)")
    parser.add_argument(
        "--classes",
        default=None,
        metavar="C,C,...",
        help="classes (index or name) to cluster (default: every labelled class with at least "
        "--min-images images)",
    )
    parser.add_argument(
        "--models", default=None, metavar="A,B", help="the study's models to cluster (default: all)"
    )
    parser.add_argument(
        "--min-images",
        type=int,
        default=MIN_IMAGES,
        help="the fewest images of a class to cluster it (default: %(default)s; 3 at least)",
    )
    parser.add_argument(
        "--max-clusters",
        type=int,
        default=MAX_CLUSTERS,
        help="the most clusters the eigengap may choose (default: %(default)s)",
    )
    parser.add_argument("--seed", type=int, default=0, help="spectral clustering's and t-SNE's")
    return parser


def cluster_main(argv: Sequence[str] | None = None) -> int:
    """`sa-viz cluster STUDY_DIR`: the strategies per class of a study's models."""
    parser = cluster_parser()
    args = parser.parse_args(argv)
    if args.min_images < 3 or args.max_clusters < 1:
        parser.error("--min-images must be at least 3 and --max-clusters at least 1")
    from sa_viz.data.imagenet import class_index

    try:
        classes = [class_index(c) for c in (args.classes or "").split(",") if c]
    except ValueError as error:
        parser.error(f"--classes: {error}")
    models = [m for m in (args.models or "").split(",") if m]
    from sa_viz.outputs.study_report import add_clusters_to_report
    from sa_viz.studies.clusters import cluster_study, write_clusters

    settings = {
        "classes": classes or None,
        "models": models or None,
        "min_images": args.min_images,
        "max_clusters": args.max_clusters,
        "seed": args.seed,
    }
    try:
        results = cluster_study(args.study, **settings)
        write_clusters(args.study, results, settings)
        report = add_clusters_to_report(args.study)
    except ValueError as error:  # not a study, a class with too few images, an unknown model
        print(f"sa-viz cluster: error: {error}", file=sys.stderr)
        return 2
    for r in results:
        sizes = ", ".join(str(int((r.clusters == c).sum())) for c in range(r.k))
        print(f"class {r.label}, {r.model}: {len(r.keys)} images, k = {r.k} ({sizes})")
    print(
        f"wrote {args.study / 'clusters.parquet'}, clusters.json and clusters/"
        + (f"; the strategies are in {report}" if report else "")
    )
    return 0


USAGE = """usage: sa-viz explain IMAGE... --out DIR [--models A,B[,C,D]] [--model-file F] [options]
       sa-viz study SOURCE --out DIR [--models A,B[,C,D]] [--engine local|ray] [--limit N]
       sa-viz cluster STUDY_DIR [--classes C,...] [--models A,B] [--min-images N]
       sa-viz weights [status|import PATH|download [MODEL...]]
       sa-viz serve [--port N] [--device auto|cpu|cuda] [options]   (the web app)

Each command has --help."""


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    commands = {
        "explain": explain_main,
        "study": study_main,
        "cluster": cluster_main,
        "weights": weights_main,
        "serve": serve_main,
    }
    if not argv or argv[0] not in commands:
        print(USAGE, file=sys.stderr if argv[:1] not in (["-h"], ["--help"]) else sys.stdout)
        return 0 if argv[:1] in (["-h"], ["--help"]) else 2
    return commands[argv[0]](argv[1:])
