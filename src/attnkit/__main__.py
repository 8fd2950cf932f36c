"""``python -m attnkit``: the same command line as ``attnkit`` (and what ``torchrun -m attnkit`` starts)."""

import os
import sys

from attnkit.cli.main import main

code = main()
if int(os.environ.get("RANK", "0")) > 0:
    # a torchrun rank other than 0 writes nothing of its own: it leaves without running the C++ static
    # destructors, which now and then abort at exit (gloo, torch 2.13: "terminate called without an active
    # exception"), turning a finished job into a failed one
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code or 0)
sys.exit(code)
