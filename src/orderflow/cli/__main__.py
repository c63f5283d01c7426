"""``python -m orderflow.cli``: the ``orderflow`` command."""

from orderflow.cli import main

raise SystemExit(main())
