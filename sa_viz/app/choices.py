"""What the page offers and calls things: the choices of its controls (classes, models, methods,
input modes, units), its defaults, and where its hints sit. No gradio here: the layout, the
checks and the handlers all read these."""

from __future__ import annotations

import re

from sa_viz.cam import METHODS
from sa_viz.data.examples import EXAMPLES_DIR
from sa_viz.data.imagenet import choice_label, labels, synonyms
from sa_viz.models import get_model, list_models
from sa_viz.probes import attention_of, unit_layouts, unit_names

ASSETS = EXAMPLES_DIR
OWN_TOP1 = "each model's own top-1"
# "934: hotdog (hot dog, red hot)": the list's filter finds a class by any of its names.
CLASS_CHOICES = [OWN_TOP1] + [choice_label(i) for i in range(len(labels()))]
WHOLE, CROP = "whole image", "centre crop 224 (evaluation protocol)"


def ranked_classes(text: str) -> list[str]:
    """The class list's entries that contain `text` (as the list's own filter finds them, case
    aside), best first: the class of that index or of that exact name, then those with a name
    where it is a whole word ("cat": the tabby, tiger and Persian cats), then those with a word
    that begins with it (catamaran), then the rest (bullfrog, for "Rana catesbeiana"); by class
    within each. Before, the list kept class order, so Enter on "espresso" took 550 espresso
    maker, not 967 espresso (issue 27). Empty `text`: the whole list."""
    wanted = text.strip().lower()
    if not wanted:
        return list(CLASS_CHOICES)
    word = re.compile(rf"\b{re.escape(wanted)}\b")
    start = re.compile(rf"\b{re.escape(wanted)}")
    scored = []
    for position, choice in enumerate(CLASS_CHOICES):
        if wanted not in choice.lower():
            continue
        index = position - 1  # -1: "each model's own top-1"
        names = [] if index < 0 else [labels()[index], *synonyms()[index]]
        names = [n.lower() for n in names]
        if wanted == str(index) or wanted in names:
            score = 0
        elif any(word.search(n) for n in names):
            score = 1
        elif any(start.search(n) for n in names):
            score = 2
        else:
            score = 3
        scored.append((score, position, choice))
    return [choice for *_, choice in sorted(scored)]


DEFAULT_UNIT = "layer3.0"
TABLE_HEADERS = ["class", "p", "in other top-5"]
# The export's figures for papers: (label, value), the values `outputs.files`'s formats and
# `render.paper`'s widths ("screen": each figure's own size).
FIGURE_FORMAT_CHOICES = [("PNG", "png"), ("SVG", "svg"), ("PDF", "pdf")]
FIGURE_WIDTH_CHOICES = [
    ("one column (3.5 in)", "single"),
    ("two columns (7.1 in)", "double"),
    ("screen size", "screen"),
]


def method_choices() -> list[tuple[str, str]]:
    """The CAM methods the page offers, as the page is built: a method registered before then
    (`sa_viz.register_method`) is among them."""
    return [(f"{m.title}: {m.note}", key) for key, m in METHODS.items()]


SLOTS = ("a", "b", "c", "d")  # the compared models' places on the page: A and B, C and D optional
NONE = "none"  # an optional slot (C, D) left empty


def chosen_models(*slots: str | None) -> list[str]:
    """The models of the page's slots, in order, the empty ones (`NONE`, "") left out."""
    return [name for name in slots if name and name != NONE]


# The difference map's pair, as the page names it: "second − first", by the models' names
# ("sa_resnet50 − resnet50"); "" (the API's default): the first two compared models.
PAIR_SEPARATOR = " − "


def pair_value(first: str, second: str) -> str:
    return f"{second}{PAIR_SEPARATOR}{first}"


def split_pair(value: str | None) -> tuple[str, str] | None:
    """The (first, second) names that "second − first" holds (None: no separator)."""
    second, separator, first = (value or "").partition(PAIR_SEPARATOR)
    return (first, second) if separator else None


def pair_of(value: str | None, models: list[str]) -> tuple[str, str] | None:
    """The (first, second) of the difference map for `models` (in the page's order): the pair
    `value` names when both are among them, else the first two (None: fewer than two)."""
    if len(models) < 2:
        return None
    named = split_pair(value)
    if named and named[0] != named[1] and all(n in models for n in named):
        return named
    return models[0], models[1]


def pair_choices(models: list[str]) -> list[tuple[str, str]]:
    """Every pair of `models` for the difference map, "later − earlier", as (label, value)."""
    return [
        (f"{get_model(second).title} − {get_model(first).title}", pair_value(first, second))
        for i, first in enumerate(models)
        for second in models[i + 1 :]
    ]


# The attention units of every registered model with gates, in order (the handler checks that
# the chosen model has the unit).
UNIT_NAMES = list(
    dict.fromkeys(u for name in list_models() if attention_of(name) for u in unit_names(name))
)
# The most groups any unit has: the API's bound for `group`; each unit's own count is checked
# against the chosen model's.
MAX_GROUPS = max(
    (u.groups for name in list_models() if attention_of(name) for u in unit_layouts(name).values()),
    default=1,
)


def model_choice(name: str) -> tuple[str, str]:
    return get_model(name).title, name


def models_info() -> str:
    """One line per registered model: its published top-1, size, attention type and paper."""
    lines = []
    for name in list_models():
        entry = get_model(name)
        kinds = attention_of(name)
        gates = f", {kinds} gates" if kinds else ", no attention gates"
        lines.append(
            f"**{entry.title}**: {entry.meta.top1:.2f}% ImageNet top-1, "
            f"{entry.meta.parameters / 1e6:.1f} M parameters{gates} · {entry.meta.paper}"
        )
    return "  \n".join(lines)


MODEL_CHOICES = [model_choice(name) for name in list_models()]
OPTIONAL_MODEL_CHOICES = [("— none —", NONE), *MODEL_CHOICES]
GATED_CHOICES = [model_choice(name) for name in list_models() if attention_of(name)]

# Where the page says what went wrong, beside the control a person would change, by the
# failure's title; anything else goes under the Explain button ("run").
HINT_PLACES = ("image", "run", "models", "target", "method", "view")
PLACE_OF = {
    "No image": "image",
    "Nothing to show yet": "image",
    "This image can't be used": "image",
    "Links are not fetched": "image",
    "File not allowed": "image",
    "Same model twice": "models",
    "Unknown class": "target",
    "Too slow": "method",
    "Unknown unit": "view",
    "Unknown group": "view",
}
NEEDS_AN_IMAGE = ("No image", "Nothing to show yet")  # answered with "upload an image first"
# What a view update's success clears: its own hint, and "an image first" (there is one now).
VIEW_HINTS = ("view",)
