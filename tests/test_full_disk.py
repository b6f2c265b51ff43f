"""A full disk under the run folder, as a user meets it: the real command on a small tmpfs of its own (a private
mount namespace, so nothing outside the command sees it and it goes when the command ends). One line, never a
traceback; and once there is room again the same command finishes, losing nothing."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from hfsynth.dataset import save_dataset
from hfsynth.generation.stage import generate_samples
from hfsynth.recipes.files import load_recipe
from tests.cli_helpers import cli_environment
from tests.scripted_teacher import ScriptedTeacher

RECIPE = """\
name: full-disk
task: {name: topic, description: Classify the topic of a sentence.}
labels: [{name: sports}, {name: health}]
languages: [en]
teacher: {model: smollm2-135m-instruct}
generation: {samples_per_label: 6, samples_per_call: 3, min_words: 3, max_words: 10}
curation: {language_id: false, min_words: 3}
dataset: {repo_id: me/full-disk}
students:
- {name: tiny, kind: setfit, model: all-minilm-l6-v2, params: {num_iterations: 1, batch_size: 4}}
"""
FULL_DISK_LINE = "error: no space left on the device"


def in_a_small_disk(disk: Path, size: str, steps: list[list[str] | str]) -> list[tuple[int, str]]:
    """Run ``steps`` one after the other with ``disk`` a tmpfs of ``size`` (as mount takes it) of their own: an
    hfsynth command (its arguments), or a shell line that changes the disk. Returns each command's exit code and
    output; what the disk holds at the end is copied to ``disk``'s sibling ``after``."""
    python = shlex.quote(sys.executable)
    lines = [f"mount -t tmpfs -o size={size} tmpfs {shlex.quote(str(disk))}"]
    commands = 0
    for step in steps:
        if isinstance(step, str):
            lines.append(step)
            continue
        lines += [f"{python} -m hfsynth.cli {shlex.join(step)} > {disk.parent}/out{commands}.txt 2>&1",
                  f"echo $? > {disk.parent}/code{commands}.txt"]
        commands += 1
    lines.append(f"cp -r {shlex.quote(str(disk))} {disk.parent}/after")  # before the tmpfs goes with the namespace
    subprocess.run(["unshare", "--mount", "--map-root-user", "sh", "-c", "\n".join(lines)], env=cli_environment(),
                   check=True, timeout=1200)
    return [(int((disk.parent / f"code{index}.txt").read_text()), (disk.parent / f"out{index}.txt").read_text())
            for index in range(commands)]


def fill(disk: Path) -> str:
    """A shell line that fills the disk to its last byte."""
    return f"dd if=/dev/zero of={shlex.quote(str(disk))}/filler bs=64k 2>/dev/null; true"


def assert_one_full_disk_line(code: int, output: str) -> None:
    assert code == 1 and "Traceback" not in output, output
    errors = [line for line in output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and errors[0].startswith(FULL_DISK_LINE), output


@pytest.mark.slow
def test_train_on_a_full_disk_is_one_line_and_resumes_with_room(tmp_path: Path) -> None:
    recipe_path = tmp_path / "recipe.yaml"
    recipe_path.write_text(RECIPE)
    recipe = load_recipe(recipe_path)
    dataset = tmp_path / "dataset"
    save_dataset(recipe, generate_samples(recipe, ScriptedTeacher(), tmp_path / "cache.sqlite"), dataset)
    disk = tmp_path / "disk"
    disk.mkdir()
    train = ["train", str(recipe_path), "--out", str(disk / "run"), "--dataset", str(dataset)]
    # 40 MB: the run folder starts, the student (90 MB of weights) does not fit; then room for it.
    (full_code, full_output), (code, output) = in_a_small_disk(disk, "40m", [
        train, f"mount -o remount,size=600m {shlex.quote(str(disk))}", train])
    assert_one_full_disk_line(full_code, full_output)
    assert code == 0, output
    assert any((tmp_path / "after" / "run" / "students" / "tiny").rglob("*.safetensors")), output


@pytest.mark.slow
def test_generate_on_a_full_disk_is_one_line_and_resumes_with_nothing_paid_twice(tmp_path: Path) -> None:
    recipe_path = tmp_path / "recipe.yaml"
    recipe_path.write_text(RECIPE)
    disk = tmp_path / "disk"
    disk.mkdir()
    generate = ["generate", str(recipe_path), "--out", str(disk / "run")]
    # A whole run; its dataset removed and the disk filled (every answer is in the cache); then room again.
    results = in_a_small_disk(disk, "64m", [generate, f"rm -r {disk}/run/dataset", fill(disk), generate,
                                            f"rm {disk}/filler", generate])
    (first, first_output), (full_code, full_output), (code, output) = results
    assert first == 0, first_output
    assert_one_full_disk_line(full_code, full_output)
    assert code == 0, output
    calls = re.search(r"(\d+) teacher calls \((\d+) from the cache\)", output)
    assert calls and calls.group(1) == calls.group(2), output  # every call answered from the cache
