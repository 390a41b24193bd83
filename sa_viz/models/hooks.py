"""The hooks' old address (`sa_viz.hooks`): see there."""

import warnings

from sa_viz.hooks import (  # noqa: F401
    ForwardHook,
    Stopped,
    TimeLimitExceeded,
    check_time,
    report,
    reporting,
    stage_blocks,
    thread_local_hooks,
    time_limit,
)

warnings.warn(
    "sa_viz.models.hooks is an old address: import from sa_viz.hooks",
    DeprecationWarning,
    stacklevel=2,
)
