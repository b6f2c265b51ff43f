"""Evaluation on real, human-labelled test sets (split into modules in the next commits)."""

from hfsynth.evaluation.runner import *  # noqa: F403
from hfsynth.evaluation.runner import run_evaluation  # noqa: F401
