"""Results and the command line: Arrow logs, histograms, summaries, reports, the ``dccsim`` CLI.

This is the composition root: it may import every other dccsim package.
"""

__all__: list[str] = []
