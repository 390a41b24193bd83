"""Random logit test (Sixt et al., "When Explanations Lie", ICML 2020): does the map depend on
the class it explains?

The map of the CAM's class is compared with the map of another class drawn at random (the
same method and layer), by the measures of the MPRT (`similarity`). A map that hardly changes
shows the image's salient parts whatever the class. The other class is drawn as Quantus's
`RandomLogit` draws it (NumPy's legacy generator seeded with `SEED`, uniform over the other
classes), so the two give the same class for the same seed; it is kept in the details.
"""

from __future__ import annotations

import numpy as np

from sa_viz.analyses import Analysis, ImageInput, Result
from sa_viz.analyses.similarity import MEASURES, similarities
from sa_viz.cam import compute_cam

SEED = 42  # Quantus's default
PREFIX = "random_logit_"


def random_class(target: int, classes: int, seed: int = SEED) -> int:
    """A class other than `target` of `classes`, drawn uniformly with `seed`."""
    index = int(np.random.RandomState(seed).randint(0, classes - 1))
    return index + (index >= target)


def random_logit(image: ImageInput, seed: int = SEED) -> Result:
    own = compute_cam(image.model, image.x, image.target, image.layer, image.method)
    classes = own.logits.shape[1]
    other = random_class(image.target, classes, seed)
    # A second pass: the other class is drawn from the class count that the first one gives.
    theirs = compute_cam(image.model, image.x, other, image.layer, image.method)
    found = similarities(own.maps[0], theirs.maps[0])
    return Result(
        {f"{PREFIX}{m}": found[m] for m in MEASURES},
        {"target": int(image.target), "other": other, "classes": classes, "seed": seed},
    )


ANALYSIS = Analysis(
    name="random_logit",
    title=f"Random logit: the map of the class against the map of a random other class "
    f"(seed {SEED})",
    per_image=random_logit,
    numbers=tuple(f"{PREFIX}{m}" for m in MEASURES),
    higher_is_better={f"{PREFIX}{m}": False for m in MEASURES},  # a map should follow its class
    ticked=False,  # a sanity check: asked for with the others (two passes: fast enough)
)
