"""Run by ``tests/test_ray_state.py`` in a pytest of its own, from a home that holds a Ray token
(~/.ray/auth_token): hfsynth connects to the test cluster, and a node that joins afterwards is still let in.
Not collected on its own (its name does not start with ``test_``): it only means something in that home."""

from __future__ import annotations

from pathlib import Path

import ray
import ray.util.scheduling_strategies

from hfsynth.engines.ray_engine import RayEngine
from tests.ray_fixtures import RayCluster, ray_cluster  # noqa: F401 - the fixture


@ray.remote(num_cpus=1)
def payload() -> bytes:
    return b"x" * 1_000_000  # in the object store of the node that made it


@ray.remote(num_cpus=1)
def node_and_size(data: bytes) -> tuple[str, int]:
    return ray.get_runtime_context().get_node_id(), len(data)


def on_node(node_id: str) -> ray.util.scheduling_strategies.NodeAffinitySchedulingStrategy:
    return ray.util.scheduling_strategies.NodeAffinitySchedulingStrategy(node_id, soft=False)


def test_a_node_joins_after_hfsynth_connected(ray_cluster: RayCluster) -> None:  # noqa: F811
    assert (Path.home() / ".ray" / "auth_token").is_file()  # the state that used to turn authentication on
    with RayEngine(ray_cluster.address):
        before = set(ray_cluster.worker_node_ids())
        ray_cluster.add_worker()
        ray_cluster.cluster.wait_for_nodes()
        [joined] = set(ray_cluster.worker_node_ids()) - before
        alive = {node["NodeID"] for node in ray.nodes() if node["Alive"]}
        assert joined in alive
        # An object made on an older node, used on the new one: the nodes talk to each other, not only to hfsynth.
        made = payload.options(scheduling_strategy=on_node(min(before))).remote()
        used = node_and_size.options(scheduling_strategy=on_node(joined)).remote(made)
        assert ray.get(used, timeout=120) == (joined, 1_000_000)
