"""`sa_viz.explain` is the explain function now (`from sa_viz import explain`); the module that was
here is `sa_viz.pipeline.explain`. Importing this old address fails with that sentence: the
function and a module cannot share one name."""

raise ImportError(
    "sa_viz.explain is a function now: use `from sa_viz import explain` (or `sa_viz.explain(...)`);"
    " Explanation, ModelExplanation, explain_model and explain_models are in "
    "sa_viz.pipeline.explain"
)
