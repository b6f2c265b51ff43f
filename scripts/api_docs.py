"""Writes docs/api.md, the public Python API (``hfsynth.__all__``), from the names' signatures and docstrings.

    python scripts/api_docs.py          # rewrite docs/api.md
    python scripts/api_docs.py --check  # exit 1 when docs/api.md is not what the code says (tests/test_api.py)
"""

from __future__ import annotations

import argparse
import inspect
import sys
from pathlib import Path

import hfsynth

DOCS = Path(__file__).resolve().parents[1] / "docs" / "api.md"

HEADER = """# The Python API

Everything below is importable from `hfsynth` itself (`from hfsynth import load_recipe, run`); each name is loaded
when first used, so `import hfsynth` loads no model library. The one side effect of the import is
`OMP_WAIT_POLICY=PASSIVE` when unset (waiting OpenMP threads sleep; it never changes a result). Other modules are
internal: their names may change between versions.

This page is generated from the docstrings by `python scripts/api_docs.py`; a test fails when it is out of date.

```python
from hfsynth import load_recipe, run

recipe = load_recipe("recipes/quickstart.yaml")
outcomes = run([recipe], "runs/quickstart")          # generate, train, evaluate; re-running resumes
print(outcomes[0].results.headline[0].macro_f1)      # the teacher's macro-F1 on the real test set
```
"""


def _signature(value: object) -> str:
    try:
        return str(inspect.signature(value))  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return ""


def render() -> str:
    sections = [HEADER]
    for name in hfsynth.__all__:
        value = getattr(hfsynth, name)
        kind = "class" if inspect.isclass(value) else "function"
        module = value.__module__
        doc = inspect.getdoc(value) or ""
        summary = doc.split("\n\n", 1)[0].replace("\n", " ")
        signature = "" if kind == "class" else _signature(value)
        sections.append(f"## `{name}`\n\n{kind} `{module}.{name}`\n\n"
                        + (f"```python\n{name}{signature}\n```\n\n" if signature else "")
                        + (f"{summary}\n" if summary else ""))
    return "\n".join(sections)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare instead of writing")
    text = render()
    if parser.parse_args().check:
        if DOCS.read_text() != text:
            print(f"{DOCS} is out of date: run python scripts/api_docs.py", file=sys.stderr)
            return 1
        return 0
    DOCS.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
