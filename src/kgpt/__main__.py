"""``python -m kgpt`` is the ``kgpt`` command."""

import sys

from kgpt.cli import main

sys.exit(main())
