"""The Space's entry files (``app.py``, ``requirements.txt``), installed as the package ``hfsynth.space_template`` and
copied unchanged into every staged Space."""
