"""A run folder: its file names (:mod:`~hfsynth.runs.folder`), what its JSON files hold
(:mod:`~hfsynth.runs.records`), and the events a run reports to the command line (:mod:`~hfsynth.runs.events`)."""
