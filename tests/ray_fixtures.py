"""A real multi-node Ray cluster on loopback for the Ray engine's tests, and teachers/callbacks that count and crash.

``ray_cluster``: a head node and two worker nodes (``ray.cluster_utils.Cluster``), one CPU each, the workers also
declaring one GPU and a custom ``worker`` resource, so that placement logic (a teacher replica per GPU, on separate
nodes) runs without hardware. Shared by the test module; shut down by its finalizer.

The Ray workers import hfsynth and these test helpers through PYTHONPATH, which the fixture points at this checkout
before the nodes start (the nodes' processes inherit it, and the engine forwards it to its tasks and actors).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

from hfsynth.prompting import LabelScores, Prompt, prompt_fingerprint
from hfsynth.recipe.schema import SamplingParams, TeacherConfig
from hfsynth.teachers.base import Teacher
from tests.serve_fixtures import ServerProcess, start_transformers_serve

ROOT = Path(__file__).resolve().parents[1]


@dataclass
class RayCluster:
    cluster: object  # ray.cluster_utils.Cluster
    address: str
    #: Each node's own scratch folder (HFSYNTH_SCRATCH), as on machines that share no disk; the head's first.
    node_scratch: list[Path]

    def add_worker(self) -> None:
        """A worker node: one CPU, one declared GPU, the custom ``worker`` resource, a scratch folder of its own."""
        scratch = self.node_scratch[0].parent / f"node{len(self.node_scratch)}-scratch"
        scratch.mkdir()
        self.node_scratch.append(scratch)
        self.cluster.add_node(num_cpus=1, num_gpus=1, resources={"worker": 1},
                              env_vars={"HFSYNTH_SCRATCH": str(scratch)})

    def worker_node_ids(self) -> list[str]:
        return [node.node_id for node in self.cluster.worker_nodes]

    def lose_node(self, node_id: str) -> None:
        """Kill every process of a worker node at once, as when a machine is lost."""
        node = next(node for node in self.cluster.worker_nodes if node.node_id == node_id)
        self.cluster.remove_node(node, allow_graceful=False)

    def restore_workers(self, count: int = 2) -> None:
        """Fresh worker nodes in place of lost ones (as a cluster's autoscaler adds them), so that later tests find
        the cluster they expect. From the main thread only: a Ray node registers signal handlers."""
        while len(self.cluster.worker_nodes) < count:
            self.add_worker()
        self.cluster.wait_for_nodes()


#: Ray's own settings for token authentication: the test clusters set theirs, whatever the user's are.
RAY_AUTH_VARIABLES = ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH")


def hermetic_authentication() -> None:
    """Token authentication off, said explicitly, for this process and the nodes it starts: left unset, Ray turns it
    on as soon as the user has a ~/.ray/auth_token (``ray start`` or a local instance wrote one) and the clusters'
    later nodes are refused. The test that uses token authentication (``started_cluster``) gives its processes
    homes and tokens of their own."""
    for name in RAY_AUTH_VARIABLES:
        os.environ.pop(name, None)
    os.environ["RAY_AUTH_MODE"] = "disabled"
    from ray._raylet import Config

    Config.initialize("")  # this process reads the mode again, as Ray does when it turns authentication on


@pytest.fixture(scope="module")
def ray_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RayCluster]:
    from ray.cluster_utils import Cluster

    saved = {name: os.environ.get(name) for name in ("PYTHONPATH", "RAY_ADDRESS", *RAY_AUTH_VARIABLES)}
    os.environ["PYTHONPATH"] = os.pathsep.join([str(ROOT), *filter(None, [saved["PYTHONPATH"]])])
    os.environ.pop("RAY_ADDRESS", None)
    hermetic_authentication()
    head_scratch = tmp_path_factory.mktemp("scratch") / "node0-scratch"
    head_scratch.mkdir()
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False,
                                                             "resources": {"head": 1},
                                                             "env_vars": {"HFSYNTH_SCRATCH": str(head_scratch)}})
    try:
        ray_cluster = RayCluster(cluster, cluster.address, [head_scratch])
        for _ in range(2):
            ray_cluster.add_worker()
        cluster.wait_for_nodes()
        yield ray_cluster
    finally:
        import ray

        if ray.is_initialized():
            ray.shutdown()
        cluster.shutdown()
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def visible_gpus(context: object, item: int) -> tuple[str | None, list[str]]:
    """A unit (for ``Engine.map``) that says which GPUs it sees (CUDA's variable) and which Ray gave it."""
    import ray

    return os.environ.get("CUDA_VISIBLE_DEVICES"), [str(gpu) for gpu in ray.get_gpu_ids()]


# --- a teacher that records every answer it delivers and can be killed mid-unit -----------------------------------


#: The "seed" a classification call is logged with (generation batches have seeds >= 0).
CLASSIFICATION = -1


class PaidCallLog:
    """One JSON line per answer a teacher delivered (its prompt and the batch seed), from any process."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)

    @property
    def path(self) -> Path:
        return self.folder / "paid.jsonl"

    def add(self, prompts: Sequence[Prompt], seed: int) -> None:
        lines = "".join(json.dumps([prompt_fingerprint(prompt), seed, os.getpid()]) + "\n" for prompt in prompts)
        with self.path.open("a", encoding="utf-8") as handle:  # one write: whole lines from concurrent processes
            handle.write(lines)

    def calls(self) -> list[tuple[str, int]]:
        if not self.path.is_file():
            return []
        return [tuple(json.loads(line)[:2]) for line in self.path.read_text(encoding="utf-8").splitlines()]


class KillSwitch:
    """The first process to reach ``trip()`` after ``after`` paid calls writes its pid and waits to be killed."""

    def __init__(self, folder: Path, after: int = 0, on_nodes: Sequence[str] | None = None) -> None:
        """``on_nodes``: trip only in a Ray worker on one of these nodes, and record the node."""
        self.folder, self.after, self.on_nodes = folder, after, on_nodes
        folder.mkdir(parents=True, exist_ok=True)

    @property
    def pid_file(self) -> Path:
        return self.folder / "victim.pid"

    @property
    def node_file(self) -> Path:
        return self.folder / "victim.node"

    def trip(self, paid_so_far: int) -> None:
        if paid_so_far < self.after:
            return
        node = None
        if self.on_nodes is not None:
            import ray

            node = ray.get_runtime_context().get_node_id() if ray.is_initialized() else None
            if node not in self.on_nodes:
                return
        try:
            descriptor = os.open(self.folder / "tripped", os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            return  # only once: the retried unit runs through
        os.close(descriptor)
        if node is not None:
            self.node_file.write_text(node)
        self.pid_file.write_text(str(os.getpid()))
        time.sleep(120)  # the test kills this process long before
        raise AssertionError("the kill switch tripped but nobody killed this process")

    def watch(self, timeout: float = 600, cluster: RayCluster | None = None) -> threading.Thread:
        """A thread that SIGKILLs the process that tripped as soon as one does, or with ``cluster``, every process of
        the node it runs on."""

        def kill_when_tripped() -> None:
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                if self.pid_file.is_file() and self.pid_file.read_text().strip():
                    if cluster is None:
                        os.kill(int(self.pid_file.read_text()), signal.SIGKILL)
                    else:
                        cluster.lose_node(self.node_file.read_text())
                    (self.folder / "killed").write_text(self.pid_file.read_text())
                    return
                time.sleep(0.2)

        thread = threading.Thread(target=kill_when_tripped, daemon=True)
        thread.start()
        return thread

    @property
    def killed(self) -> bool:
        return (self.folder / "killed").is_file()


class RecordingTeacher(Teacher):
    """The recipe's real teacher, recording each answer it delivers; it may be killed at the start of a unit."""

    def __init__(self, config: TeacherConfig, log: PaidCallLog, switch: KillSwitch | None = None) -> None:
        from hfsynth.teachers import load_teacher

        super().__init__()
        self.inner = load_teacher(config)
        self.log, self.switch = log, switch
        self.model_id, self.uses_chat = self.inner.model_id, self.inner.uses_chat

    @property
    def batch_size(self) -> int:
        return self.inner.batch_size

    def generate(self, prompts: Sequence[Prompt], sampling: SamplingParams, seed: int,
                 on_answer: object = None, positions: Sequence[int] | None = None) -> list[str]:
        if self.switch is not None:
            self.switch.trip(len(self.log.calls()))
        answers = self.inner.generate(prompts, sampling, seed, on_answer, positions=positions)
        self.log.add(prompts, seed)
        return answers

    def classify(self, prompts: Sequence[Prompt], labels: Sequence[str]) -> list[LabelScores]:
        scores = self.inner.classify(prompts, labels)
        self.log.add(prompts, CLASSIFICATION)  # paid too (the quality report's label fidelity)
        return scores

    def close(self) -> None:
        self.inner.close()


class RecordingTeacherFactory:
    """Picklable: builds a :class:`RecordingTeacher` inside each Ray actor."""

    def __init__(self, folder: Path, kill_after: int | None = None) -> None:
        self.folder, self.kill_after = folder, kill_after

    def __call__(self, config: TeacherConfig) -> Teacher:
        switch = KillSwitch(self.folder / "switch", self.kill_after) if self.kill_after is not None else None
        return RecordingTeacher(config, PaidCallLog(self.folder), switch)


def kill_on_first_step(folder: Path, on_nodes: Sequence[str] | None = None) -> object:
    """A trainer callback: the first training step anywhere in the sweep (on one of ``on_nodes``, if given) trips the
    kill switch."""
    from transformers import TrainerCallback

    class KillOnFirstStep(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):  # noqa: ANN001, ANN003, ANN201
            KillSwitch(folder, on_nodes=on_nodes).trip(0)

    return KillOnFirstStep()


# --- two `transformers serve` replicas ------------------------------------------------------------------------------


@pytest.fixture
def two_replicas(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServerProcess, ServerProcess, str]]:
    """Two `transformers serve` processes of the embedded SmolLM2 on loopback (as tests/serve_fixtures.py starts
    one); yields them and the Hub id they serve. Both are stopped at the end, whatever the test did to them."""
    replicas: list[ServerProcess] = []
    try:
        for index in range(2):
            replicas.append(start_transformers_serve(tmp_path_factory.mktemp(f"replica{index}"),
                                                     ["--log-level", "info"]))
        for replica in replicas:
            try:
                replica.wait_ready()
            except RuntimeError as error:
                pytest.fail(str(error))
        yield replicas[0], replicas[1], replicas[0].model
    finally:
        for replica in replicas:
            replica.stop()


# --- a cluster started as the README says: `ray start`, token authentication, `ray job submit` --------------------


@dataclass
class StartedCluster:
    gcs_address: str
    dashboard: str
    #: What a machine other than the head needs in its environment to reach the cluster (the README's steps).
    client_env: dict[str, str]


def _wait_for_port(port: int, process: subprocess.Popen, timeout: float = 120) -> None:
    import socket

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"`ray start` exited with {process.returncode}")
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.5)
    raise RuntimeError(f"nothing listens on port {port} after {timeout:.0f} s")


@pytest.fixture
def started_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StartedCluster]:
    """A head and a joined worker node, each started with `ray start --block` (stopped with it, never with `ray
    stop`, which would stop every Ray on the machine). The head's machine has Ray's stored token
    (~/.ray/auth_token), so the cluster requires it: the joining node and every client get it through
    RAY_AUTH_MODE=token and RAY_AUTH_TOKEN, from homes without the token file."""
    from tests.cli_helpers import free_port

    ray_bin = str(Path(sys.executable).parent / "ray")
    head_home, other_home = tmp_path_factory.mktemp("head-home"), tmp_path_factory.mktemp("node-home")
    # No venv on PATH, as when `ray start` ran from a plain shell; the import path of this checkout for the workers.
    base = {name: value for name, value in os.environ.items() if not name.startswith(("RAY_", "VIRTUAL_ENV"))}
    base["PATH"] = os.pathsep.join(part for part in base.get("PATH", "").split(os.pathsep)
                                   if not part.startswith(str(Path(sys.executable).parent)))
    base["PYTHONPATH"] = str(ROOT)
    # As the README's first step: Ray generates the head's token in its empty home (~/.ray/auth_token) and prints it.
    token = subprocess.run([ray_bin, "get-auth-token", "--generate"], env=base | {"HOME": str(head_home)},
                           capture_output=True, text=True, check=True, timeout=120).stdout.strip()
    assert (head_home / ".ray" / "auth_token").read_text().strip() == token
    client_env = {"HOME": str(other_home), "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": token}
    port, dashboard_port = free_port(), free_port()
    temp_dir = Path(tempfile.mkdtemp(prefix="ray-", dir="/tmp"))  # short: Ray's socket paths have a length limit
    processes = []
    try:
        head = subprocess.Popen([ray_bin, "start", "--head", "--block", "--port", str(port), "--num-cpus", "1",
                                 "--num-gpus", "0", "--dashboard-port", str(dashboard_port),
                                 # Each node's agent on a port of its own: two nodes share this machine.
                                 "--dashboard-agent-listen-port", str(free_port()), "--temp-dir", str(temp_dir),
                                 "--disable-usage-stats"],
                                env=base | {"HOME": str(head_home)}, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        processes.append(head)
        _wait_for_port(dashboard_port, head)
        worker = subprocess.Popen([ray_bin, "start", "--block", "--address", f"127.0.0.1:{port}", "--num-cpus", "1",
                                   "--dashboard-agent-listen-port", str(free_port()), "--disable-usage-stats"],
                                  env=base | client_env, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL)
        processes.append(worker)
        cluster = StartedCluster(f"127.0.0.1:{port}", f"http://127.0.0.1:{dashboard_port}", client_env)
        # Ready when a job runs: the head's job agent starts some seconds after the dashboard answers.
        deadline = time.monotonic() + 180
        while True:
            probe = subprocess.run([ray_bin, "job", "submit", "--address", cluster.dashboard, "--", "true"],
                                   env=os.environ | client_env, capture_output=True, text=True, check=False)
            if probe.returncode == 0:
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"the cluster runs no job: {probe.stderr[-1000:]}")
            time.sleep(3)
        yield cluster
    finally:
        for process in reversed(processes):
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()
        shutil.rmtree(temp_dir, ignore_errors=True)
