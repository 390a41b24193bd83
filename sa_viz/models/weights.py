"""Checkpoints: where each model's weights come from, strict loading, and what to tell people.

Every file is read with `torch.load(weights_only=True, map_location="cpu")` (a pickle that would
run code is refused) and loaded strictly: a mismatch names the file and every missing, unexpected
or mis-shaped key. A model whose weights are missing or unreadable is built from a fixed seed and
flagged untrained, so the app and the CLI still work and say so.

Run `sa-viz weights` for each model's status, `sa-viz weights import PATH` to check an official
SA-Net checkpoint and store a clean copy in the weights folder.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import re
import tempfile
import urllib.error
import urllib.request
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
from torch import nn

from sa_viz.models.device import resolve_device
from sa_viz.models.registry import (
    SA_CONVERTED_FILE,
    WeightsSpec,
    get_model,
    list_models,
)

LOCAL_WEIGHTS_DIR = Path("weights")  # ./weights of the folder SA-Viz runs in, when there is one
UNTRAINED_SEED = 0
DOWNLOAD_TIMEOUT_S = 15.0


class CheckpointError(RuntimeError):
    """A checkpoint file can't be used; the message names the file and says why."""

    def __init__(
        self,
        message: str,
        *,
        missing: list[str] | None = None,
        unexpected: list[str] | None = None,
        mismatched: list[str] | None = None,
    ) -> None:
        super().__init__(message)
        self.missing = missing or []
        self.unexpected = unexpected or []
        self.mismatched = mismatched or []


class _Specs(dict):
    """Each model's `WeightsSpec`, read from the registry when asked for (models registered
    after import included); an item set here overrides the registry's (tests do)."""

    def __missing__(self, name: str) -> WeightsSpec:
        return get_model(name).weights


SPECS: dict[str, WeightsSpec] = _Specs()


@dataclass(frozen=True)
class CheckpointInfo:
    """What a loaded file was: its format and, for training checkpoints, their metadata."""

    format: str  # "state dict", "training checkpoint (SA-Net official)", ...
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class WeightsStatus:
    """Which weights a model runs with, in the words shown to people."""

    model: str
    title: str
    pretrained: bool
    source: str
    message: str
    path: str | None = None
    size: int | None = None
    sha256: str | None = None
    verified: bool = False  # the file's hash matches the published one
    how_to_get: str | None = None
    untrained_units: tuple[str, ...] = ()

    @property
    def untrained(self) -> bool:
        """True when anything computed from this model must carry the "untrained" flag."""
        return not self.pretrained or bool(self.untrained_units)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "untrained": self.untrained}


@dataclass(frozen=True)
class LoadedModel:
    name: str
    module: nn.Module
    status: WeightsStatus

    @property
    def title(self) -> str:
        return get_model(self.name).title


def _title(spec: WeightsSpec) -> str:
    return get_model(spec.model).title


def sha256_of(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_checkpoint(path: str | Path) -> tuple[dict[str, torch.Tensor], CheckpointInfo]:
    """Read a checkpoint safely and return its state dict (prefixes removed) and its format."""
    path = Path(path)
    try:
        obj = _load(path)
    except FileNotFoundError as error:
        raise CheckpointError(f"{path}: no such file") from error
    except pickle.UnpicklingError as error:
        # weights_only names the global a pickle wanted to import; garbage has none.
        wanted = re.search(r"GLOBAL ([\w.]+)", str(error))
        if wanted:
            raise CheckpointError(
                f"{path}: refused. Loading it would import and call {wanted.group(1)}, i.e. run "
                "code (only tensors and plain containers are accepted: weights_only=True). "
                "If it comes from a source you trust, re-save it with "
                "torch.save(model.state_dict())."
            ) from error
        raise _unreadable(path, error) from error
    except (RuntimeError, EOFError, OSError, ValueError, zipfile.BadZipFile) as error:
        raise _unreadable(path, error) from error
    except Exception as error:
        # Garbage can fail anywhere inside the unpickler (a 5-byte file: KeyError 101 from its
        # memo); whatever it raises, the file is not a checkpoint.
        raise _unreadable(path, error) from error
    return _unwrap(obj, path)


def _load(path: Path) -> Any:
    """torch.load, safely; memory-mapped where the format allows, so a 200 MB training
    checkpoint is not first copied into the heap (whose freed pages glibc keeps)."""
    if path.suffix == ".safetensors":  # the hub's format (timm's weights): tensors only
        from safetensors.torch import load_file

        return load_file(path)
    try:
        return torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except RuntimeError as error:
        if "mmap" not in str(error):
            raise
        return torch.load(path, map_location="cpu", weights_only=True)  # legacy format


def _unreadable(path: Path, error: BaseException) -> CheckpointError:
    reason = (str(error).strip().splitlines() or [type(error).__name__])[0][:160]
    return CheckpointError(
        f"{path}: can't be read as a PyTorch checkpoint; it is truncated or corrupted "
        f"({reason}). Download or copy it again."
    )


def _unwrap(obj: Any, path: Path) -> tuple[dict[str, torch.Tensor], CheckpointInfo]:
    if not isinstance(obj, Mapping):
        raise CheckpointError(f"{path}: holds a {type(obj).__name__}, not a state dict")
    meta: dict[str, Any] = {}
    fmt = "state dict"
    for key in ("state_dict", "model", "model_state_dict"):
        if isinstance(obj.get(key), Mapping):
            meta = {k: _plain(v) for k, v in obj.items() if k not in (key, "optimizer")}
            fmt = "training checkpoint"
            obj = obj[key]
            break
    state = dict(obj)
    if state and all(k.startswith("module.") for k in state):
        # nn.DataParallel's prefix, as in the official SA-Net checkpoint.
        state = {k.removeprefix("module."): v for k, v in state.items()}
        fmt += " (DataParallel 'module.' prefixes)"
    bad = [k for k, v in state.items() if not isinstance(v, torch.Tensor)]
    if bad:
        raise CheckpointError(f"{path}: entries that are not tensors: {', '.join(bad[:10])}")
    return state, CheckpointInfo(fmt, meta)


def _plain(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return value.item() if value.numel() == 1 else value.tolist()
    return value if isinstance(value, (int, float, str, bool, type(None))) else repr(value)[:80]


def load_checkpoint(model: nn.Module, path: str | Path) -> CheckpointInfo:
    """Load `path` into `model` strictly; raise `CheckpointError` naming every mismatched key.

    Accepts torchvision's files and other plain state dicts, and training checkpoints such as the
    official SA-Net file (`state_dict` with `module.` prefixes, `optimizer`, `best_acc` maybe
    saved on a GPU): only the weights are used.
    """
    state, info = read_checkpoint(path)
    expected = model.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    mismatched = [
        f"{k} (file {tuple(state[k].shape)}, model {tuple(v.shape)})"
        for k, v in expected.items()
        if k in state and state[k].shape != v.shape
    ]
    if missing or unexpected or mismatched:
        raise CheckpointError(
            _mismatch_message(Path(path), model, missing, unexpected, mismatched),
            missing=missing,
            unexpected=unexpected,
            mismatched=mismatched,
        )
    model.load_state_dict(state, strict=True)
    return info


def _mismatch_message(
    path: Path, model: nn.Module, missing: list[str], unexpected: list[str], mismatched: list[str]
) -> str:
    parts = [f"{path}: does not fit {type(model).__name__} strictly."]
    if missing:
        parts.append(f"{len(missing)} missing keys: {', '.join(missing)}.")
    if unexpected:
        parts.append(f"{len(unexpected)} unexpected keys: {', '.join(unexpected)}.")
    if mismatched:
        parts.append(f"{len(mismatched)} shape mismatches: {', '.join(mismatched)}.")
    if missing and all(".sa." in k for k in missing) and not unexpected:
        parts.append("It looks like a plain ResNet-50 checkpoint (no SA units).")
    elif unexpected and all(".sa." in k for k in unexpected) and not missing:
        parts.append("It looks like an SA-ResNet-50 checkpoint.")
    return " ".join(parts)


def build_untrained(name: str, seed: int = UNTRAINED_SEED) -> nn.Module:
    """The architecture with its standard initialisation drawn from a fixed seed."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return get_model(name).builder().eval()


def weights_dir(override: str | Path | None = None) -> Path:
    """The weights folder: the argument, else $SA_VIZ_WEIGHTS_DIR, else ./weights when the
    current folder has one (a checkout of this repository does), else the user's cache folder."""
    chosen = override or os.environ.get("SA_VIZ_WEIGHTS_DIR")
    if chosen:
        return Path(chosen).expanduser()
    if LOCAL_WEIGHTS_DIR.is_dir():
        return LOCAL_WEIGHTS_DIR.resolve()
    return user_cache_dir() / "weights"


def user_cache_dir() -> Path:
    """$XDG_CACHE_HOME/sa-viz (default ~/.cache/sa-viz): where an installed SA-Viz keeps files."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base).expanduser() / "sa-viz"


def find_weights(
    name: str, folder: str | Path | None = None, path: str | Path | None = None
) -> Path | None:
    """The checkpoint file to use: `path`, else $SA_VIZ_<MODEL>, else the file given when the
    model was registered, else the first known file name in the weights folder, else (timm's
    models) the file in the Hugging Face hub cache. Returns None when there is none."""
    spec = SPECS[name]
    explicit = path or os.environ.get(spec.env_var) or spec.checkpoint
    if explicit:
        return Path(explicit).expanduser()
    for filename in spec.filenames:
        candidate = weights_dir(folder) / filename
        if candidate.is_file():
            return candidate
    return hub_cached(spec)


def hub_cached(spec: WeightsSpec) -> Path | None:
    """The model's file in the Hugging Face hub cache ($HF_HUB_CACHE, default
    ~/.cache/huggingface/hub), where timm's `pretrained=True` puts it; no network."""
    if not spec.hf_hub_id:
        return None
    from huggingface_hub import try_to_load_from_cache

    for filename in spec.hf_filenames:
        found = try_to_load_from_cache(spec.hf_hub_id, filename, cache_dir=_hub_cache())
        if isinstance(found, str) and Path(found).is_file():
            return Path(found)
    return None


def _hub_cache() -> str | None:
    """$HF_HUB_CACHE as it is now (huggingface_hub reads it once, at import)."""
    return os.environ.get("HF_HUB_CACHE") or None


def _hub_download(spec: WeightsSpec) -> Path:
    """Download a timm model's file into the Hugging Face cache, as timm would."""
    from huggingface_hub import hf_hub_download

    try:
        return Path(hf_hub_download(spec.hf_hub_id, spec.hf_filenames[0], cache_dir=_hub_cache()))
    except Exception as error:  # no network, no such repository, a proxy: all say the same
        reason = (str(error).strip().splitlines() or [type(error).__name__])[0][:160]
        raise CheckpointError(f"could not download {spec.hf_hub_id}: {reason}") from error


def download(
    name: str, folder: str | Path | None = None, timeout: float = DOWNLOAD_TIMEOUT_S
) -> Path:
    """Download a model's published file into the weights folder, checking its hash.

    Written here rather than with torch.hub.download_url_to_file because that has no timeout:
    offline, or behind a dead proxy, the app must not wait on the network.
    """
    spec = SPECS[name]
    if spec.url is None:
        raise CheckpointError(f"{_title(spec)} has no direct download. {spec.how_to_get}")
    target = weights_dir(folder) / spec.filenames[0]
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, part = tempfile.mkstemp(dir=target.parent, prefix=target.name, suffix=".part")
    digest = hashlib.sha256()
    try:
        with (
            os.fdopen(fd, "wb") as out,
            urllib.request.urlopen(spec.url, timeout=timeout) as response,
        ):
            for block in iter(lambda: response.read(1 << 20), b""):
                digest.update(block)
                out.write(block)
        if spec.hash_prefix and not digest.hexdigest().startswith(spec.hash_prefix):
            raise CheckpointError(
                f"downloaded {spec.url} but its sha256 {digest.hexdigest()} does not start with "
                f"the published {spec.hash_prefix}; the file was discarded"
            )
        os.replace(part, target)
    except (urllib.error.URLError, OSError) as error:
        raise CheckpointError(f"could not download {spec.url}: {error}") from error
    finally:
        Path(part).unlink(missing_ok=True)
    return target


def load_model(
    name: str,
    *,
    folder: str | Path | None = None,
    path: str | Path | None = None,
    allow_download: bool = True,
    device: torch.device | str | None = None,
) -> LoadedModel:
    """A model ready for inference (eval mode, on `device`: "auto", "cpu", "cuda"; None: the
    CPU) with the best weights available, and a status saying which.

    Never raises for missing or broken weights: it falls back to the fixed-seed untrained model
    and says why in the status.
    """
    spec = SPECS[name]
    device = None if device is None else resolve_device(device)
    model = get_model(name).builder().eval()
    file = find_weights(name, folder, path)
    problem = None
    if (
        file is None
        and (spec.url or spec.hf_hub_id)
        and allow_download
        and not _offline_requested()
    ):
        try:
            file = download(name, folder) if spec.url else _hub_download(spec)
        except CheckpointError as error:
            problem = str(error)
    if file is not None:
        try:
            info = load_checkpoint(model, file)
            status = _file_status(spec, model, Path(file), info)
            return LoadedModel(name, _for_inference(model, device), status)
        except CheckpointError as error:
            # Statuses are shown in the app: name the file, not where it lives on the server.
            problem = str(error).replace(str(file), Path(file).name)
    return LoadedModel(
        name, _for_inference(build_untrained(name), device), _untrained_status(spec, problem)
    )


def _for_inference(model: nn.Module, device: torch.device | str | None = None) -> nn.Module:
    """eval mode, on `device` (None: where it was built, the CPU)."""
    model = model.eval()
    return model if device is None else model.to(device)


def _offline_requested() -> bool:
    """SA_VIZ_NO_DOWNLOAD, or the hub's own HF_HUB_OFFLINE, set: never try the network."""
    return any(
        os.environ.get(flag, "").lower() in {"1", "true", "yes"}
        for flag in ("SA_VIZ_NO_DOWNLOAD", "HF_HUB_OFFLINE")
    )


def checkable_units(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """(block name, unit) for each attention unit that can tell whether its gate parameters are
    still their initial values (an `untrained` property, as SA's units have): a checkpoint that
    loads strictly can still hold such units, and their gates then mean nothing."""
    return [
        (name.rpartition(".")[0] or name, module)
        for name, module in model.named_modules()
        if isinstance(getattr(type(module), "untrained", None), property)
    ]


def _file_status(
    spec: WeightsSpec, model: nn.Module, path: Path, info: CheckpointInfo
) -> WeightsStatus:
    digest, title = sha256_of(path), _title(spec)
    published = spec.hash_prefix or _hub_blob_hash(spec, path)
    verified = bool(published) and digest.startswith(published)
    if published and not spec.hash_prefix:
        spec = replace(spec, hash_prefix=published)
    units = checkable_units(model)
    untrained_units = tuple(name for name, unit in units if unit.untrained)
    source = spec.source if verified else f"{path.name} ({info.format})"
    if verified:
        message = f"{title}: pretrained, {spec.source}; published hash verified ({path.name})"
    elif spec.hash_prefix:
        message = (
            f"{title}: weights from {path.name}. Its sha256 does not begin with the published "
            f"{spec.hash_prefix}, so these are not the published weights ({spec.source})."
        )
    else:
        message = f"{title}: weights from {path.name} (no published hash to check it against)"
    if untrained_units:
        unit = units[0][1]
        constant = getattr(unit, "UNTRAINED_GATE", None)
        value = f", {constant:.3f}" if constant is not None else ""
        kind = getattr(unit, "KIND", type(unit).__name__)
        message = (
            f"{title}: weights from {path.name}, but {len(untrained_units)} of {len(units)} "
            f"{kind} units have untrained gate parameters (their initial values: every "
            f"gate of such a unit is one constant{value})"
        )
    return WeightsStatus(
        model=spec.model,
        title=title,
        pretrained=True,
        source=source,
        message=message,
        path=str(path),
        size=path.stat().st_size,
        sha256=digest,
        verified=verified,
        how_to_get=spec.how_to_get if untrained_units else None,
        untrained_units=untrained_units,
    )


def _hub_blob_hash(spec: WeightsSpec, path: Path) -> str | None:
    """A file of the Hugging Face cache is a link to `blobs/<sha256>`, the hub's published hash
    of it (its LFS object id); None for a file elsewhere."""
    if not spec.hf_hub_id:
        return None
    target = path.resolve()
    if target.parent.name == "blobs" and re.fullmatch(r"[0-9a-f]{64}", target.name):
        return target.name
    return None


def _untrained_status(spec: WeightsSpec, problem: str | None) -> WeightsStatus:
    reason = problem or f"no {' or '.join(spec.filenames)} in the weights folder" + (
        f" and no {spec.hf_hub_id} in the Hugging Face cache" if spec.hf_hub_id else ""
    )
    return WeightsStatus(
        model=spec.model,
        title=_title(spec),
        pretrained=False,
        source=f"untrained: random initialisation, seed {UNTRAINED_SEED}",
        message=f"{_title(spec)} is UNTRAINED: {reason}. Results from it are meaningless.",
        how_to_get=spec.how_to_get,
    )


def load_models(
    folder: str | Path | None = None,
    paths: Mapping[str, str | Path | None] | None = None,
    allow_download: bool = True,
    names: Sequence[str] | None = None,
    device: torch.device | str | None = None,
) -> dict[str, LoadedModel]:
    """The models `names` (default: every registered model), in that order, on `device`."""
    paths = paths or {}
    return {
        name: load_model(
            name,
            folder=folder,
            path=paths.get(name),
            allow_download=allow_download,
            device=device,
        )
        for name in (list_models() if names is None else names)
    }


def import_official(source: str | Path, folder: str | Path | None = None) -> tuple[Path, str]:
    """Check that an official SA-Net checkpoint loads strictly; write its bare state dict.

    Returns the written file and its sha256. The copy holds no optimizer state (about 100 MB
    instead of about 200 MB) and no pickled metadata.
    """
    model = get_model("sa_resnet50").builder()
    load_checkpoint(model, source)
    target = weights_dir(folder) / SA_CONVERTED_FILE
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=target.parent, suffix=".part", delete=False) as part:
        torch.save(model.state_dict(), part)
    os.replace(part.name, target)
    return target, sha256_of(target)
