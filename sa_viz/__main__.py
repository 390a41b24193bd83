"""`python -m sa_viz explain IMAGE... --out DIR`: see sa_viz.cli."""

import sys

from sa_viz.cli import main

sys.exit(main())
