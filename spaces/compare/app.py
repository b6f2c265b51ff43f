"""A comparison Space made by hfsynth (``hfsynth space serve|deploy``): the teacher LLM and the small students trained
on its synthetic data, side by side. The app is :mod:`hfsynth.space.app`, installed from requirements.txt; this file
only starts it on the manifest beside it."""

from pathlib import Path

from hfsynth.space.app import main

if __name__ == "__main__":
    main(Path(__file__).resolve().parent)
