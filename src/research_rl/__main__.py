"""``python -m research_rl`` is the ``research`` command."""

from research_rl.cli import main

main()
