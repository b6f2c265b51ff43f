"""The credentials the loopback Hub accepts and where they come from: `--token`, a token file, HFSYNTH_HUB_TOKENS.

A spec is `USER:TOKEN:read|write[:ORG1,ORG2]`. No field may contain whitespace, so whitespace (spaces or newlines)
separates specs in HFSYNTH_HUB_TOKENS, while commas stay inside an ORG list. A token file holds one spec a line;
blank lines and `#` comments (a whole line, or after whitespace) are skipped.

Messages about a bad spec say where it came from (file and line, variable and position) but never repeat any of
it: with fields in the wrong order, the token itself could be the field being reported.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from hfsynth.errors import HfsynthError
from hfsynth.hub_server.api_errors import HubError
from hfsynth.hub_server.repo_model import validate_name

TOKENS_VARIABLE = "HFSYNTH_HUB_TOKENS"
SPEC_FORMAT = "USER:TOKEN:read|write[:ORG1,ORG2]"
# A comment starts a line or follows whitespace: a '#' inside a token (which has no whitespace) is kept.
_COMMENT_RE = re.compile(r"(?:^|\s)#.*")


class TokenSpecError(HfsynthError, ValueError):
    """A token spec or token file that cannot be used; the CLI prints it as one line."""


@dataclass(frozen=True)
class HubToken:
    """A credential the server accepts. `token` is kept out of `repr` so it cannot leak into logs."""

    user: str
    token: str = field(repr=False)
    role: Literal["read", "write"] = "write"
    orgs: tuple[str, ...] = ()

    def owns(self, namespace: str) -> bool:
        """The user's own namespace or one of their organisations."""
        return namespace == self.user or namespace in self.orgs


def _is_valid_name(value: str) -> bool:
    try:
        validate_name(value, "name")
    except HubError:
        return False
    return True


def parse_token_spec(spec: str) -> HubToken:
    """`USER:TOKEN:read|write` with an optional `:ORG1,ORG2` listing the organisations USER may write to."""
    parts = spec.split(":")
    if len(parts) not in (3, 4):
        raise TokenSpecError(f"a token spec is {SPEC_FORMAT}")
    user, token, role = parts[:3]
    orgs = tuple(org for org in parts[3].split(",") if org) if len(parts) == 4 else ()
    if role not in ("read", "write"):
        raise TokenSpecError(f"the third field must be 'read' or 'write' ({SPEC_FORMAT})")
    if not token or any(char.isspace() for char in token):
        raise TokenSpecError("the token (second field) must be non-empty and contain no whitespace")
    if not all(_is_valid_name(name) for name in (user, *orgs)):
        raise TokenSpecError("USER and ORG must be names of letters, digits, '-', '_' and '.' (at most 96 characters)")
    return HubToken(user=user, token=token, role=role, orgs=orgs)  # type: ignore[arg-type]


def _specs_in_file(path: Path) -> list[tuple[str, str]]:
    """(where, spec) for each spec line of a token file."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise TokenSpecError(f"token file {path} is not UTF-8 text") from None
    except OSError as error:
        raise TokenSpecError(f"cannot read token file {path}: {error.strerror or type(error).__name__}") from None
    specs = []
    for number, line in enumerate(text.splitlines(), start=1):
        if spec := _COMMENT_RE.sub("", line).strip():
            specs.append((f"token file {path} line {number}", spec))
    return specs


def _specs_in_environment(environment: Mapping[str, str]) -> list[tuple[str, str]]:
    """(where, spec) for each whitespace-separated spec of HFSYNTH_HUB_TOKENS."""
    specs = environment.get(TOKENS_VARIABLE, "").split()
    return [(f"{TOKENS_VARIABLE} spec {number}", spec) for number, spec in enumerate(specs, start=1)]


def _parse_located_specs(specs: Iterable[tuple[str, str]]) -> list[HubToken]:
    """Parse (where, spec) pairs; a bad spec or a token given twice raises TokenSpecError naming where."""
    tokens: list[HubToken] = []
    first_seen: dict[str, str] = {}
    for where, spec in specs:
        try:
            token = parse_token_spec(spec)
        except TokenSpecError as error:
            raise TokenSpecError(f"{where}: {error}") from None
        if token.token in first_seen:
            raise TokenSpecError(f"{where}: the same token is already given by {first_seen[token.token]}")
        first_seen[token.token] = where
        tokens.append(token)
    return tokens


def collect_tokens(
    command_line: Sequence[str], token_file: Path | None, environment: Mapping[str, str]
) -> list[HubToken]:
    """Every token from `--token` specs, the token file (if any) and HFSYNTH_HUB_TOKENS, together."""
    specs = [(f"--token #{number}", spec) for number, spec in enumerate(command_line, start=1)]
    if token_file is not None:
        specs += _specs_in_file(token_file)
    return _parse_located_specs(specs + _specs_in_environment(environment))
