"""CAM methods, one module each with a `METHOD` (`sa_viz.cam.base.CamMethod`); `methods()` finds
them all, so adding one is one small file here (or `register_method` from outside), and whoever
offers methods (the CLI's `--method`, the page's dropdown, the API) asks this registry.

`METHODS` is a live view of the registry, by key, in the order lists show them.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Iterator, Mapping
from functools import cache

from sa_viz.cam.base import CamMethod

_REGISTERED: dict[str, CamMethod] = {}


@cache
def methods() -> dict[str, CamMethod]:
    """Every CAM method of this package (each module's `METHOD`) and those registered by
    `register_method`, by key, in their `order`."""
    found = dict(_REGISTERED)
    for module in pkgutil.iter_modules(__path__):
        method = getattr(importlib.import_module(f"{__name__}.{module.name}"), "METHOD", None)
        if method is not None:
            found[method.key] = method
    return dict(sorted(found.items(), key=lambda item: (item[1].order, item[0])))


def register_method(method: CamMethod) -> CamMethod:
    """Add a CAM method from outside the package: it then reaches the app, the API and the CLI
    like the built-in ones. A built-in method's key is refused."""
    if not isinstance(method, CamMethod):
        raise TypeError(f"register_method takes a CamMethod; got {type(method).__name__}")
    if method.compute is None:
        raise ValueError(
            f"method {method.key!r} needs a `compute` (see sa_viz.cam.base.CamCompute)"
        )
    methods.cache_clear()
    if method.key in methods() and method.key not in _REGISTERED:
        raise ValueError(f"a CAM method named {method.key!r} is built in")
    _REGISTERED[method.key] = method
    methods.cache_clear()
    return method


def get_method(key: str) -> CamMethod:
    """The method registered under `key`, or a ValueError that lists the choices."""
    found = methods()
    if key not in found:
        raise ValueError(f"unknown CAM method {key!r}; choose one of {', '.join(found)}")
    return found[key]


class _Methods(Mapping[str, CamMethod]):
    """`methods()` as a mapping that stays current as methods are registered."""

    def __getitem__(self, key: str) -> CamMethod:
        return methods()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(methods())

    def __len__(self) -> int:
        return len(methods())

    def __repr__(self) -> str:
        return f"METHODS({', '.join(methods())})"


METHODS: Mapping[str, CamMethod] = _Methods()
