"""``python -m fastinv``: the ``fastinv`` command line."""

import sys

from .cli import main

sys.exit(main())
