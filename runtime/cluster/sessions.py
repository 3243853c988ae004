"""One model session per worker process, made once and reused by every task.

The client wraps its run spec in a :class:`ModelRef` (the spec and a key: the hash of
the model's bytes and of the spec). :class:`ModelPlugin` carries the model's bytes to
each worker once, when it joins, writes them to the worker's local directory and opens
the session there, with as many ONNX Runtime threads as the worker has. Tasks carry
only the small :class:`ModelRef` and find their worker's session with :func:`session`
(which opens one from the spec itself where no plugin runs, e.g. on Dask's local
threaded scheduler).
"""

from __future__ import annotations

import hashlib
import os
import threading
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from distributed import Client, WorkerPlugin, get_worker

from ..segmenter import Segmenter
from ..spec import RunSpec

_SESSIONS: dict[str, Segmenter] = {}
#: The plugins that hold each session (several clients may send the same model).
_HOLDERS: dict[str, set[str]] = {}
_EXCLUSIVE: dict[str, threading.Lock] = {}
_LOCK = threading.Lock()
#: The plugins each client (by id) has registered.
_SENT: dict[str, set[str]] = {}


@dataclass(frozen=True)
class ModelRef:
    """What a task needs to find its worker's session: the run spec and its key."""

    spec: RunSpec
    key: str

    @classmethod
    def of(cls, spec: RunSpec) -> ModelRef:
        """The reference of ``spec``, keyed by its model's bytes and its settings."""
        digest = hashlib.sha256(repr(replace(spec, model=None)).encode())
        if spec.model_path is not None:
            digest.update(spec.model_path.read_bytes())
        return cls(spec, digest.hexdigest()[:32])


def _worker_threads() -> int | None:
    """The thread count of the Dask worker running this task; None outside a worker."""
    try:
        return int(get_worker().state.nthreads)
    except ValueError:  # not in a worker
        return None


def session(ref: ModelRef) -> Segmenter:
    """This process's session of ``ref``'s model, opened on first use (threads: the
    worker's, unless the spec sets them)."""
    with _LOCK:
        segmenter = _SESSIONS.get(ref.key)
        if segmenter is None:
            spec = ref.spec
            if spec.threads is None:
                spec = replace(spec, threads=_worker_threads())
            segmenter = _SESSIONS[ref.key] = Segmenter(spec, warmup=False)
        return segmenter


def exclusive(ref: ModelRef) -> threading.Lock:
    """The lock that lets one task at a time stream frames through this process's
    session of ``ref`` (its model then has all the worker's threads)."""
    with _LOCK:
        return _EXCLUSIVE.setdefault(ref.key, threading.Lock())


def held() -> dict[str, int | None]:
    """The sessions this process holds: model key -> ONNX Runtime threads (for
    ``client.run(held)``: one session per worker and model, threads as the worker's)."""
    with _LOCK:
        return {key: segmenter.spec.threads for key, segmenter in _SESSIONS.items()}


def send_model(client: Client, ref: ModelRef) -> None:
    """Register ``ref``'s :class:`ModelPlugin` with the cluster of ``client``, unless this
    client did already: the model goes to each worker once, for all the runs of a client."""
    plugin = ModelPlugin(ref, client.id)
    sent = _SENT.setdefault(client.id, set())
    if plugin.name not in sent:
        client.register_plugin(plugin)
        sent.add(plugin.name)


def release_models(client: Client) -> None:
    """Unregister the models ``client`` sent: the workers close the sessions no other
    client holds (a long-lived cluster keeps no sessions of a finished run)."""
    for name in _SENT.pop(client.id, set()):
        client.unregister_worker_plugin(name)


class ModelPlugin(WorkerPlugin):
    """Sends a model to every worker once (also to workers that join later) and opens
    its session there; named per model, settings and client (``client_id``)."""

    def __init__(self, ref: ModelRef, client_id: str) -> None:
        self.ref = ref
        self.name = f"ernet-model-{ref.key}-{client_id}"
        path = ref.spec.model_path
        self.model_bytes = path.read_bytes() if path is not None else None

    def setup(self, worker: Any) -> None:
        """Write the model into the worker's directory and open its session (unless another
        client's plugin opened it)."""
        with _LOCK:
            if self.ref.key in _HOLDERS:
                _HOLDERS[self.ref.key].add(self.name)
                return
        spec = self.ref.spec
        if self.model_bytes is not None:
            path = self._model_file(worker)
            tmp = path.with_suffix(f".{os.getpid()}.part")
            tmp.write_bytes(self.model_bytes)
            os.replace(tmp, path)
            spec = replace(spec, model=path)
        spec = replace(spec, threads=spec.threads or int(worker.state.nthreads))
        segmenter = Segmenter(spec, warmup=False)
        with _LOCK:
            _SESSIONS[self.ref.key] = segmenter
            _HOLDERS.setdefault(self.ref.key, set()).add(self.name)

    def teardown(self, worker: Any) -> None:
        """Close the session if no other plugin holds it."""
        with _LOCK:
            holders = _HOLDERS.get(self.ref.key, set())
            holders.discard(self.name)
            if holders:
                return
            _HOLDERS.pop(self.ref.key, None)
            segmenter = _SESSIONS.pop(self.ref.key, None)
        if segmenter is not None:
            segmenter.close()
        self._model_file(worker).unlink(missing_ok=True)

    def _model_file(self, worker: Any) -> Path:
        """Where the model is kept on ``worker``."""
        return Path(worker.local_directory) / f"ernet-{self.ref.key}.onnx"
