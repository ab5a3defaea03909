"""Allow ``python -m haguard``; the hooks use this form."""

from haguard.cli import main

raise SystemExit(main())
