"""The old address of the explanation API: see `sa_viz.pipeline.explain`."""

from sa_viz.pipeline.explain import (
    Explanation,
    ModelExplanation,
    Prediction,
    explain,
    explain_model,
    explain_models,
)

__all__ = [
    "Explanation",
    "ModelExplanation",
    "Prediction",
    "explain",
    "explain_model",
    "explain_models",
]
