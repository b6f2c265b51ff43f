"""The comparison Space: the teacher and its students side by side in one Gradio app.

A run becomes a Space folder (:mod:`hfsynth.space.staging`): the entry files from the project's ``spaces/compare/``
(shipped in the package as ``hfsynth.space_template``), a card rendered from the package's templates, and the manifest
the app reads (:mod:`hfsynth.space.manifest`). The app itself is :mod:`hfsynth.space.app`, installed with hfsynth:
the Space's ``app.py`` only imports it. :mod:`hfsynth.space.commands` serves a run's Space locally or pushes it to
the Hub.
"""
