"""hfsynth: a large LLM teaches small models through synthetic labelled data.

The package reads like the pipeline: recipe -> teachers -> generation -> curation -> dataset -> students ->
evaluation -> cards -> hub / space.
"""

from hfsynth.reproducibility import passive_openmp

__version__ = "0.1.0"

# Before anything loads torch (and its OpenMP runtime): threads that wait sleep instead of spinning against other
# processes (hfsynth.reproducibility).
passive_openmp()
