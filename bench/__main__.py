"""``python -m dccsim.bench`` runs the ``dccsim`` command line."""

from .cli import main

main()
