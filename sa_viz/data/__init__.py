"""Inputs: images made ready for the models (`preprocess`), ImageNet's classes (`imagenet`) and
the example photos shipped with the package (`examples`)."""
