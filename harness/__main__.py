"""`python -m harness` is the `harness` command (matrix and bisect run their cells this way)."""

import sys

from harness.cli import main

sys.exit(main())
