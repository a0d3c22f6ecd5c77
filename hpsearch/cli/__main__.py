"""``python -m hpsearch.cli`` is the ``hpsearch`` command, as ``python -m hpsearch`` is."""

from hpsearch.cli import main

raise SystemExit(main())
