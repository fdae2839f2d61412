"""``python -m dccsim.bench`` runs the ``dccsim`` command line."""

import sys

from .cli import main

sys.exit(main())
