"""Recipe files: YAML (a local file, a shipped recipe, ``hf://``) read into a checked
:class:`~hfsynth.recipe.schema.Recipe` (:mod:`~hfsynth.recipes.files`), with the checks that need the machine or a
stage's plan (:mod:`~hfsynth.recipes.checks`: data files, planned work, LoRA targets)."""
