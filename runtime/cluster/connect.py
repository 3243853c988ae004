"""Reaching a Dask cluster: ``local:N`` starts one here, anything else is a scheduler's address."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager

from distributed import Client, LocalCluster

from ..backends import physical_cores
from ..errors import ClusterError, first_line
from .sessions import release_models

#: Seconds to reach a scheduler before giving up.
CONNECT_TIMEOUT = 10.0
LOCAL_PREFIX = "local:"


def local_workers(address: str) -> int | None:
    """N of ``local:N``; None for a scheduler address. ClusterError if N is not a count."""
    if not address.startswith(LOCAL_PREFIX):
        return None
    count = address[len(LOCAL_PREFIX) :]
    if not count.isdigit() or int(count) < 1:
        raise ClusterError(f"{address}: expected local:N with N worker processes, e.g. local:2")
    return int(count)


@contextmanager
def connect(address: str, timeout: float = CONNECT_TIMEOUT, threads: int | None = None) -> Iterator[Client]:
    """A client of the cluster at ``address``: ``local:N`` starts N worker processes on
    127.0.0.1 sharing this machine's cores (``threads`` per worker, default cores / N),
    closed afterwards; ``tcp://host:8786`` (or any scheduler address) connects to a running
    scheduler (the models sent through it are released afterwards). ClusterError, in one
    line, if none answers, or it has no worker, within ``timeout`` seconds."""
    workers = local_workers(address)
    with ExitStack() as stack:
        if workers is None:
            try:
                client = stack.enter_context(Client(address, timeout=timeout))
            except (OSError, TimeoutError, ValueError) as exc:
                raise ClusterError(
                    f"{address}: no Dask scheduler answers within {timeout:g} s ({first_line(exc)})"
                ) from None
            try:  # a scheduler without workers would leave the run waiting for ever
                client.wait_for_workers(1, timeout=timeout)
            except TimeoutError:
                raise ClusterError(
                    f"{address}: the scheduler has no workers (none joined within {timeout:g} s)"
                ) from None
        else:
            try:
                cluster = LocalCluster(
                    n_workers=workers,
                    threads_per_worker=threads or max(1, physical_cores() // workers),
                    processes=True,
                    host="127.0.0.1",
                    dashboard_address=None,
                    silence_logs=logging.CRITICAL,  # the run reports its own progress and errors
                )
            except Exception as exc:
                raise ClusterError(f"{address}: cannot start a local cluster ({first_line(exc)})") from None
            stack.enter_context(cluster)
            client = stack.enter_context(Client(cluster))
        stack.callback(release_models, client)
        yield client
