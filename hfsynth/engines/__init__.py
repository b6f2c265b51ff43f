"""Engines run units of work and load the teacher, knowing no stage: :mod:`~hfsynth.engines.base` (the interface and
the local engine) and the Ray engine (:mod:`~hfsynth.engines.ray_engine`, with its cluster connection
:mod:`~hfsynth.engines.ray_cluster` and answer streams :mod:`~hfsynth.engines.ray_streams`; imported only with the
``ray`` extra)."""
