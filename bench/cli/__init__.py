"""The ``dccsim`` command line: flag parsing and printing, one module per group of commands.

``main`` is the console script's entry point; ``cmd_*`` modules are imported only when their
command runs. The work itself is done by :mod:`dccsim.bench.compose` and the results layer.
"""

from .errors import CliError
from .main import COMMANDS, cli, main

__all__ = ["COMMANDS", "CliError", "cli", "main"]
