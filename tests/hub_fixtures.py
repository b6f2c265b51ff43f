"""Pytest plugin: one loopback Hub server per test session, used by the real huggingface_hub/datasets/transformers.

Register it in tests/conftest.py, before anything there imports huggingface_hub:

    pytest_plugins = ["tests.hub_fixtures"]

or for a one-off run: `python -m pytest -p tests.hub_fixtures ...`.

Why a plugin hook rather than a fixture: huggingface_hub (constants.ENDPOINT, HF_HUB_DISABLE_XET) and datasets
(config.HF_ENDPOINT) read their environment once, when imported, and test modules are imported during collection,
before any fixture runs. So `pytest_configure` (which runs before collection) binds the server's port and sets
HF_ENDPOINT and HF_HUB_DISABLE_XET=1 for the whole session; no client code is patched. The server starts the first
time a test asks for `hub_server`; until then its port refuses connections, so a test that reaches for the Hub
without the fixture fails fast instead of hanging.

Fixtures: `hub_server` (the running HubServer), `hub_users` (tokens: alice write, alice read-only, bob write),
`hub_api` (an HfApi acting as alice) and `hub_repo_id` (a fresh "alice/..." repo id per test).
"""

from __future__ import annotations

import os
import re
import secrets
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING

import pytest

from hfsynth.hub_server.server import HubServer
from hfsynth.hub_server.tokens import HubToken

if TYPE_CHECKING:
    from huggingface_hub import HfApi

# alice may also write to this organisation (it is listed in her token spec); bob may not.
ORG = "hfsynth-org"
_CLIENT_ENVIRONMENT = {"HF_HUB_DISABLE_XET": "1"}  # plus HF_ENDPOINT, known once the port is bound


@dataclass(frozen=True)
class HubUsers:
    alice: HubToken
    alice_read: HubToken
    bob: HubToken

    @property
    def all(self) -> tuple[HubToken, ...]:
        return (self.alice, self.alice_read, self.bob)


@dataclass
class _HubSession:
    server: HubServer
    users: HubUsers
    previous_environment: dict[str, str | None]


_SESSION = pytest.StashKey[_HubSession]()


def pytest_configure(config: pytest.Config) -> None:
    # Fresh random tokens each session, so "the token appears nowhere" checks cannot pass by accident.
    users = HubUsers(
        alice=HubToken("alice", f"hf_alice_{secrets.token_hex(16)}", "write", orgs=(ORG,)),
        alice_read=HubToken("alice", f"hf_alice_read_{secrets.token_hex(16)}", "read", orgs=(ORG,)),
        bob=HubToken("bob", f"hf_bob_{secrets.token_hex(16)}", "write"),
    )
    server = HubServer(tokens=users.all)  # binds the port now; repos go to a temporary folder removed on stop
    environment = {"HF_ENDPOINT": server.url, **_CLIENT_ENVIRONMENT}
    previous = {name: os.environ.get(name) for name in environment}
    os.environ.update(environment)
    config.stash[_SESSION] = _HubSession(server, users, previous)


def pytest_unconfigure(config: pytest.Config) -> None:
    session = config.stash.get(_SESSION, None)
    if session is None:
        return
    session.server.stop()
    for name, value in session.previous_environment.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


def _session(config: pytest.Config) -> _HubSession:
    session = config.stash.get(_SESSION, None)
    if session is None:
        pytest.fail("tests.hub_fixtures is not registered: add pytest_plugins = ['tests.hub_fixtures'] to conftest.py")
    return session


def _check_clients_configured(url: str) -> None:
    """Fail with the fix, rather than talk to the wrong endpoint, if a client read its settings too early."""
    hub_constants = sys.modules.get("huggingface_hub.constants")
    datasets_config = sys.modules.get("datasets.config")
    if hub_constants is not None and (hub_constants.ENDPOINT != url or not hub_constants.HF_HUB_DISABLE_XET):
        pytest.fail(
            "huggingface_hub was imported before tests.hub_fixtures set HF_ENDPOINT: register the plugin in "
            "tests/conftest.py before any import of huggingface_hub, datasets or transformers"
        )
    if datasets_config is not None and datasets_config.HF_ENDPOINT != url:
        pytest.fail("datasets was imported before tests.hub_fixtures set HF_ENDPOINT (see tests/hub_fixtures.py)")
    if hub_constants is not None and hub_constants.HF_HUB_OFFLINE:
        pytest.fail("HF_HUB_OFFLINE is set: the Hub tests need the clients online (they only reach loopback)")


@pytest.fixture(scope="session")
def hub_server(pytestconfig: pytest.Config) -> HubServer:
    session = _session(pytestconfig)
    _check_clients_configured(session.server.url)
    if not session.server.running:
        session.server.start()
    return session.server


@pytest.fixture(scope="session")
def hub_users(pytestconfig: pytest.Config) -> HubUsers:
    return _session(pytestconfig).users


@pytest.fixture
def hub_api(hub_server: HubServer, hub_users: HubUsers) -> HfApi:
    from huggingface_hub import HfApi

    return HfApi(endpoint=hub_server.url, token=hub_users.alice.token)


@pytest.fixture
def hub_repo_id(request: pytest.FixtureRequest) -> str:
    """A repo id under alice's namespace that no other test uses (the server lives for the whole session)."""
    readable = re.sub(r"[^A-Za-z0-9]+", "-", request.node.name).strip("-")[:60]
    return f"alice/{readable}-{secrets.token_hex(4)}"
