"""``python -m hfsynth.cli``: the ``hfsynth`` command."""

from hfsynth.cli import main

main()
