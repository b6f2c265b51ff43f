"""README.md front matter: the YAML block that repo info reports as `cardData` and validate-yaml checks."""

from __future__ import annotations

import re
from typing import Any

import yaml

# huggingface_hub's own front-matter pattern (repocard.REGEX_YAML_BLOCK).
_YAML_BLOCK = re.compile(r"^(\s*---(?:\r\n|\r|\n))([\S\s]*?)((?:\r\n|\r|\n)---[ \t]*(\r\n|\n|$))")


def load_front_matter(text: str) -> Any:
    """The parsed YAML block at the start of `text`, None without one; raises yaml.YAMLError if it is malformed."""
    match = _YAML_BLOCK.match(text)
    return yaml.safe_load(match[2]) if match else None
