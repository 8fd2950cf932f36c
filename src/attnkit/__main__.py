"""``python -m attnkit``: the same command line as ``attnkit`` (and what ``torchrun -m attnkit`` starts)."""

import sys

from attnkit.cli.main import main

sys.exit(main())
