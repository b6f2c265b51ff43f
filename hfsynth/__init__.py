"""hfsynth: a large LLM teaches small models through synthetic labelled data.

The package reads like the pipeline: recipe -> teachers -> generation -> curation -> dataset -> students ->
evaluation -> cards -> hub / space.
"""

__version__ = "0.1.0"
