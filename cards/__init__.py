"""Jinja templates for hfsynth cards (installed as the package ``hfsynth.card_templates``)."""
