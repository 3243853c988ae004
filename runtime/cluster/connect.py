"""Reaching a Dask cluster: ``local:N`` starts one here, anything else is a scheduler's address."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from distributed import Client, LocalCluster

from ..backends import physical_cores
from ..errors import ClusterError, first_line

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
    scheduler. ClusterError, in one line, if none answers within ``timeout`` seconds."""
    workers = local_workers(address)
    if workers is not None:
        threads = threads or max(1, physical_cores() // workers)
        try:
            cluster = LocalCluster(
                n_workers=workers,
                threads_per_worker=threads,
                processes=True,
                host="127.0.0.1",
                dashboard_address=None,
                silence_logs=40,  # errors only: the run reports its own progress
            )
        except Exception as exc:
            raise ClusterError(f"{address}: cannot start a local cluster ({first_line(exc)})") from None
        with cluster, Client(cluster) as client:
            yield client
        return
    try:
        client = Client(address, timeout=timeout)
    except (OSError, TimeoutError, ValueError) as exc:
        raise ClusterError(
            f"{address}: no Dask scheduler answers within {timeout:g} s ({first_line(exc)})"
        ) from None
    with client:
        yield client
