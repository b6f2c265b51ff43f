"""Publishing to the Hub (or the loopback Hub server) and reading published recipes back.

Every push is idempotent: huggingface_hub skips files whose content the Hub already has, so re-running a publish
that finished is a no-op, and re-running one that failed half-way completes it. The token comes from the usual
sources (``HF_TOKEN``, the stored login) through huggingface_hub itself and is never written anywhere.
"""

from __future__ import annotations

from pathlib import Path

from httpx2 import TransportError  # huggingface_hub 2.x's HTTP client: a connection refused, a timeout...
from huggingface_hub import CommitOperationAdd, DatasetCard, HfApi, constants, hf_hub_download
from huggingface_hub.errors import (
    EntryNotFoundError,
    GatedRepoError,
    HfHubHTTPError,
    HFValidationError,
    LocalEntryNotFoundError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)

from hfsynth.cards.render import write_dataset_card
from hfsynth.dataset import load_synthetic_dataset
from hfsynth.errors import HfsynthError
from hfsynth.recipe.schema import Recipe
from hfsynth.recipes.files import load_detached_recipe, load_recipe
from hfsynth.repo_ids import dataset_repo_id
from hfsynth.runs.folder import CARD_FILE, DatasetFolder

HUB_PREFIX = "hf://"

#: What a Hub call raises for a reason outside hfsynth (HTTP errors, a server that does not answer, a bad repo id, a
#: file system error): each becomes one line through describe_hub_error.
HUB_CALL_ERRORS = (HfHubHTTPError, OSError, HFValidationError, TransportError)


def describe_hub_error(error: Exception, repo_id: str, path: str | None = None) -> str:
    """One line for a failed Hub call. huggingface_hub's messages carry URLs and request ids, never the token.

    ``path``: the file that was asked for, named when the repository exists but the file does not.
    """
    if isinstance(error, GatedRepoError):
        return f"repository {repo_id} is gated: accept its conditions on the Hub with the account of your token"
    if isinstance(error, RepositoryNotFoundError):
        return f"repository {repo_id} not found, or your token cannot see it"
    if isinstance(error, RevisionNotFoundError):
        return f"{repo_id}: revision not found"
    if isinstance(error, LocalEntryNotFoundError):
        return (f"{repo_id}: {path or 'the file'} is not in the local cache and the Hub at {constants.ENDPOINT} "
                "cannot be reached (offline, or HF_HUB_OFFLINE=1)")
    if isinstance(error, EntryNotFoundError):
        return f"{repo_id} has no file {path}" if path else f"{repo_id}: file not found in the repository"
    if isinstance(error, HFValidationError):
        return f"{repo_id!r} is not a valid Hub repo id ({str(error).splitlines()[0]})"
    if isinstance(error, TransportError):
        return (f"{repo_id}: cannot reach the Hub at {constants.ENDPOINT} ({type(error).__name__}: "
                f"{str(error).splitlines()[0] if str(error) else 'no answer'}); check HF_ENDPOINT and the network")
    if isinstance(error, HfHubHTTPError) and error.response is not None:
        status = error.response.status_code
        reason = {401: "not logged in or invalid token (set HF_TOKEN or run `hf auth login`)",
                  403: "your token may not write to this repository"}.get(status, str(error).splitlines()[0])
        return f"{repo_id}: HTTP {status}: {reason}"
    return f"{repo_id}: {type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}"


def push_dataset(recipe: Recipe, dataset_dir: Path, repo_id: str | None = None, private: bool | None = None) -> str:
    """Push the synthetic dataset, its card (as the folder has it) and side files; return the repo URL."""
    repo_id = repo_id or dataset_repo_id(recipe)
    private = recipe.dataset.private or recipe.publish.private if private is None else private
    api = HfApi()
    try:
        url = api.create_repo(repo_id, repo_type="dataset", private=private, exist_ok=True)
        # datasets writes the parquet shards and merges its dataset_info/configs into whatever card the repo has.
        load_synthetic_dataset(dataset_dir).push_to_hub(repo_id, private=private,
                                                        commit_message=f"hfsynth: {recipe.name} synthetic dataset")
        remote = DatasetCard.load(repo_id, repo_type="dataset")
        folder = DatasetFolder(dataset_dir)
        if not folder.card.is_file():
            write_dataset_card(recipe, dataset_dir)
        # The card the folder has: once evaluated, it lists the students' results too.
        card = DatasetCard.load(folder.card)
        for key in ("dataset_info", "configs"):  # keep what datasets wrote, so the viewer and load_dataset work
            value = remote.data.to_dict().get(key)
            if value is not None:
                setattr(card.data, key, value)
        operations = [CommitOperationAdd(CARD_FILE, str(card).encode("utf-8"))]
        operations += [CommitOperationAdd(path.name, str(path)) for path in DatasetFolder(dataset_dir).side_files
                       if path.is_file()]
        api.create_commit(repo_id, operations, repo_type="dataset",
                          commit_message=f"hfsynth: card and recipe for {recipe.name}")
    except HUB_CALL_ERRORS as error:
        raise HfsynthError(f"push of dataset failed: {describe_hub_error(error, repo_id)}") from None
    return str(url)


def push_folder(folder: Path, repo_id: str, repo_type: str, private: bool, commit_message: str,
                space_sdk: str | None = None, ignore_patterns: list[str] | None = None,
                delete_patterns: list[str] | None = None, what: str | None = None) -> str:
    """Push a folder as it is (a student's model folder, the Space); return the repo URL.

    ``delete_patterns``: files of the repo to delete in the same commit unless the folder has them (``["*"]``: the
    repo ends up holding exactly the folder). ``what`` names the push in an error (default: the folder's name).
    """
    api = HfApi()
    try:
        url = api.create_repo(repo_id, repo_type=repo_type, private=private, exist_ok=True, space_sdk=space_sdk)
        api.upload_folder(repo_id=repo_id, folder_path=folder, repo_type=repo_type, commit_message=commit_message,
                          ignore_patterns=ignore_patterns, delete_patterns=delete_patterns)
    except HUB_CALL_ERRORS as error:
        raise HfsynthError(f"push of {what or folder.name} failed: {describe_hub_error(error, repo_id)}") from None
    return str(url)


def parse_hub_path(spec: str) -> tuple[str, str, str]:
    """``hf://datasets/owner/name/path/in/repo.yaml`` -> (repo_type, repo_id, path); models need no type prefix."""
    parts = spec.removeprefix(HUB_PREFIX).split("/")
    repo_type = "model"
    if parts[0] in constants.REPO_TYPES_MAPPING:  # "datasets" -> "dataset", as huggingface_hub spells them
        repo_type = constants.REPO_TYPES_MAPPING[parts.pop(0)]
    if len(parts) < 3 or not all(parts):
        raise HfsynthError(f"{spec}: expected hf://[datasets/|spaces/]OWNER/NAME/path/to/recipe.yaml")
    if any(part in {".", ".."} for part in parts):
        # A file in a repo has no '.' or '..' segments (huggingface_hub refuses them): name the one that is meant.
        raise HfsynthError(f"{spec}: a Hub path may not contain '.' or '..' segments")
    return repo_type, "/".join(parts[:2]), "/".join(parts[2:])


def load_recipe_source(source: str, base_dir: Path | None = None) -> Recipe:
    """A recipe from a local file or from the Hub (``hf://...``).

    Relative data paths in a downloaded recipe resolve against ``base_dir`` when given, else as
    :func:`hfsynth.recipes.files.load_detached_recipe` says (./recipes, then the current directory).
    """
    if not source.startswith(HUB_PREFIX):
        return load_recipe(source)
    repo_type, repo_id, path = parse_hub_path(source)
    try:
        local = hf_hub_download(repo_id, path, repo_type=repo_type)
    except (*HUB_CALL_ERRORS, EntryNotFoundError) as error:
        raise HfsynthError(f"cannot download recipe {source}: {describe_hub_error(error, repo_id, path)}") from None
    if base_dir is not None:
        return load_recipe(local, base_dir=base_dir, display_name=source)
    return load_detached_recipe(Path(local), source)
