"""ISO 639 language codes and the English names used in prompts."""

from __future__ import annotations

import re
from functools import lru_cache

import pycountry


@lru_cache(maxsize=None)
def language_name(code: str) -> str:
    """English name of an ISO 639-1 (``sw``) or 639-3 (``swh``) code, e.g. ``"Swahili"``.

    Raises ``KeyError`` for an unknown code.
    """
    normalized = code.strip().lower()
    language = None
    if len(normalized) == 2:
        language = pycountry.languages.get(alpha_2=normalized)
    elif len(normalized) == 3:
        language = pycountry.languages.get(alpha_3=normalized)
    if language is None:
        raise KeyError(code)
    # "Swahili (macrolanguage)" -> "Swahili": the qualifier only confuses a generator.
    return re.sub(r"\s*\(.*\)$", "", language.name)


def is_known_language(code: str) -> bool:
    try:
        language_name(code)
    except KeyError:
        return False
    return True
