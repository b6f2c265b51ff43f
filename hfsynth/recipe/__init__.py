"""The recipe: what a run makes, typed. :mod:`~hfsynth.recipe.schema` (task, labels, teacher, generation, curation,
students, evaluation); its ``execution`` section in :mod:`~hfsynth.recipe.execution`; each student kind's params
(:mod:`~hfsynth.recipe.student_params`) and the list of kinds (:mod:`~hfsynth.recipe.student_kinds`); shared field
types (:mod:`~hfsynth.recipe.field_types`). Reading one from a file: :mod:`hfsynth.recipes`."""
