"""ROAD, remove and debias (Rong et al., ICML 2022), through pytorch-grad-cam's `metrics`: the
change of the class's probability when the CAM's most relevant pixels are removed (MoRF: a
faithful map makes it drop) or its least relevant ones (LeRF: it should hardly move)."""

from __future__ import annotations

from sa_viz.analyses import Analysis, ImageInput, Result
from sa_viz.cam import road


def road_scores(image: ImageInput) -> Result:
    scores = road(image.model, image.x, image.cam, image.target)
    return Result({**scores, "road_gap": scores["road_lerf"] - scores["road_morf"]})


ANALYSIS = Analysis(
    name="road",
    title="ROAD (pytorch-grad-cam: MoRF at percentile 80, LeRF at 20, noisy linear imputation)",
    per_image=road_scores,
    numbers=("road_morf", "road_lerf", "road_gap"),
    higher_is_better={"road_morf": False, "road_lerf": True, "road_gap": True},
)
