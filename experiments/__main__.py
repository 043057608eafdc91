"""``python -m experiments``: see `experiments.cli`."""

from experiments.cli import main

raise SystemExit(main())
