"""Talking to a Ray cluster, for the Ray engine (:mod:`hfsynth.engines.ray_engine`): connecting (failing at once where
nothing listens, and naming a missing token), what its nodes offer, the environment and thread count its workers
get, its errors unwrapped to the task's own, and the check that every node sees the run folder."""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hfsynth.errors import HfsynthError, SharedStorageError
from hfsynth.recipe.execution import WorkResources
from hfsynth.reproducibility import pin_threads
from hfsynth.storage.object_store import CHECKSUM_SETTINGS

try:
    import ray
except ImportError:  # pragma: no cover - depends on the installation
    raise HfsynthError("the Ray engine needs Ray, which is not installed: pip install 'hfsynth[ray]'") from None

logger = logging.getLogger(__name__)

#: The driver's environment variables that Ray workers get too (when set): Hub endpoint and offline mode, token,
#: object storage credentials and checksum settings (a run folder on s3://: hfsynth.storage.object_store),
#: hfsynth's model cache, thread counts and verbosity, OpenMP's wait policy (read before torch loads), and the import
#: path. Not HFSYNTH_SCRATCH: each node keeps its own.
FORWARDED_ENV = ("HF_HUB_OFFLINE", "HF_ENDPOINT", "HF_HUB_DISABLE_XET", "HF_TOKEN", "TRANSFORMERS_OFFLINE",
                 "HF_DATASETS_OFFLINE", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN",
                 "AWS_DEFAULT_REGION", "AWS_REGION", "AWS_ENDPOINT_URL", *CHECKSUM_SETTINGS,
                 "GOOGLE_APPLICATION_CREDENTIALS", "HFSYNTH_CACHE", "HFSYNTH_THREADS", "HFSYNTH_TRAINING_THREADS",
                 "HFSYNTH_VERBOSITY", "OMP_WAIT_POLICY", "PYTHONPATH")
#: How often the driver says it is still waiting for cluster resources.
WAIT_NOTICE_SECONDS = 30.0

#: Ray 2.60 leaves CUDA_VISIBLE_DEVICES alone in a task that asked for no GPU, so torch there sees every GPU of the
#: node and picks GPU 0, beside the units that were given it. With this set, Ray gives each unit exactly the GPUs it
#: asked for: none ("") for none.
GPU_ISOLATION = {"RAY_ACCEL_ENV_VAR_OVERRIDE_ON_ZERO": "1"}


def forwarded_runtime_env() -> dict[str, Any]:
    """The runtime environment of every task and actor hfsynth starts."""
    return {"env_vars": {**{name: os.environ[name] for name in FORWARDED_ENV if os.environ.get(name)},
                         **GPU_ISOLATION}}


def limit_threads(threads: int | None) -> None:
    if threads is not None and "torch" in sys.modules:
        pin_threads(threads)


def resource_demand(spec: WorkResources) -> dict[str, float]:
    demand = {"CPU": spec.num_cpus, "GPU": spec.num_gpus, **spec.resources}
    return {name: amount for name, amount in demand.items() if amount > 0}


def describe_demand(demand: dict[str, float]) -> str:
    return ", ".join(f"{name}={amount:g}" for name, amount in demand.items()) or "nothing"


def check_fits(demand: dict[str, float], what: str, field: str | None) -> None:
    """Fail at once, rather than wait forever, when no node of the cluster could ever run the unit."""
    if not demand:
        return
    nodes = [node["Resources"] for node in ray.nodes() if node.get("Alive")]
    if any(all(resources.get(name, 0) >= amount for name, amount in demand.items()) for resources in nodes):
        return
    offered = "; ".join(describe_demand({k: v for k, v in resources.items()
                                          if not k.startswith(("node:", "memory", "object_store_memory"))})
                        for resources in nodes)
    raise HfsynthError(f"no node of the Ray cluster has {describe_demand(demand)} for {what} (its nodes have: "
                       f"{offered or 'no nodes'}): "
                       + (f"lower {field} in the recipe or add such a node" if field else "add such a node"))


def task_cause(error: BaseException) -> BaseException:
    """The exception a task raised, out of the Ray error that carries it (``cause``; Ray's error also subclasses the
    cause's class, but its message is a traceback)."""
    for _ in range(5):
        inner = getattr(error, "cause", None)
        if not isinstance(error, ray.exceptions.RayError) or not isinstance(inner, BaseException):
            break
        error = inner
    return error


def reraise(error: BaseException, what: str, retries: int) -> None:
    cause = task_cause(error)
    if isinstance(cause, HfsynthError):
        raise cause from None
    if isinstance(error, (ray.exceptions.ActorDiedError, ray.exceptions.WorkerCrashedError,
                          ray.exceptions.NodeDiedError, ray.exceptions.ActorUnavailableError)):
        raise HfsynthError(f"{what}: its Ray worker died {retries + 1} times (execution.max_retries is {retries}); "
                           "everything finished so far is kept: run the same command to resume") from error
    raise error


@dataclass(frozen=True)
class SharedFolderProbe:
    """A file the driver writes into the run folder; a task that cannot read it is on a node without the folder."""

    path: str
    token: str
    driver_host: str

    @classmethod
    def create(cls, folder: Path) -> SharedFolderProbe:
        folder.mkdir(parents=True, exist_ok=True)
        token = uuid.uuid4().hex
        path = folder / f".hfsynth-ray-probe-{token}"
        path.write_text(token, encoding="utf-8")
        return cls(str(path), token, socket.gethostname())

    def check(self) -> None:
        try:
            seen = Path(self.path).read_text(encoding="utf-8") == self.token
        except OSError:
            seen = False
        if not seen:
            raise SharedStorageError(
                f"Ray node {socket.gethostname()} does not see the run folder {Path(self.path).parent} that the driver "
                f"({self.driver_host}) writes: put --out on storage shared by the driver and every Ray node (NFS, a "
                "cluster file system), mounted at the same path"
            )

    def remove(self) -> None:
        Path(self.path).unlink(missing_ok=True)


#: How long a cluster's address may take to accept a connection before the driver says nothing listens there.
CONNECT_SECONDS = 10.0


def check_reachable(address: str) -> None:
    """Fail at once when nothing listens at ``host:port`` (``ray.init`` would wait minutes); "auto" and names
    without a port are left to Ray."""
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        return
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=CONNECT_SECONDS):
            pass
    except OSError as error:
        reason = error.strerror or type(error).__name__
        raise HfsynthError(f"cannot connect to the Ray cluster at {address}: nothing answers there ({reason}): "
                           "check the address (ray status on the head node prints it), or leave --ray without an "
                           "address to start a local instance") from None


#: Ray's own variables for its cluster token (its default file is ~/.ray/auth_token).
AUTH_TOKEN_HELP = ("give this machine the cluster's token: RAY_AUTH_TOKEN=<the head's ~/.ray/auth_token> (or "
                   "RAY_AUTH_TOKEN_PATH=<a copy of that file>), as every joining node and `ray job submit` need too; "
                   "on a trusted network, start the cluster with RAY_AUTH_MODE=disabled instead")


@contextlib.contextmanager
def native_stderr() -> Iterator[Callable[[], str]]:
    """Standard error at the file-descriptor level, kept aside for the block: Ray's core (C++) writes its connection
    warnings there, past Python's logging; the block gets a function that reads what was written."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile(mode="w+b") as capture:
        os.dup2(capture.fileno(), 2)
        try:
            yield lambda: (capture.seek(0), capture.read().decode("utf-8", "replace"))[1]
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)


def _use_token_when_there_is_one() -> None:
    """Ray sends its token (RAY_AUTH_TOKEN, RAY_AUTH_TOKEN_PATH or ~/.ray/auth_token) to a cluster found with "auto",
    but not to an explicit address unless RAY_AUTH_MODE=token is set: then even the head's own machine is refused.
    hfsynth sends it to any address when this machine has one (a cluster without token authentication ignores it)."""
    try:
        from ray._private.authentication.authentication_token_setup import (
            maybe_enable_token_auth_if_token_available,
        )
    except ImportError:  # another Ray: its own rules apply
        return
    maybe_enable_token_auth_if_token_available(warn_if_disabled=False)


def _own_token_for_a_local_instance() -> None:
    """A new local instance turns Ray's token authentication on and, finding no token, Ray writes one to
    ~/.ray/auth_token: from then on every cluster this user starts on the machine (``ray start``, a test's) turns it
    on too, and nodes or clients without the file are refused. hfsynth gives its instance a token of this process's
    own instead (RAY_AUTH_TOKEN, which the instance's processes inherit), so it is as protected and leaves no file
    behind. A token the user already has, or RAY_AUTH_MODE set, is Ray's to use as usual."""
    try:
        from ray._private.authentication.authentication_token_generator import generate_new_authentication_token
        from ray._raylet import AuthenticationTokenLoader
    except ImportError:  # another Ray: its own rules apply
        return
    loader = AuthenticationTokenLoader.instance()
    if os.environ.get("RAY_AUTH_MODE") is not None or loader.has_token(ignore_auth_mode=True):
        return
    os.environ["RAY_AUTH_TOKEN"] = generate_new_authentication_token()
    loader.reset_cache()  # it remembers that it found none


def connect(address: str, runtime_env: dict[str, Any]) -> None:
    """``ray.init`` on ``address`` ("local": a new local instance), failing with one line that names the cause:
    nothing listening (at once, :func:`check_reachable`) or a cluster that wants a token this machine does not have."""
    if address == "local":
        _own_token_for_a_local_instance()
    else:
        check_reachable(address)
        _use_token_when_there_is_one()
    where = address if address != "local" else "a new local instance"
    # Under `ray job submit` the job's runtime_env already set some of the variables hfsynth forwards (they reached
    # this driver's environment through it): Ray refuses the same key twice unless told to combine them.
    os.environ.setdefault("RAY_OVERRIDE_JOB_RUNTIME_ENV", "1")
    with native_stderr() as core_log:
        try:
            ray.init(address=address, include_dashboard=False, log_to_driver=False, runtime_env=runtime_env,
                     logging_level=logging.WARNING)
        except (ConnectionError, ValueError, RuntimeError) as error:
            if "InvalidAuthToken" in core_log() or "authentication token" in str(error).lower():
                raise HfsynthError(f"cannot connect to the Ray cluster at {where}: it uses token authentication and "
                                   f"this machine's token is missing or another: {AUTH_TOKEN_HELP}") from None
            raise HfsynthError(f"cannot connect to the Ray cluster at {where}: "
                               f"{str(error).strip().splitlines()[0]}") from None


def wait_for(ready: Any, what: str) -> None:
    """Wait for an object ref (a placement group's reservation), saying now and then what is awaited."""
    started = time.monotonic()
    while True:
        done, _ = ray.wait([ready], timeout=WAIT_NOTICE_SECONDS)
        if done:
            return
        logger.warning("still waiting for the Ray cluster to free %s (%.0f s): other work holds them", what,
                       time.monotonic() - started)
