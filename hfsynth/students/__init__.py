"""Students: small models trained on the synthetic data, one module per kind behind
:class:`~hfsynth.students.base.Student`, each kind registered once in :mod:`hfsynth.recipe.student_kinds` with its
params (:mod:`hfsynth.recipe.student_params`). Training them is the stage :mod:`hfsynth.training`.

Nothing is imported here: the recipe validates student params through the registry without loading any model library.
"""
