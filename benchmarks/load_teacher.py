"""A load teacher: a real OpenAI-compatible HTTP server on loopback that answers at once with realistic labelled
texts, so the paper's recipes run end to end on one machine without a GPU. hfsynth's remote teacher talks to it as to
vLLM (``/v1/chat/completions``, ``/v1/completions``, ``/v1/models``, ``usage`` in words).

What it writes: asked for N texts of a label in a language (hfsynth's generation prompt), N new sentences, each the
first half of one real training sentence of that label and language (the recipe's local seed sets) joined to the
second half of another: in the language, on the topic, and no copy of a seed (which curation would drop); about
10,000 distinct texts per cell of SIB-200, enough for 10x the paper's samples. Now and then a chatty first line, as
real teachers write. Never a test text: every text of the recipe's evaluation sets is left out of its pools. Asked
for a label (a classification prompt), it names the text's real label for 70% of texts (a fixed draw per text) and
another label otherwise, a stand-in for a large teacher classifying zero-shot.

    python benchmarks/load_teacher.py RECIPE [--port 8000]   # serves until Ctrl-C

``topic_recipe`` writes the paper's topic recipe (11 languages) with its seed and test sets on this repository's
SIB-200 copies, for this teacher.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import re
import threading
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import yaml

from hfsynth.languages import language_name
from hfsynth.realdata import load_labelled_set
from hfsynth.recipe.schema import Recipe
from hfsynth.recipes.files import load_recipe

ROOT = Path(__file__).resolve().parents[1]
#: The paper's topic languages and this repository's SIB-200 folders.
SIB200_FOLDERS = {"az": "azj_Latn", "cy": "cym_Latn", "de": "deu_Latn", "en": "eng_Latn", "he": "heb_Hebr",
                  "id": "ind_Latn", "ro": "ron_Latn", "sl": "slv_Latn", "sw": "swh_Latn", "te": "tel_Telu",
                  "th": "tha_Thai"}
#: How often the teacher names a test text's real label.
ACCURACY = 0.7
_ASK = re.compile(r"Write (\d+) different .*? in (.+?) with the label: (.+?)\.\n")


def topic_recipe(folder: Path, samples_per_label: int, base_url: str = "http://127.0.0.1:9/v1",
                 **changes: Any) -> Path:
    """``recipes/pecher2026-topic.yaml`` on the local SIB-200 copies, ``samples_per_label`` per cell, its teacher at
    ``base_url``; ``changes`` replace top-level sections. (Write it once to start the teacher, then again with the
    teacher's address.)"""
    data = yaml.safe_load((ROOT / "recipes" / "pecher2026-topic.yaml").read_text())
    data["teacher"]["base_url"] = base_url
    data["generation"]["samples_per_label"] = samples_per_label
    data["generation"]["seeds"] = [
        {"language": code, "path": str(ROOT / "data" / "sib200" / folder_name / "train.jsonl")}
        for code, folder_name in SIB200_FOLDERS.items()]
    data["evaluation"]["sets"] = [
        {"language": code, "path": str(ROOT / "data" / "sib200" / folder_name / "test.jsonl")}
        for code, folder_name in SIB200_FOLDERS.items()]
    data.update(changes)
    path = folder / "pecher2026-topic-local.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True))
    return path


class LoadTeacher:
    """The server; ``base_url`` for the recipe's ``teacher.base_url``."""

    def __init__(self, recipe: Recipe, port: int = 0) -> None:
        self.labels = list(recipe.label_names)
        self.languages = {language_name(code): code for code in recipe.languages}
        tests = {text for test_set in recipe.evaluation.sets
                 for text in load_labelled_set(test_set, recipe.label_names)["text"]}
        self.pools: dict[tuple[str, str], list[str]] = defaultdict(list)
        self.gold: dict[str, str] = {}
        for seed_set in recipe.generation.seeds:
            rows = load_labelled_set(seed_set, recipe.label_names)
            for text, label in zip(rows["text"], rows["label"], strict=True):
                if text not in tests:
                    self.pools[(seed_set.language, label)].append(text)
        for test_set in recipe.evaluation.sets:
            rows = load_labelled_set(test_set, recipe.label_names)
            self.gold.update(zip(rows["text"], rows["label"], strict=True))
        self.requests = 0
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", port), self._handler())
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/v1"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def answer(self, body: dict[str, Any]) -> str:
        messages = body.get("messages") or [{"role": "user", "content": body.get("prompt", "")}]
        prompt = "\n".join(str(message.get("content", "")) for message in messages)
        rng = random.Random(hashlib.sha256(json.dumps([prompt, body.get("seed")]).encode()).digest())
        asked = _ASK.search(prompt + "\n")
        if asked is None:  # a classification prompt: the text is the last user turn
            return self.label_for(str(messages[-1].get("content", "")))
        count, language, label_line = int(asked.group(1)), asked.group(2), asked.group(3)
        label = next((name for name in self.labels if label_line.startswith(name)), self.labels[0])
        pool = self.pools.get((self.languages.get(language, ""), label)) or ["(no seed text for this cell)"]
        texts = [_spliced(rng.choice(pool), rng.choice(pool)) for _ in range(count)]
        chatter = [f"Sure! Here are {count} texts:"] if rng.random() < 0.05 else []
        return "\n".join(chatter + [f"{number}. {text}" for number, text in enumerate(texts, 1)])

    def label_for(self, text: str) -> str:
        draw = hashlib.sha256(text.encode()).digest()
        gold = self.gold.get(text.strip())
        if gold is not None and draw[0] < 256 * ACCURACY:
            return gold
        return self.labels[draw[1] % len(self.labels)]

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # /v1/models
                self._send({"object": "list", "data": [{"id": "load-teacher", "object": "model"}]})

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
                with owner._lock:
                    owner.requests += 1
                text = owner.answer(body)
                prompt_words = sum(len(str(message.get("content", "")).split())
                                   for message in body.get("messages") or [{"content": body.get("prompt", "")}])
                usage = {"prompt_tokens": prompt_words, "completion_tokens": len(text.split()),
                         "total_tokens": prompt_words + len(text.split())}
                chat = "messages" in body
                choice = ({"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": text}}
                          if chat else {"index": 0, "finish_reason": "stop", "text": text})
                self._send({"id": "load", "object": "chat.completion" if chat else "text_completion", "created": 0,
                            "model": body.get("model", "load-teacher"), "choices": [choice], "usage": usage})

            def _send(self, payload: dict[str, Any]) -> None:
                data = json.dumps(payload, ensure_ascii=False).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        return Handler


def _spliced(first: str, second: str) -> str:
    """The first half of ``first`` and the second half of ``second``, by words (by characters for scripts written
    with few spaces)."""
    words_first, words_second = first.split(), second.split()
    if min(len(words_first), len(words_second)) >= 6:
        return " ".join(words_first[: len(words_first) // 2] + words_second[len(words_second) // 2 :])
    return first[: len(first) // 2] + second[len(second) // 2 :]


@contextmanager
def load_teacher(recipe: Recipe) -> Iterator[LoadTeacher]:
    server = LoadTeacher(recipe)
    try:
        yield server
    finally:
        server.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("recipe", type=Path)
    parser.add_argument("--port", type=int, default=8000)
    arguments = parser.parse_args()
    server = LoadTeacher(load_recipe(arguments.recipe), arguments.port)
    print(f"load teacher at {server.base_url} (Ctrl-C stops it)", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        server.close()


if __name__ == "__main__":
    main()
