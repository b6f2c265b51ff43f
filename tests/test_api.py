"""The public API: ``hfsynth.__all__`` names what exists, importing hfsynth loads no model library, and docs/api.md
says what the code says."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import hfsynth

ROOT = Path(__file__).resolve().parents[1]


def test_every_public_name_resolves_and_is_documented() -> None:
    for name in hfsynth.__all__:
        value = getattr(hfsynth, name)
        assert value.__doc__, name
    assert sorted(hfsynth.__all__) == sorted(set(hfsynth.__all__))


def test_importing_hfsynth_loads_no_model_library() -> None:
    script = ("import sys, hfsynth; heavy = [m for m in ('torch', 'transformers', 'datasets', 'setfit', 'ray') "
              "if m in sys.modules]; print(heavy)")
    shown = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert shown.stdout.strip() == "[]"


def test_the_api_page_is_up_to_date() -> None:
    checked = subprocess.run([sys.executable, ROOT / "scripts" / "api_docs.py", "--check"], capture_output=True,
                             text=True)
    assert checked.returncode == 0, checked.stderr
