"""`python -m ressonance` runs the command line."""

from ressonance.cli import main

raise SystemExit(main())
