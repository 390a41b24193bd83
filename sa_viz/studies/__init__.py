"""Studies, end to end: a dataset's images through the pipeline (`sa_viz.pipeline.study`, in this
process or on a Ray cluster) into a study's files (`sa_viz.outputs`), resumable, with a report.
The CLI's `sa-viz study`, the app's Study tab and `sa_viz.run_study` all run `run_study`."""

from sa_viz.studies.run import PART_SIZE, SettingsChanged, run_study

__all__ = ["PART_SIZE", "SettingsChanged", "run_study"]
