"""The loopback Hub server against the real, unmodified huggingface_hub, datasets and transformers clients.

Needs the tests.hub_fixtures plugin (it sets HF_ENDPOINT / HF_HUB_DISABLE_XET before the clients are imported).
Raw `httpx` requests cover what the clients never send: malformed payloads, forged URLs, odd ranges.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import os
import secrets
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from huggingface_hub import CommitOperationAdd, CommitOperationDelete, HfApi, hf_hub_download, snapshot_download
from huggingface_hub.errors import (
    EntryNotFoundError,
    HfHubHTTPError,
    RemoteEntryNotFoundError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)

from hfsynth.hub_server.access import INVALID_CREDENTIALS
from hfsynth.hub_server.server import HubServer
from hfsynth.hub_server.tokens import parse_token_spec
from tests.hub_fixtures import ORG, HubUsers


@pytest.fixture(autouse=True)
def _clients_point_at_the_session_hub(request: pytest.FixtureRequest) -> None:
    """Every test here needs the plugin's client environment (HF_ENDPOINT, HF_HUB_DISABLE_XET=1), even the ones that
    run their own server; say how to get it rather than fail with "fixture not found" or a Xet connection error."""
    if not request.config.pluginmanager.has_plugin("tests.hub_fixtures"):
        pytest.fail("Register the Hub fixtures: pytest_plugins = ['tests.hub_fixtures'] in tests/conftest.py")
    request.getfixturevalue("hub_server")


def git_oid(content: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(content) + content).hexdigest()


def ndjson(*lines: dict) -> bytes:
    return b"".join(json.dumps(line).encode() + b"\n" for line in lines)


def header_line(summary: str = "raw commit") -> dict:
    return {"key": "header", "value": {"summary": summary, "description": ""}}


def file_line(path: str, content: bytes) -> dict:
    encoded = base64.b64encode(content).decode()
    return {"key": "file", "value": {"path": path, "content": encoded, "encoding": "base64"}}


def status_of(call: Callable[[], object]) -> int:
    """The HTTP status of the HfHubHTTPError that `call` raises."""
    with pytest.raises(HfHubHTTPError) as error:
        call()
    return error.value.response.status_code


def test_whoami_and_unknown_token(hub_server: HubServer, hub_users: HubUsers, hub_api: HfApi, hub_repo_id: str) -> None:
    me = hub_api.whoami()
    assert (me["name"], me["auth"]["accessToken"]["role"], me["orgs"][0]["name"]) == ("alice", "write", ORG)
    assert hub_api.whoami(token=hub_users.alice_read.token)["auth"]["accessToken"]["role"] == "read"

    hub_api.create_repo(hub_repo_id)
    stranger = HfApi(endpoint=hub_server.url, token="hf_not_a_known_token")
    assert status_of(stranger.whoami) == 401
    # A bad token is refused even on a public repo, and is not mistaken for a missing repo.
    with pytest.raises(HfHubHTTPError) as error:
        stranger.model_info(hub_repo_id)
    assert not isinstance(error.value, RepositoryNotFoundError)
    assert error.value.response.headers["X-Error-Message"] == INVALID_CREDENTIALS


def test_repo_ids_without_namespace_are_not_found(hub_api: HfApi, tmp_path: Path) -> None:
    assert not hub_api.repo_exists("gpt2") and not hub_api.repo_exists("squad", repo_type="dataset")
    with pytest.raises(RepositoryNotFoundError):
        hub_api.hf_hub_download("gpt2", "config.json", cache_dir=tmp_path)


@pytest.mark.parametrize("repo_type", ["model", "dataset", "space"])
def test_create_and_delete_repos(hub_api: HfApi, hub_repo_id: str, repo_type: str) -> None:
    sdk = {"space_sdk": "gradio"} if repo_type == "space" else {}
    url = hub_api.create_repo(hub_repo_id, repo_type=repo_type, **sdk)
    assert (url.repo_id, url.repo_type) == (hub_repo_id, repo_type)

    info = hub_api.repo_info(hub_repo_id, repo_type=repo_type)
    assert [sibling.rfilename for sibling in info.siblings] == [".gitattributes"]  # the Hub's initial commit
    assert len(info.sha) == 40 and info.private is False
    if repo_type == "space":
        assert info.sdk == "gradio"

    assert status_of(lambda: hub_api.create_repo(hub_repo_id, repo_type=repo_type, **sdk)) == 409
    hub_api.create_repo(hub_repo_id, repo_type=repo_type, exist_ok=True, **sdk)

    hub_api.delete_repo(hub_repo_id, repo_type=repo_type)
    assert not hub_api.repo_exists(hub_repo_id, repo_type=repo_type)
    hub_api.delete_repo(hub_repo_id, repo_type=repo_type, missing_ok=True)
    with pytest.raises(RepositoryNotFoundError):
        hub_api.delete_repo(hub_repo_id, repo_type=repo_type)


def test_upload_browse_and_download(hub_api: HfApi, hub_users: HubUsers, hub_repo_id: str, tmp_path: Path) -> None:
    expected = {
        "README.md": b"---\nlicense: mit\ntags:\n- loopback\n---\n# Tiny model\n",
        "config.json": b'{"hidden_size": 32}',
        "nested/deep/notes.txt": b"notes\n",
        "weights.safetensors": os.urandom(2048),  # LFS by extension (.gitattributes)
        "big.txt": b"0123456789abcdef\n" * 650_000,  # 11 MB of text: LFS by size alone
    }
    folder = tmp_path / "folder"
    for name, content in expected.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(content)
    hub_api.create_repo(hub_repo_id)
    commit = hub_api.upload_folder(repo_id=hub_repo_id, folder_path=folder, commit_message="add folder")

    assert sorted(hub_api.list_repo_files(hub_repo_id)) == sorted([".gitattributes", *expected])
    info = hub_api.model_info(hub_repo_id, files_metadata=True)
    siblings = {sibling.rfilename: sibling for sibling in info.siblings}
    assert info.sha == commit.oid
    assert siblings["weights.safetensors"].lfs.sha256 == hashlib.sha256(expected["weights.safetensors"]).hexdigest()
    assert siblings["big.txt"].lfs.size == len(expected["big.txt"])
    assert siblings["config.json"].lfs is None and siblings["config.json"].blob_id == git_oid(expected["config.json"])
    assert info.card_data.license == "mit" and info.tags == ["loopback"]

    root = {entry.path: type(entry).__name__ for entry in hub_api.list_repo_tree(hub_repo_id)}
    assert root["nested"] == "RepoFolder" and root["config.json"] == "RepoFile" and "nested/deep" not in root
    nested = [entry.path for entry in hub_api.list_repo_tree(hub_repo_id, path_in_repo="nested", recursive=True)]
    assert nested == ["nested/deep", "nested/deep/notes.txt"]
    with pytest.raises(EntryNotFoundError):
        list(hub_api.list_repo_tree(hub_repo_id, path_in_repo="data"))  # datasets probes data/ and expects 404
    found = hub_api.get_paths_info(hub_repo_id, ["config.json", "nested", "absent.txt"])
    assert [(entry.path, type(entry).__name__) for entry in found] == [
        ("config.json", "RepoFile"),
        ("nested", "RepoFolder"),
    ]

    token = hub_users.alice.token
    for name, content in expected.items():
        assert (
            Path(hf_hub_download(hub_repo_id, name, cache_dir=tmp_path / "cache", token=token)).read_bytes() == content
        )
    snapshot = Path(snapshot_download(hub_repo_id, cache_dir=tmp_path / "snapshot", token=token))
    assert all((snapshot / name).read_bytes() == content for name, content in expected.items())


def test_revisions_refs_history_and_pull_requests(
    hub_api: HfApi, hub_users: HubUsers, hub_repo_id: str, tmp_path: Path
):
    hub_api.create_repo(hub_repo_id)
    first = hub_api.upload_file(
        path_or_fileobj=b"v1", path_in_repo="data.txt", repo_id=hub_repo_id, commit_message="v1"
    )
    hub_api.create_branch(hub_repo_id, branch="dev")
    assert status_of(lambda: hub_api.create_branch(hub_repo_id, branch="dev")) == 409
    hub_api.create_branch(hub_repo_id, branch="dev", exist_ok=True)
    hub_api.create_tag(hub_repo_id, tag="v1.0")
    second = hub_api.upload_file(
        path_or_fileobj=b"v2", path_in_repo="data.txt", repo_id=hub_repo_id, commit_message="v2"
    )
    on_dev = hub_api.upload_file(path_or_fileobj=b"d", path_in_repo="dev.txt", repo_id=hub_repo_id, revision="dev")

    def read(revision: str, name: str = "data.txt") -> bytes:
        path = hf_hub_download(hub_repo_id, name, revision=revision, cache_dir=tmp_path, token=hub_users.alice.token)
        return Path(path).read_bytes()

    assert [read("main"), read(first.oid), read("v1.0"), read("dev"), read("dev", "dev.txt")] == [
        b"v2",
        b"v1",
        b"v1",
        b"v1",
        b"d",
    ]
    assert not hub_api.file_exists(hub_repo_id, "dev.txt")
    with pytest.raises(RevisionNotFoundError):
        read("no-such-branch")
    with pytest.raises(RemoteEntryNotFoundError):
        read("main", "absent.txt")

    refs = hub_api.list_repo_refs(hub_repo_id)
    assert {ref.name: ref.target_commit for ref in refs.branches} == {"main": second.oid, "dev": on_dev.oid}
    assert [(ref.name, ref.target_commit) for ref in refs.tags] == [("v1.0", first.oid)]
    commits = hub_api.list_repo_commits(hub_repo_id)
    assert [commit.title for commit in commits] == ["v2", "v1", "initial commit"]
    assert commits[0].commit_id == second.oid and commits[0].authors == ["alice"]

    proposal = hub_api.upload_file(path_or_fileobj=b"pr", path_in_repo="data.txt", repo_id=hub_repo_id, create_pr=True)
    assert proposal.pr_revision == "refs/pr/1" and read("refs/pr/1") == b"pr" and read("main") == b"v2"
    pulls = hub_api.list_repo_refs(hub_repo_id, include_pull_requests=True).pull_requests
    assert [(ref.ref, ref.target_commit) for ref in pulls] == [("refs/pr/1", proposal.oid)]

    hub_api.upload_folder(repo_id=hub_repo_id, folder_path=_folder(tmp_path / "f", {"a.txt": b"a"}), path_in_repo="dir")
    hub_api.delete_folder("dir", repo_id=hub_repo_id)
    hub_api.delete_file("data.txt", repo_id=hub_repo_id)
    assert hub_api.list_repo_files(hub_repo_id) == [".gitattributes"]

    hub_api.delete_branch(hub_repo_id, branch="dev")
    hub_api.delete_tag(hub_repo_id, tag="v1.0")
    refs = hub_api.list_repo_refs(hub_repo_id)
    assert [ref.name for ref in refs.branches] == ["main"] and refs.tags == []


def _folder(path: Path, files: dict[str, bytes]) -> Path:
    for name, content in files.items():
        (path / name).parent.mkdir(parents=True, exist_ok=True)
        (path / name).write_bytes(content)
    return path


def test_resolve_headers_and_ranges(hub_server: HubServer, hub_api: HfApi, hub_users: HubUsers, hub_repo_id: str):
    binary = bytes(range(256)) * 4
    hub_api.create_repo(hub_repo_id)
    hub_api.upload_file(path_or_fileobj=b"plain text", path_in_repo="t.txt", repo_id=hub_repo_id)
    commit = hub_api.upload_file(path_or_fileobj=binary, path_in_repo="b.bin", repo_id=hub_repo_id)
    auth = {"Authorization": f"Bearer {hub_users.alice.token}"}
    with httpx.Client(base_url=hub_server.url, headers=auth) as client:
        regular = client.head(f"/{hub_repo_id}/resolve/main/t.txt")
        assert regular.headers["ETag"] == f'"{git_oid(b"plain text")}"' and regular.headers["Content-Length"] == "10"
        assert regular.headers["X-Repo-Commit"] == commit.oid and "X-Linked-Etag" not in regular.headers
        large = client.head(f"/{hub_repo_id}/resolve/{commit.oid}/b.bin")
        assert large.headers["X-Linked-Etag"] == f'"{hashlib.sha256(binary).hexdigest()}"'
        assert large.headers["X-Linked-Size"] == "1024" and large.headers["Accept-Ranges"] == "bytes"

        url = f"/{hub_repo_id}/resolve/main/b.bin"
        for header, part in [
            ("bytes=10-19", binary[10:20]),
            ("bytes=-4", binary[-4:]),
            ("bytes=1000-99999", binary[1000:]),
        ]:
            response = client.get(url, headers={"Range": header})
            assert (response.status_code, response.content) == (206, part)
        assert client.get(url, headers={"Range": "bytes=10-19"}).headers["Content-Range"] == "bytes 10-19/1024"
        for header in [
            "bytes=1024-",
            "bytes=99999999999999999999-",
            "bytes=-0",
            "bytes=5-2",
            "bytes=abc",
            "bytes=1-2,4-5",
        ]:
            response = client.get(url, headers={"Range": header})
            assert response.status_code == 416 and response.headers["Content-Range"] == "bytes */1024", header
            assert response.headers["X-Error-Code"] == "RangeNotSatisfiable"

        missing = client.head(f"/{hub_repo_id}/resolve/main/nope.txt")
        assert missing.status_code == 404 and missing.headers["X-Error-Code"] == "EntryNotFound"
        assert missing.headers["X-Repo-Commit"] == commit.oid  # lets the client cache the file's absence


def test_reuploading_an_unchanged_folder_adds_no_commit(hub_api: HfApi, hub_repo_id: str, tmp_path: Path) -> None:
    folder = _folder(tmp_path / "model", {"config.json": b"{}", "model.safetensors": os.urandom(4096)})
    hub_api.create_repo(hub_repo_id)
    first = hub_api.upload_folder(repo_id=hub_repo_id, folder_path=folder)
    # The client compares the oids from preupload with its own and skips the commit ("No files have been modified
    # since last commit"), returning the current head.
    again = hub_api.upload_folder(repo_id=hub_repo_id, folder_path=folder)
    assert again.oid == first.oid and len(hub_api.list_repo_commits(hub_repo_id)) == 2

    (folder / "config.json").write_bytes(b'{"changed": true}')
    changed = hub_api.upload_folder(repo_id=hub_repo_id, folder_path=folder)
    assert changed.oid != first.oid and len(hub_api.list_repo_commits(hub_repo_id)) == 3


def test_private_repos_and_permissions(hub_server: HubServer, hub_users: HubUsers, hub_repo_id: str, tmp_path: Path):
    def api(token: str | bool) -> HfApi:
        return HfApi(endpoint=hub_server.url, token=token)

    alice, alice_read, bob, anonymous = (
        api(hub_users.alice.token),
        api(hub_users.alice_read.token),
        api(hub_users.bob.token),
        api(False),
    )
    alice.create_repo(hub_repo_id, private=True)
    alice.upload_file(path_or_fileobj=b"secret", path_in_repo="s.txt", repo_id=hub_repo_id)
    assert alice.model_info(hub_repo_id).private is True
    assert alice_read.model_info(hub_repo_id).sha is not None  # a read-only token still reads its owner's repos

    with pytest.raises(RepositoryNotFoundError) as error:
        anonymous.model_info(hub_repo_id)
    assert error.value.response.status_code == 401
    with pytest.raises(RepositoryNotFoundError) as error:
        bob.model_info(hub_repo_id)
    assert error.value.response.status_code == 404
    with pytest.raises(RepositoryNotFoundError):
        hf_hub_download(hub_repo_id, "s.txt", cache_dir=tmp_path, token=False)
    assert not bob.repo_exists(hub_repo_id)

    def upload(client: HfApi, repo_id: str = hub_repo_id) -> None:
        client.upload_file(path_or_fileobj=b"x", path_in_repo="x.txt", repo_id=repo_id)

    assert status_of(lambda: upload(bob)) == 403
    assert status_of(lambda: upload(alice_read)) == 403
    assert status_of(lambda: bob.delete_repo(hub_repo_id)) == 403
    assert status_of(lambda: anonymous.create_repo(f"{hub_repo_id}-anonymous")) == 401
    assert status_of(lambda: alice_read.create_repo(f"{hub_repo_id}-read-only")) == 403
    assert status_of(lambda: bob.create_repo(f"{hub_repo_id}-by-bob")) == 403

    org_repo = f"{ORG}/{hub_repo_id.split('/')[1]}"
    alice.create_repo(org_repo)  # alice's token spec lists the organisation
    upload(alice, org_repo)
    assert bob.model_info(org_repo).sha is not None  # public: anyone reads
    assert status_of(lambda: upload(bob, org_repo)) == 403
    assert status_of(lambda: bob.create_repo(f"{org_repo}-by-bob")) == 403


def test_failed_commits_leave_the_repo_unchanged(
    hub_server: HubServer, hub_api: HfApi, hub_users: HubUsers, hub_repo_id
):
    hub_api.create_repo(hub_repo_id)
    initial = hub_api.model_info(hub_repo_id).sha
    hub_api.upload_file(path_or_fileobj=b"original", path_in_repo="keep.txt", repo_id=hub_repo_id)
    before = hub_api.model_info(hub_repo_id, files_metadata=True)

    def unchanged() -> bool:
        after = hub_api.model_info(hub_repo_id, files_metadata=True)
        return after.sha == before.sha and after.siblings == before.siblings

    never_uploaded = {
        "key": "lfsFile",
        "value": {"path": "w.bin", "algo": "sha256", "oid": secrets.token_hex(32), "size": 3},
    }
    payload = ndjson(
        header_line(),
        file_line("new.txt", b"new"),
        {"key": "deletedFile", "value": {"path": "keep.txt"}},
        never_uploaded,
    )
    response = httpx.post(
        f"{hub_server.url}/api/models/{hub_repo_id}/commit/main",
        content=payload,
        headers={"Authorization": f"Bearer {hub_users.alice.token}", "Content-Type": "application/x-ndjson"},
    )
    assert response.status_code == 400 and response.headers["X-Error-Code"] == "BadRequest"
    assert unchanged()

    operations = [CommitOperationAdd("x.txt", b"x"), CommitOperationDelete("absent.txt")]
    with pytest.raises(RemoteEntryNotFoundError):
        hub_api.create_commit(hub_repo_id, operations, commit_message="deletes a missing file")
    assert unchanged()

    # parent_commit is no longer the head of main: the client gets a clean 412 Precondition Failed.
    late = {"path_or_fileobj": b"late", "path_in_repo": "keep.txt", "repo_id": hub_repo_id, "parent_commit": initial}
    assert status_of(lambda: hub_api.upload_file(**late)) == 412
    assert unchanged()


def test_malformed_requests_get_clean_4xx(hub_server: HubServer, hub_api: HfApi, hub_users: HubUsers, hub_repo_id: str):
    hub_api.create_repo(hub_repo_id)
    hub_api.upload_file(path_or_fileobj=b"data", path_in_repo="f.txt", repo_id=hub_repo_id)
    head = hub_api.model_info(hub_repo_id).sha
    commit = f"/api/models/{hub_repo_id}/commit/main"
    as_ndjson = {"Content-Type": "application/x-ndjson"}
    forged_upload = f"/{hub_repo_id}.git/info/lfs/objects/{'0' * 64}?size=3&expires=9999999999&signature=forged"
    cases: list[tuple[str, str, dict, int, str | None]] = [
        (
            "POST",
            "/api/repos/create",
            {"content": b"{not json", "headers": {"Content-Type": "application/json"}},
            400,
            "BadRequest",
        ),
        (
            "POST",
            "/api/repos/create",
            {"content": b'{"name": "x"}', "headers": {"Content-Type": "text/plain"}},
            415,
            None,
        ),
        ("POST", "/api/repos/create", {"json": {"name": "../escape"}}, 400, "BadRequest"),
        ("POST", "/api/repos/create", {"json": ["not", "an", "object"]}, 400, "BadRequest"),
        ("POST", commit, {"content": b"garbage\n", "headers": as_ndjson}, 400, "BadRequest"),
        ("POST", commit, {"content": ndjson(file_line("a.txt", b"a")), "headers": as_ndjson}, 400, "BadRequest"),
        (
            "POST",
            commit,
            {"content": ndjson(header_line(), file_line("../up.txt", b"a")), "headers": as_ndjson},
            400,
            None,
        ),
        (
            "POST",
            commit,
            {"content": ndjson(header_line(), file_line("/abs.txt", b"a")), "headers": as_ndjson},
            400,
            None,
        ),
        (
            "POST",
            commit,
            {"content": ndjson(header_line(), file_line("a/.git/x", b"a")), "headers": as_ndjson},
            400,
            None,
        ),
        (
            "POST",
            commit,
            {
                "content": ndjson(
                    header_line(), {"key": "file", "value": {"path": "a", "content": "!!", "encoding": "base64"}}
                ),
                "headers": as_ndjson,
            },
            400,
            "BadRequest",
        ),
        (
            "POST",
            commit,
            {"content": ndjson(header_line()), "headers": {"Content-Type": "application/json"}},
            415,
            None,
        ),
        (
            "POST",
            f"/api/models/{hub_repo_id}/preupload/main",
            {"json": {"files": [{"path": "a", "size": -1, "sample": ""}]}},
            400,
            None,
        ),
        (
            "POST",
            f"/api/models/{hub_repo_id}/preupload/main",
            {"json": {"files": [{"path": "a", "size": 1, "sample": "%%"}]}},
            400,
            None,
        ),
        (
            "POST",
            f"/{hub_repo_id}.git/info/lfs/objects/batch",
            {"json": {"operation": "upload", "objects": "x"}},
            400,
            None,
        ),
        ("PUT", forged_upload, {"content": b"abc"}, 403, "Forbidden"),
        ("GET", f"/api/models/{hub_repo_id}/tree/main/no-such-dir", {}, 404, "EntryNotFound"),
        ("GET", f"/api/models/{hub_repo_id}/revision/no-such-branch", {}, 404, "RevisionNotFound"),
        ("GET", "/api/models/alice/no-such-repo", {}, 404, "RepoNotFound"),
        ("GET", "/api/models/alice/bad..name", {}, 400, "BadRequest"),
        ("GET", "/api/agent-harnesses", {}, 404, None),
        ("DELETE", f"/api/models/{hub_repo_id}/refs", {}, 405, "MethodNotAllowed"),
        ("POST", "/api/validate-yaml", {"json": {"content": "---\nkey: [unclosed\n---\n"}}, 400, "BadRequest"),
        ("POST", "/api/no-such-route", {"content": b"x" * 3_000_000}, 404, None),  # a large unread body is drained
    ]
    auth = {"Authorization": f"Bearer {hub_users.alice.token}"}
    # One keep-alive connection for everything: an undrained body would corrupt the next request on it.
    with httpx.Client(base_url=hub_server.url, headers=auth) as client:
        for method, path, options, status, code in cases:
            response = client.request(method, path, **options)
            assert response.status_code == status, (method, path, response.text)
            assert response.headers.get("X-Error-Code") == code if code else "X-Error-Code" in response.headers
            assert client.get(f"/api/models/{hub_repo_id}").json()["sha"] == head
    assert hub_api.list_repo_files(hub_repo_id) == [".gitattributes", "f.txt"]


def test_concurrent_pushes_to_one_repo(hub_api: HfApi, hub_repo_id: str) -> None:
    hub_api.create_repo(hub_repo_id)
    barrier = threading.Barrier(2)

    def push(index: int, parent_commit: str | None = None):
        barrier.wait()
        try:
            return hub_api.upload_file(
                path_or_fileobj=f"thread {index}".encode(),
                path_in_repo=f"t{index}.txt",
                repo_id=hub_repo_id,
                parent_commit=parent_commit,
            )
        except HfHubHTTPError as error:
            return error.response.status_code

    with ThreadPoolExecutor(2) as pool:
        assert all(not isinstance(result, int) for result in pool.map(push, range(2)))  # both land, one after the other
    assert hub_api.list_repo_files(hub_repo_id) == [".gitattributes", "t0.txt", "t1.txt"]
    assert len(hub_api.list_repo_commits(hub_repo_id)) == 3

    head = hub_api.model_info(hub_repo_id).sha
    with ThreadPoolExecutor(2) as pool:
        results = list(pool.map(push, [2, 3], [head, head]))
    assert sorted(isinstance(result, int) for result in results) == [False, True] and 412 in results
    winner = next(index for index, result in zip([2, 3], results, strict=True) if not isinstance(result, int))
    assert hub_api.list_repo_files(hub_repo_id) == [".gitattributes", "t0.txt", "t1.txt", f"t{winner}.txt"]
    assert len(hub_api.list_repo_commits(hub_repo_id)) == 4


def test_space_card_data_and_yaml_validation(hub_api: HfApi, hub_repo_id: str) -> None:
    hub_api.create_repo(hub_repo_id, repo_type="space", space_sdk="gradio")
    readme = b"---\ntitle: Demo\nsdk: gradio\nlicense: apache-2.0\n---\n# Demo\n"
    hub_api.upload_file(path_or_fileobj=readme, path_in_repo="README.md", repo_id=hub_repo_id, repo_type="space")
    info = hub_api.space_info(hub_repo_id)
    assert info.sdk == "gradio" and info.card_data.title == "Demo" and info.card_data.license == "apache-2.0"
    # The client validates README front matter through /api/validate-yaml before uploading anything.
    with pytest.raises(ValueError, match=r"Invalid metadata in README\.md"):
        hub_api.upload_file(
            path_or_fileobj=b"---\nkey: [\n---\n", path_in_repo="README.md", repo_id=hub_repo_id, repo_type="space"
        )


def test_datasets_push_to_hub_and_load(hub_api: HfApi, hub_users: HubUsers, hub_repo_id: str, tmp_path: Path) -> None:
    import datasets
    from huggingface_hub import DatasetCard

    features = datasets.Features({"text": datasets.Value("string"), "label": datasets.ClassLabel(names=["neg", "pos"])})
    splits = datasets.DatasetDict(
        {
            "train": datasets.Dataset.from_dict(
                {"text": ["good", "bad", "fine"], "label": [1, 0, 1]}, features=features
            ),
            "test": datasets.Dataset.from_dict({"text": ["awful", "great"], "label": [0, 1]}, features=features),
        }
    )
    splits.push_to_hub(hub_repo_id, token=hub_users.alice.token)

    loaded = datasets.load_dataset(hub_repo_id, token=hub_users.alice.token, cache_dir=str(tmp_path / "cache"))
    assert set(loaded) == {"train", "test"}
    for name, split in splits.items():
        assert loaded[name].features == features and loaded[name].to_list() == split.to_list()
    card = DatasetCard.load(hub_repo_id, repo_type="dataset", token=hub_users.alice.token)
    assert card.data.configs[0]["config_name"] == "default"
    assert card.data.dataset_info["features"][1]["dtype"]["class_label"]["names"] == {"0": "neg", "1": "pos"}
    parquet = [
        s for s in hub_api.dataset_info(hub_repo_id, files_metadata=True).siblings if s.rfilename.endswith(".parquet")
    ]
    assert len(parquet) == 2 and all(sibling.lfs is not None for sibling in parquet)


def test_transformers_push_to_hub_and_from_pretrained(hub_users: HubUsers, hub_repo_id: str, tmp_path: Path) -> None:
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import (
        AutoModelForSequenceClassification,
        AutoTokenizer,
        BertConfig,
        BertForSequenceClassification,
        PreTrainedTokenizerFast,
    )

    vocabulary = {"[PAD]": 0, "[UNK]": 1, "[CLS]": 2, "[SEP]": 3, "good": 4, "bad": 5, "movie": 6}
    backend = Tokenizer(models.WordLevel(vocab=vocabulary, unk_token="[UNK]"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend, unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]", sep_token="[SEP]"
    )
    config = BertConfig(
        vocab_size=len(vocabulary),
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=32,
        num_labels=2,
    )
    torch.manual_seed(0)
    model = BertForSequenceClassification(config)
    token = hub_users.alice.token
    model.push_to_hub(hub_repo_id, token=token)
    tokenizer.push_to_hub(hub_repo_id, token=token)

    loaded = AutoModelForSequenceClassification.from_pretrained(hub_repo_id, token=token, cache_dir=tmp_path)
    original_state, loaded_state = model.state_dict(), loaded.state_dict()
    assert original_state.keys() == loaded_state.keys()
    assert all(torch.equal(tensor, loaded_state[name]) for name, tensor in original_state.items())
    loaded_tokenizer = AutoTokenizer.from_pretrained(hub_repo_id, token=token, cache_dir=tmp_path)
    assert loaded_tokenizer("good movie")["input_ids"] == tokenizer("good movie")["input_ids"]


def test_repos_survive_a_restart(tmp_path: Path) -> None:
    owner = parse_token_spec("carol:hf_carol_restart_token:write")
    content = os.urandom(3000)
    with HubServer(data_dir=tmp_path / "hub", tokens=[owner]) as server:
        api = HfApi(endpoint=server.url, token=owner.token)
        api.create_repo("carol/kept", private=True)
        commit = api.upload_file(path_or_fileobj=content, path_in_repo="w.bin", repo_id="carol/kept")
    with HubServer(data_dir=tmp_path / "hub", tokens=[owner]) as server:
        api = HfApi(endpoint=server.url, token=owner.token)
        assert api.model_info("carol/kept").sha == commit.oid
        assert Path(api.hf_hub_download("carol/kept", "w.bin", cache_dir=tmp_path / "cache")).read_bytes() == content
    scratch = HubServer()  # no data_dir: a temporary folder, removed on stop
    with scratch:
        assert scratch.data_dir.is_dir()
    assert not scratch.data_dir.exists()


def test_token_spec_parsing() -> None:
    token = parse_token_spec("dana:hf_abc:read:org-one,org-two")
    assert (token.user, token.token, token.role, token.orgs) == ("dana", "hf_abc", "read", ("org-one", "org-two"))
    assert "hf_abc" not in repr(token)
    for bad in ["dana:hf_abc", "dana:hf_abc:admin", "dana::write", "bad name:t:write", "d:t:write:x:y"]:
        with pytest.raises(ValueError):
            parse_token_spec(bad)


def test_tokens_are_never_logged_or_stored(
    hub_server: HubServer, hub_api: HfApi, hub_users: HubUsers, hub_repo_id: str, tmp_path: Path, caplog
) -> None:
    caplog.set_level(logging.DEBUG)
    hub_api.create_repo(hub_repo_id, private=True)
    hub_api.upload_file(path_or_fileobj=os.urandom(1000), path_in_repo="w.bin", repo_id=hub_repo_id)
    hub_api.hf_hub_download(hub_repo_id, "w.bin", cache_dir=tmp_path)
    with pytest.raises(RepositoryNotFoundError):
        HfApi(endpoint=hub_server.url, token=hub_users.bob.token).model_info(hub_repo_id)
    with pytest.raises(HfHubHTTPError):
        HfApi(endpoint=hub_server.url, token=hub_users.alice.token + "x").model_info(hub_repo_id)

    assert any(record.name.startswith("hfsynth.hub") for record in caplog.records)  # the server's own lines too
    secrets_ = [user.token for user in hub_users.all]
    logged = [f"{record.getMessage()} {record.exc_text or ''}" for record in caplog.records]
    assert not [line for line in logged if any(token in line for token in secrets_)]
    stored = [path for path in hub_server.data_dir.rglob("*") if path.is_file()]
    assert stored and not [path for path in stored if any(token.encode() in path.read_bytes() for token in secrets_)]
