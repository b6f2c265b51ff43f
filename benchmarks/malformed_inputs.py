"""Malformed inputs through the real command line: does every user mistake end as one line, and never a traceback?

Each case runs ``python -m hfsynth.cli ...`` in a fresh process (this checkout's hfsynth first on the path) on files
made for it in a scratch folder: bad recipes, bad data files, bad flags and ports, bad ``hf://`` paths, bad run
folders, an unreachable Hub. Recorded per case: the exit code, the last line printed, how many lines, and whether a
traceback appeared. A case passes when it exits non-zero, with no traceback, and ends with its one ``error:``
line (a command may print its progress first, as ``generate`` prints its plan).

    python benchmarks/malformed_inputs.py      # writes benchmarks/results/malformed_inputs.{json,md}
"""

from __future__ import annotations

import json
import os
import platform
import shlex
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from tempfile import TemporaryDirectory

import yaml

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
SIB_TEST = ROOT / "data" / "sib200" / "eng_Latn" / "test.jsonl"

BASE_RECIPE = {
    "name": "probe",
    "task": {"name": "topic", "description": "Classify the topic of a sentence."},
    "labels": [{"name": "sports"}, {"name": "health"}],
    "languages": ["en"],
    "teacher": {"model": "smollm2-135m-instruct"},
    "dataset": {"repo_id": "me/probe"},
    "students": [{"name": "s", "kind": "setfit", "model": "all-minilm-l6-v2"}],
    "evaluation": {"sets": [{"language": "en", "path": "test.jsonl"}]},
}
GOOD_ROWS = "".join(json.dumps(row) + "\n" for row in [{"text": "The match ended in a draw.", "label": "sports"},
                                                         {"text": "Drink water every day.", "label": "health"}])


@dataclass
class Case:
    name: str
    arguments: list[str]
    files: dict[str, str | bytes] = field(default_factory=dict)  # relative path -> content, made before the run
    environment: dict[str, str] = field(default_factory=dict)
    setup: Callable[[Path], object] | None = None  # extra preparation (returns what must live during the run)
    #: Not only one error line: this must also hold of the output (a message that must not mislead).
    also: Callable[[str], bool] | None = None
    #: A small disk of its own under the case's folder (a tmpfs in a private mount namespace), at "run".
    disk: str | None = None


def recipe_text(**changes: object) -> str:
    data = json.loads(json.dumps(BASE_RECIPE))
    for dotted, value in changes.items():
        *parents, leaf = dotted.split("__")
        node = data
        for key in parents:
            node = node.setdefault(key, {})
        node[leaf] = value
    return yaml.safe_dump(data)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def dead_endpoint() -> str:
    return f"http://127.0.0.1:{free_port()}"


class BusyPort:
    """A port some other program listens on, for the length of a case."""

    def __init__(self) -> None:
        self.socket = socket.socket()
        self.socket.bind(("127.0.0.1", 0))
        self.socket.listen()
        self.port = self.socket.getsockname()[1]


BUSY = BusyPort()
VALIDATE = ["recipes", "validate", "recipe.yaml"]
GOOD = {"recipe.yaml": recipe_text(), "test.jsonl": GOOD_ROWS}
RUN_DATASET = {**GOOD, "run/dataset/dataset_dict.json": "{}"}  # a run folder whose dataset was cut short


def validate_once(folder: Path) -> None:
    """Reads the recipe's data once, as an earlier command would (datasets' cache then knows the file)."""
    subprocess.run([sys.executable, "-m", "hfsynth.cli", *VALIDATE], cwd=folder, capture_output=True, check=False,
                   env=os.environ | {"PYTHONPATH": str(ROOT)})


def rewrite_in_place(folder: Path) -> None:
    validate_once(folder)
    (folder / "test.jsonl").write_text('{"text": "Stocks fell.", "label": "business"}\n')


def link_loop(folder: Path) -> None:
    (folder / "a.jsonl").symlink_to(folder / "b.jsonl")
    (folder / "b.jsonl").symlink_to(folder / "a.jsonl")


def student(kind: str, model: str, **params: object) -> list[dict[str, object]]:
    return [{"name": "s", "kind": kind, "model": model, "params": params}]


def run_from_elsewhere(folder: Path) -> None:
    """A run folder whose recipe names its test file relatively, seen from another folder."""
    run = folder / "elsewhere" / "run" / "dataset"
    run.mkdir(parents=True)
    (run / "recipe.yaml").write_text(recipe_text())
    (folder / "here").mkdir()


def cases() -> list[Case]:
    endpoint = dead_endpoint()
    return [
        # --- recipes ---------------------------------------------------------------------------------------------
        Case("recipe file missing", ["recipes", "validate", "missing.yaml"]),
        Case("recipe not YAML", VALIDATE, {"recipe.yaml": "name: [unclosed\n"}),
        Case("recipe a YAML list", VALIDATE, {"recipe.yaml": "- a\n- b\n"}),
        Case("recipe not UTF-8", VALIDATE, {"recipe.yaml": b"name: \xff\xfe\n"}),
        Case("recipe unknown field", VALIDATE, {**GOOD, "recipe.yaml": recipe_text(colour="red")}),
        Case("recipe one label", VALIDATE, {**GOOD, "recipe.yaml": recipe_text(labels=[{"name": "a"}])}),
        Case("recipe blank label", VALIDATE,
             {**GOOD, "recipe.yaml": recipe_text(labels=[{"name": "sports"}, {"name": "   "}])}),
        Case("recipe labels equal but for case", VALIDATE,
             {**GOOD, "recipe.yaml": recipe_text(labels=[{"name": "Sports"}, {"name": "sports"}])}),
        Case("recipe unknown language", VALIDATE, {**GOOD, "recipe.yaml": recipe_text(languages=["xx-yy"])}),
        Case("recipe repeats 1e9", VALIDATE, {**GOOD, "recipe.yaml": recipe_text(
            students=[{"name": "s", "kind": "setfit", "model": "all-minilm-l6-v2", "repeats": 10**9}])}),
        Case("recipe train_sizes [100000]", VALIDATE, {**GOOD, "recipe.yaml": recipe_text(
            students=[{"name": "s", "kind": "setfit", "model": "all-minilm-l6-v2", "train_sizes": [100000]}])}),
        Case("recipe bootstrap_resamples 1e12", VALIDATE,
             {**GOOD, "recipe.yaml": recipe_text(evaluation__bootstrap_resamples=10**12)}),
        Case("recipe samples_per_label -1", VALIDATE,
             {**GOOD, "recipe.yaml": recipe_text(generation__samples_per_label=-1)}),
        Case("recipe unknown student kind", VALIDATE, {**GOOD, "recipe.yaml": recipe_text(
            students=[{"name": "s", "kind": "xgboost", "model": "x"}])}),
        # --- data files ------------------------------------------------------------------------------------------
        Case("test file missing", VALIDATE, {"recipe.yaml": recipe_text()}),
        Case("test file blank", VALIDATE, {**GOOD, "test.jsonl": "\n \n"}),
        Case("test file truncated", VALIDATE, {**GOOD, "test.jsonl": GOOD_ROWS + '{"text": "cut sho'}),
        Case("test file null text", VALIDATE,
             {**GOOD, "test.jsonl": '{"text": null, "label": "sports"}\n' + GOOD_ROWS}),
        Case("test file int first text", VALIDATE,
             {**GOOD, "test.jsonl": '{"text": 5, "label": "sports"}\n' + GOOD_ROWS}),
        Case("test file no label column", VALIDATE, {**GOOD, "test.jsonl": '{"text": "A goal.", "topic": "sports"}\n'}),
        Case("test file unknown label", VALIDATE,
             {**GOOD, "test.jsonl": GOOD_ROWS + '{"text": "Stocks fell.", "label": "business"}\n'}),
        Case("test file .xlsx", VALIDATE, {"recipe.yaml": recipe_text(evaluation__sets=[
            {"language": "en", "path": "test.xlsx"}]), "test.xlsx": b"PK\x03\x04"}),
        Case("test file CSV header only", VALIDATE, {"recipe.yaml": recipe_text(evaluation__sets=[
            {"language": "en", "path": "test.csv"}]), "test.csv": "text,label\n"}),
        # --- flags and ports -------------------------------------------------------------------------------------
        Case("unknown command", ["transmogrify"]),
        Case("unknown option", ["generate", "recipe.yaml", "--out", "run", "--bogus"], GOOD),
        Case("missing argument", ["recipes", "validate"]),
        Case("--out without a value", ["generate", "recipe.yaml", "--out"], GOOD),
        Case("bad verbosity variable", VALIDATE, GOOD, {"HFSYNTH_VERBOSITY": "loud"}),
        Case("--ray given a recipe", ["run", "recipe.yaml", "--out", "run", "--ray", "recipe.yaml"], GOOD),
        Case("hub serve --port 70000", ["hub", "serve", "--port", "70000"]),
        Case("hub serve --port -5", ["hub", "serve", "--port=-5"]),
        Case("hub serve --port abc", ["hub", "serve", "--port", "abc"]),
        Case("hub serve on a port in use", ["hub", "serve", "--port", str(BUSY.port), "--data-dir", "hub"]),
        Case("hub serve --token-file missing", ["hub", "serve", "--port", str(free_port()), "--token-file", "nope"]),
        Case("hub serve bad token spec", ["hub", "serve", "--port", str(free_port()), "--token", "alice"]),
        Case("hub serve --data-dir a file", ["hub", "serve", "--port", str(free_port()), "--data-dir", "afile"],
             {"afile": "x"}),
        Case("space serve --port 0", ["space", "serve", "--out", "run", "--port", "0"]),
        Case("space serve on a port in use", ["space", "serve", "--out", "run", "--port", str(BUSY.port)]),
        # --- hf:// paths -----------------------------------------------------------------------------------------
        Case("hf:// with ..", ["recipes", "validate", "hf://datasets/me/recipes/../../etc/passwd"]),
        Case("hf:// too short", ["recipes", "validate", "hf://datasets/only-name"]),
        Case("hf:// invalid repo id", ["recipes", "validate", "hf://datasets/me me/x/r.yaml"],
             environment={"HF_ENDPOINT": endpoint}),
        Case("hf:// Hub unreachable", ["recipes", "validate", "hf://datasets/me/x/r.yaml"],
             environment={"HF_ENDPOINT": endpoint, "HF_HUB_OFFLINE": "0"}),
        # --- run folders -----------------------------------------------------------------------------------------
        Case("generate --out a file", ["generate", "recipe.yaml", "--out", "test.jsonl"], GOOD),
        Case("train --dataset missing", ["train", "recipe.yaml", "--out", "run", "--dataset", "no-such-dir"], GOOD),
        Case("evaluate before train", ["evaluate", "recipe.yaml", "--out", "run"], GOOD),
        Case("publish --out missing", ["publish", "recipe.yaml", "--out", "no-such-run"], GOOD),
        Case("publish --out a file", ["publish", "recipe.yaml", "--out", "test.jsonl"], GOOD),
        Case("publish a cut-short dataset", ["publish", "recipe.yaml", "--out", "run"], RUN_DATASET,
             {"HF_ENDPOINT": endpoint, "HF_TOKEN": "hf_probe"}),
        Case("space deploy bad --repo-id", ["space", "deploy", "recipe.yaml", "--out", "run", "--repo-id",
                                            "bad id/x y"], RUN_DATASET),
        Case("space deploy --out missing", ["space", "deploy", "recipe.yaml", "--out", "no-such-run"], GOOD),
        Case("space serve --out missing", ["space", "serve", "--out", "no-such-run"]),
        Case("space serve --out not a run", ["space", "serve", "--out", "."], GOOD),
        Case("generate with a null seed text", ["generate", "recipe.yaml", "--out", "run"], {
            **GOOD, "seeds.jsonl": '{"text": null, "label": "sports"}\n' + GOOD_ROWS,
            "recipe.yaml": recipe_text(generation__strategy="few-shot",
                                       generation__seeds=[{"language": "en", "path": "seeds.jsonl"}])}),
        Case("generate with a damaged call cache", ["generate", "recipe.yaml", "--out", "run"],
             {**GOOD, "run/cache/teacher_calls.sqlite": b"not a database" * 100}),
        Case("publish with garbage results.json", ["publish", "recipe.yaml", "--out", "run"],
             {**GOOD, "run/students/.keep": "", "run/eval/results.json": "{not json"},
             {"HF_ENDPOINT": endpoint}),
        Case("hub serve --host no-such-host", ["hub", "serve", "--host", "no-such-host.invalid", "--port",
                                               str(free_port())]),
        Case("run two recipes, one name", ["run", "recipe.yaml", "copy.yaml", "--out", "run"],
             {**GOOD, "copy.yaml": recipe_text()}),
        # --- issue #25 items 1 and 9, issue #26: a teacher's key, storage -------------------------------------
        Case("api_key_env names an unset variable", ["generate", "recipe.yaml", "--out", "run"], {**GOOD,
             "recipe.yaml": recipe_text(teacher={"backend": "remote", "model": "m", "base_url": endpoint + "/v1",
                                                 "api_key_env": "HFSYNTH_PROBE_UNSET_KEY"})}),
        Case("--out foo://", ["generate", "recipe.yaml", "--out", "foo://bucket/run1"], GOOD,
             also=lambda output: "foo:" not in output.split("error:")[0]),
        Case("--out s3a://", ["generate", "recipe.yaml", "--out", "s3a://bucket/run1"], GOOD),
        Case("--out on a store nobody answers at", ["generate", "recipe.yaml", "--out", "s3://bucket/run1"], GOOD,
             {"AWS_ENDPOINT_URL": endpoint, "AWS_ACCESS_KEY_ID": "probe", "AWS_SECRET_ACCESS_KEY": "probe",
              "AWS_DEFAULT_REGION": "us-east-1"}, also=lambda output: "plan:" not in output),
        # --- issue #25 item 8: values validate let through and a later command died on --------------------------
        Case("teacher.timeout .inf", VALIDATE, {**GOOD, "recipe.yaml": recipe_text(teacher__timeout=float("inf"))}),
        Case("teacher.device banana", VALIDATE, {**GOOD, "recipe.yaml": recipe_text(teacher__device="banana")}),
        Case("quality.embedding_model unknown", VALIDATE,
             {**GOOD, "recipe.yaml": recipe_text(quality={"embedding_model": "no-such-embedder"})}),
        Case("params.seed -1", VALIDATE,
             {**GOOD, "recipe.yaml": recipe_text(students=student("setfit", "all-minilm-l6-v2", seed=-1))}),
        Case("params.device banana", VALIDATE,
             {**GOOD, "recipe.yaml": recipe_text(students=student("setfit", "all-minilm-l6-v2", device="banana"))}),
        Case("setfit max_steps 0", VALIDATE,
             {**GOOD, "recipe.yaml": recipe_text(students=student("setfit", "all-minilm-l6-v2", max_steps=0))}),
        Case("in-context embedding_model unknown", VALIDATE, {**GOOD, "recipe.yaml": recipe_text(
            students=student("in-context", "smollm2-135m-instruct", embedding_model="nope"))}),
        Case("sft target_modules unknown", VALIDATE, {**GOOD, "recipe.yaml": recipe_text(
            students=student("sft", "smollm2-135m-instruct", target_modules=["no_such_module"]))}),
        Case("evaluation.seed -1", VALIDATE, {**GOOD, "recipe.yaml": recipe_text(evaluation__seed=-1)}),
        Case("test file Latin-1", VALIDATE,
             {**GOOD, "test.jsonl": '{"text": "Caf\u00e9 au lait.", "label": "sports"}\n'.encode("latin-1")}),
        Case("test file a link loop", VALIDATE, {"recipe.yaml": recipe_text(evaluation__sets=[
            {"language": "en", "path": "a.jsonl"}])}, setup=link_loop),
        Case("generate on a full disk", ["generate", "recipe.yaml", "--out", "run"], GOOD, disk="16k"),
        # --- issue #25 item 11: silently read otherwise --------------------------------------------------------
        Case("recipe key given twice", VALIDATE, {**GOOD, "recipe.yaml": recipe_text() + "name: other\n"}),
        Case("samples_per_label: true", VALIDATE,
             {**GOOD, "recipe.yaml": recipe_text(generation__samples_per_label=True)}),
        # --- issue #25 item 12: a data file rewritten in place is read again ------------------------------------
        Case("test file rewritten in place", VALIDATE, GOOD, setup=rewrite_in_place,
             also=lambda output: "'business'" in output),
        # --- issue #25 item 13: messages that named a way out the command does not have ------------------------
        Case("space serve of a run from another folder", ["space", "serve", "--out", "../elsewhere/run"],
             setup=run_from_elsewhere, also=lambda output: "pass the recipe file" not in output),
    ]


def run_case(case: Case, scratch: Path) -> dict[str, object]:
    folder = scratch / case.name.replace(" ", "_").replace("/", "_")
    folder.mkdir()
    for relative, content in case.files.items():
        path = folder / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content) if isinstance(content, bytes) else path.write_text(content)
    environment = {name: value for name, value in os.environ.items() if name != "HFSYNTH_HUB_TOKENS"}
    environment["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    environment.update(case.environment)
    command = [sys.executable, "-m", "hfsynth.cli", *case.arguments]
    if case.disk:
        (folder / "run").mkdir()
        command = ["unshare", "--mount", "--map-root-user", "sh", "-c",
                   f"mount -t tmpfs -o size={case.disk} tmpfs run && exec {shlex.join(command)}"]
    alive = case.setup(folder) if case.setup else None  # noqa: F841 - lives until the command ends
    cwd = folder / "here" if (folder / "here").is_dir() else folder
    started = time.monotonic()
    try:
        result = subprocess.run(command, cwd=cwd, env=environment, capture_output=True, text=True, timeout=180,
                                check=False)
        code, output = result.returncode, result.stdout + result.stderr
    except subprocess.TimeoutExpired as expired:
        code, output = None, f"{expired.stdout or ''}{expired.stderr or ''}\n(timed out: still running after 180 s)"
    lines = [line for line in output.splitlines() if line.strip()]
    traceback = "Traceback (most recent call last)" in output
    return {
        "case": case.name,
        "command": "hfsynth " + " ".join(case.arguments),
        "exit_code": code,
        "lines": len(lines),
        "last_line": lines[-1] if lines else "",
        "traceback": traceback,
        # Progress printed before the mistake is found (generate's plan line) is fine: the error is one line, last.
        "ok": bool(code) and not traceback and bool(lines) and lines[-1].startswith("error: ")
        and sum(line.startswith("error: ") for line in lines) == 1 and (case.also is None or case.also(output)),
        "seconds": round(time.monotonic() - started, 1),
    }


def markdown(rows: list[dict[str, object]]) -> str:
    failures = [row for row in rows if not row["ok"]]
    tracebacks = sum(bool(row["traceback"]) for row in rows)
    out = [
        "# Malformed inputs through the real command line",
        "",
        ("`python benchmarks/malformed_inputs.py`: each case is a fresh `python -m hfsynth.cli` process. A case is "
         "ok when it exits non-zero, with no traceback, and ends with its one `error:` line (lines: all it printed)."),
        "",
        ("What one command cannot show is tested instead: a foreign `base_url` never receiving the Hub token, "
         "kill -9 and Ctrl-C during generation and evaluation on both engines paying only what was never answered "
         "and writing the uninterrupted run's data (`tests/test_paid_once.py`, issue #25 items 1-4, 7), SIGTERM, "
         "one lock per storage location and storage as the source of truth (`tests/test_object_storage.py`, items "
         "5, 6, 10), a full disk then room again (`tests/test_full_disk.py`), `hub serve` stopped by SIGTERM or by "
         "Ctrl-C when started with SIGINT ignored (`tests/test_hub_serve_command.py`, item 13)."),
        "",
        (f"**{len(rows)} cases, {tracebacks} tracebacks, {len(rows) - len(failures)} ok"
         + (f", not ok: {', '.join(str(row['case']) for row in failures)}" if failures else "") + ".**"),
        "",
        "| case | command | exit | lines | traceback | last line |",
        "|---|---|---|---|---|---|",
    ]
    for row in rows:
        last = str(row["last_line"]).replace("|", "\\|")
        command = str(row["command"]).replace("|", "\\|")
        out.append(f"| {row['case']} | `{command}` | {row['exit_code']} | {row['lines']} | "
                   f"{'yes' if row['traceback'] else 'no'} | {last} |")
    return "\n".join(out) + "\n"


def main() -> None:
    rows = []
    with TemporaryDirectory(prefix="hfsynth-probe-") as scratch:
        for case in cases():
            row = run_case(case, Path(scratch))
            rows.append(row)
            print(f"{'ok ' if row['ok'] else 'BAD'} {row['exit_code']!s:>4} {row['case']}: {row['last_line']}",
                  flush=True)
    # The scratch folder's name is in some lines: the same case reads the same from run to run.
    for row in rows:
        row["last_line"] = str(row["last_line"]).replace(scratch, "<scratch>")
    RESULTS.mkdir(parents=True, exist_ok=True)
    summary = {"cases": len(rows), "tracebacks": sum(bool(row["traceback"]) for row in rows),
               "ok": sum(bool(row["ok"]) for row in rows), "python": platform.python_version(), "rows": rows}
    (RESULTS / "malformed_inputs.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    (RESULTS / "malformed_inputs.md").write_text(markdown(rows), encoding="utf-8")
    print(f"{summary['cases']} cases, {summary['tracebacks']} tracebacks, {summary['ok']} ok")


if __name__ == "__main__":
    main()
