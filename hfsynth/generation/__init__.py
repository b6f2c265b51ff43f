"""The generation stage: the teacher writes labelled texts, curation keeps the good ones.

- :mod:`~hfsynth.generation.plan`: which calls ask for which samples, and the real seed texts each shows;
- :mod:`~hfsynth.generation.prompts` and :mod:`~hfsynth.generation.parsing`: the generation prompt and reading its
  answers back into texts;
- :mod:`~hfsynth.generation.curation` (with :mod:`~hfsynth.generation.near_duplicates`): every filter, and why
  each dropped sample was dropped;
- :mod:`~hfsynth.generation.feedback`: error-driven rounds steered by a small student's validation errors;
- :mod:`~hfsynth.generation.samples`: what the stage makes (:class:`Sample`, :class:`GenerationResult`);
- :mod:`~hfsynth.generation.stage`: :func:`generate_samples`, the stage itself.
"""
