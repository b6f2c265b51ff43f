"""Local generation throughput: hfsynth's LocalTeacher against plain batched ``model.generate``, side by side.

Both run the same model, dtype, prompts, batch size and sampling settings in one process, alternating rounds so
that machine noise hits both alike. Reported: samples/s (parsed samples) and generated tokens/s, and the ratio.

    python benchmarks/generation_throughput.py [--model smollm2-135m-instruct] [--rounds 3] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from hfsynth.embedded import resolve_model
from hfsynth.generation.parsing import parse_answer
from hfsynth.generation.prompts import GenerationRequest, generation_prompt
from hfsynth.recipes.files import load_recipe
from hfsynth.teachers.local import LocalTeacher

ROOT = Path(__file__).resolve().parents[1]


def plain_generate(model, tokenizer, prompts, sampling, batch_size: int, seed: int) -> tuple[list[str], int]:  # noqa: ANN001
    """The baseline: chat template, left padding, ``model.generate`` per batch, decode the new tokens.

    Sampling options and seeding match LocalTeacher's (top_k=0, one seed per batch), so both sides generate the
    same tokens and the comparison measures only what hfsynth adds around ``generate``.
    """
    texts, new_tokens = [], 0
    tokenizer.padding_side = "left"
    for start in range(0, len(prompts), batch_size):
        chunk = prompts[start : start + batch_size]
        rendered = [tokenizer.apply_chat_template(p.as_openai_messages(), tokenize=False, add_generation_prompt=True)
                    for p in chunk]
        inputs = tokenizer(rendered, return_tensors="pt", padding=True, add_special_tokens=False).to(model.device)
        torch.manual_seed(seed)
        with torch.inference_mode():
            output = model.generate(**inputs, do_sample=True, max_new_tokens=sampling.max_new_tokens,
                                    temperature=sampling.temperature, top_p=sampling.top_p, top_k=0,
                                    repetition_penalty=sampling.repetition_penalty,
                                    pad_token_id=tokenizer.pad_token_id)
        generated = output[:, inputs["input_ids"].shape[1] :]
        new_tokens += int((generated != tokenizer.pad_token_id).sum())
        texts += tokenizer.batch_decode(generated, skip_special_tokens=True)
    return texts, new_tokens


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipe", default=str(ROOT / "recipes" / "quickstart.yaml"))
    parser.add_argument("--prompts", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "generation_throughput.json"))
    args = parser.parse_args()

    recipe = load_recipe(args.recipe)
    config = recipe.teacher
    labels = recipe.label_names
    prompts = [generation_prompt(recipe, GenerationRequest(labels[i % len(labels)], recipe.languages[0],
                                                           recipe.generation.samples_per_call, i // len(labels)))
               for i in range(args.prompts)]

    teacher = LocalTeacher(config)
    # The baseline loads the very same weights in the same dtype and device as the teacher chose.
    model = AutoModelForCausalLM.from_pretrained(resolve_model(config.model), dtype=teacher.lm.model.dtype)
    model.to(teacher.lm.model.device).eval()
    tokenizer = AutoTokenizer.from_pretrained(resolve_model(config.model))
    tokenizer.pad_token = teacher.lm.tokenizer.pad_token

    runs: dict[str, list[dict[str, float]]] = {"hfsynth": [], "plain_generate": []}
    same_output: dict[int, bool] = {}
    for round_index in range(args.rounds):
        before = teacher.stats.completion_tokens
        started = time.perf_counter()
        answers = teacher.generate(prompts, config.sampling, seed=round_index)
        seconds = time.perf_counter() - started
        samples = sum(len(parse_answer(answer, chat=True)) for answer in answers)
        runs["hfsynth"].append({"seconds": seconds, "samples_per_s": samples / seconds,
                                "tokens_per_s": (teacher.stats.completion_tokens - before) / seconds})

        started = time.perf_counter()
        texts, tokens = plain_generate(model, tokenizer, prompts, config.sampling, config.batch_size, round_index)
        seconds = time.perf_counter() - started
        same_output[round_index] = [text.strip() for text in texts] == answers
        samples = sum(len(parse_answer(text, chat=True)) for text in texts)
        runs["plain_generate"].append({"seconds": seconds, "samples_per_s": samples / seconds,
                                       "tokens_per_s": tokens / seconds})

    summary = {
        name: {metric: statistics.median(run[metric] for run in rounds) for metric in rounds[0]}
        for name, rounds in runs.items()
    }
    summary["ratio_hfsynth_over_plain"] = {
        metric: summary["hfsynth"][metric] / summary["plain_generate"][metric]
        for metric in ("samples_per_s", "tokens_per_s")
    }
    result = {
        "benchmark": "local generation throughput",
        "model": config.model,
        "dtype": str(teacher.lm.model.dtype),
        "device": str(teacher.lm.model.device),
        "prompts": args.prompts,
        "batch_size": config.batch_size,
        "max_new_tokens": config.sampling.max_new_tokens,
        "rounds": args.rounds,
        "machine": {"cpus": torch.get_num_threads(), "platform": platform.platform(), "torch": torch.__version__},
        "median": summary,
        "identical_texts_per_round": same_output,
        "runs": runs,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print(json.dumps(result["median"], indent=2))


if __name__ == "__main__":
    main()
