"""``teacher.base_url: [URL, URL]``: requests spread over replicas, each with the seed of its position in the batch,
and moved to another replica when one fails for good. Scripted loopback servers stand in for the replicas (the real
`transformers serve` replicas are in test_ray.py)."""

from __future__ import annotations

import pytest

from hfsynth.errors import TeacherError
from hfsynth.recipe.schema import SamplingParams, TeacherConfig
from hfsynth.teachers import load_teacher
from hfsynth.teachers.remote import RemoteTeacher, request_seed
from hfsynth.teachers.replicas import ReplicaTeacher
from tests.test_remote_teacher import Reply, chat, closed_port_url, stand_in  # noqa: F401 - closed_port_url: fixture

MODEL = "HuggingFaceTB/SmolLM2-135M-Instruct"
SAMPLING = SamplingParams(max_new_tokens=8, temperature=0.7)


def answer(text: str, delay: float = 0.0) -> Reply:
    return Reply(delay=delay, body={
        "id": "x", "object": "chat.completion", "created": 0, "model": MODEL, "system_fingerprint": "",
        "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": text}}],
        "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5},
    })


def replicas(*urls: str, **settings: object) -> ReplicaTeacher:
    config = TeacherConfig(backend="remote", model=MODEL, base_url=list(urls), **{"max_retries": 1, **settings})
    return ReplicaTeacher(config, backoff_base=0.01)


def test_load_teacher_picks_replicas_for_a_list() -> None:
    with load_teacher(TeacherConfig(backend="remote", model=MODEL, base_url=["http://a:1", "http://b:1"])) as teacher:
        assert isinstance(teacher, ReplicaTeacher) and teacher.batch_size == 2 * 4 * 2
    with load_teacher(TeacherConfig(backend="remote", model=MODEL, base_url=["http://a:1"])) as teacher:
        assert isinstance(teacher, RemoteTeacher)  # one URL in a list is just that URL


def test_requests_are_spread_and_seeded_by_position() -> None:
    with stand_in([answer("one", delay=0.2)]) as first, stand_in([answer("two", delay=0.2)]) as second, \
            replicas(first.base_url, second.base_url, max_concurrency=2) as teacher:
        answers = teacher.generate([chat(f"prompt {i}") for i in range(8)], SAMPLING, seed=42)
        assert sorted(set(answers)) == ["one", "two"] and len(answers) == 8
        assert len(first.bodies) > 0 and len(second.bodies) > 0
        assert max(first.max_in_flight, second.max_in_flight) <= 2
        seeds = {body["messages"][0]["content"]: body["seed"] for body in first.bodies + second.bodies}
        # Each request asks for the seed of its position, whichever replica served it.
        assert seeds == {f"prompt {i}": request_seed(request_seed(42, i), 0) for i in range(8)}
        assert teacher.stats.calls == 8


def test_a_dead_replica_hands_its_requests_over(closed_port_url: str) -> None:  # noqa: F811
    with stand_in([answer("alive")]) as alive, replicas(closed_port_url, alive.base_url) as teacher:
        assert teacher.generate([chat(f"p{i}") for i in range(6)], SAMPLING, seed=1) == ["alive"] * 6
        assert len(alive.bodies) == 6
        assert any(closed_port_url in failure for failure in teacher.stats.failures)
        assert teacher.classify([chat("which?")], ["alive", "dead"])[0].label == "alive"


def test_every_replica_dead_is_one_error(closed_port_url: str) -> None:  # noqa: F811
    with stand_in([Reply(status=503)]) as failing, replicas(closed_port_url, failing.base_url) as teacher, \
            pytest.raises(TeacherError, match="every teacher replica failed") as error:
        teacher.generate([chat("p")], SAMPLING, seed=1)
    assert closed_port_url in str(error.value) and failing.base_url in str(error.value)
