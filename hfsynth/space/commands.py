"""``hfsynth space serve`` and ``hfsynth space deploy``: a run's Space, served here or pushed to the Hub."""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from hfsynth.checks import check_port_free
from hfsynth.errors import HfsynthError
from hfsynth.hub.publish import HUB_CALL_ERRORS, describe_hub_error, push_folder
from hfsynth.recipe.schema import Recipe
from hfsynth.repo_ids import repo_id_problem, space_repo_id
from hfsynth.runs.folder import RunFolder
from hfsynth.space.session import served_session
from hfsynth.space.staging import recipe_from_run, stage_space

if TYPE_CHECKING:
    import gradio as gr

logger = logging.getLogger(__name__)


def serve(
    run_dir: Path, port: int | None = None, recipe: Recipe | None = None, host: str = "127.0.0.1", block: bool = True
) -> gr.Blocks:
    """Stage the Space in ``RunFolder.space`` and serve it on ``host:port`` (``port`` None: Gradio's first free one).

    ``recipe`` defaults to the run's own. With ``block`` the call returns when the server is stopped (Ctrl-C);
    otherwise it returns at once with the app running (``.local_url``; ``.close()`` stops it).
    """
    if port is not None:
        check_port_free(host, port)  # Gradio's own refusal is a traceback
    run_dir = Path(run_dir)
    recipe = recipe or recipe_from_run(run_dir)
    space = RunFolder(run_dir).space
    stage_space(recipe, run_dir, space.root, for_hub=False)
    if not block:
        from hfsynth.space.app import build_demo

        demo = build_demo(space.manifest)
        demo.launch(server_name=host, server_port=port, prevent_thread_lock=True, quiet=True)
        return demo
    # The users' texts (downloads, Gradio's copies) live in the session's folder, deleted when the server stops.
    with served_session() as work_dir:
        from hfsynth.space.app import build_demo  # imported now: Gradio reads GRADIO_TEMP_DIR at import too

        demo = build_demo(space.manifest, work_dir)
        demo.launch(server_name=host, server_port=port, quiet=False)
    return demo


def deploy(recipe: Recipe, run_dir: Path, repo_id: str | None = None, private: bool | None = None) -> str:
    """Push the run's Space as a Gradio Space repo (``repo_id`` defaults to the recipe's); return its URL.

    The repo ends up holding exactly the staged folder: files an earlier deploy left (say, the copy of a student
    that has since been published) are deleted in the same commit. The token comes from huggingface_hub's usual
    sources (``HF_TOKEN``, the stored login).
    """

    repo_id = repo_id or space_repo_id(recipe)
    problem = repo_id_problem(repo_id)
    if problem:  # checked before staging copies students and asks the Hub about them
        raise HfsynthError(f"Space repo id {repo_id!r} is not a valid Hub repo id ({problem})")
    private = recipe.publish.private if private is None else private
    with tempfile.TemporaryDirectory(prefix="hfsynth-space-") as staging:
        space_dir = Path(staging) / "space"  # any name: its contents become the repo
        try:
            # Staging asks the Hub which students are published, so its errors are Hub errors too.
            manifest = stage_space(recipe, Path(run_dir), space_dir, for_hub=True)
        except HUB_CALL_ERRORS as error:
            raise HfsynthError(f"push of the Space failed: {describe_hub_error(error, repo_id)}") from None
        logger.info("pushing Space %s: %d student(s), %d example(s)", repo_id, len(manifest.students),
                    len(manifest.examples))
        return push_folder(space_dir, repo_id, "space", private, f"hfsynth: {manifest.title}", space_sdk="gradio",
                           delete_patterns=["*"], what="the Space")
