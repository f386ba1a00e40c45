"""Where the blocks run: a Dask scheduler's address, or a local cluster of N worker
processes. Dask is imported here, lazily, with a clear message when it is missing."""

from __future__ import annotations

import contextlib
import logging
import re
from collections.abc import Iterator
from typing import Any

from ..errors import MapRefinerError

log = logging.getLogger(__name__)
MAX_LOCAL_WORKERS = 256
CONNECT_TIMEOUT_S = 10
_LOCAL = re.compile(r"local:(\d+)")
_ADDRESS = re.compile(r"(tcp|tls|ws|wss|inproc|ucx)://\S+")
USAGE = "--scheduler takes a Dask scheduler's address (tcp://HOST:8786) or local:N"


def check_scheduler(text: str) -> str:
    """``text`` if it names a scheduler or a local cluster; a one-line error if not."""
    m = _LOCAL.fullmatch(text)
    if m:
        n = int(m.group(1))
        if not 1 <= n <= MAX_LOCAL_WORKERS:
            raise MapRefinerError(f"local:N takes 1 to {MAX_LOCAL_WORKERS} workers; got {n}.")
        return text
    if not _ADDRESS.fullmatch(text):
        raise MapRefinerError(f"{USAGE} (N worker processes on this machine); got {text!r}.")
    return text


def import_distributed() -> Any:
    try:
        import distributed
    except ImportError as exc:
        raise MapRefinerError(
            "Refining on a Dask cluster needs dask and distributed: "
            "pip install -r requirements-cluster.txt",
            details=repr(exc),
        ) from exc
    return distributed


@contextlib.contextmanager
def connect(scheduler: str, timeout_s: float = CONNECT_TIMEOUT_S) -> Iterator[Any]:
    """A Dask ``Client`` on ``scheduler``; a local cluster is started and stopped here
    (single-threaded worker processes, one torch thread each)."""
    check_scheduler(scheduler)
    distributed = import_distributed()
    m = _LOCAL.fullmatch(scheduler)
    if m:
        with (
            distributed.LocalCluster(
                n_workers=int(m.group(1)),
                threads_per_worker=1,
                processes=True,
                dashboard_address=None,
            ) as cluster,
            distributed.Client(cluster) as client,
        ):
            yield client
        return
    try:
        client = distributed.Client(scheduler, timeout=timeout_s)
    except (OSError, TimeoutError) as exc:
        raise MapRefinerError(
            f"No Dask scheduler answered at {scheduler} within {timeout_s:g} s; start "
            "one (dask scheduler, then dask worker ADDRESS --nthreads 1 on each machine) or "
            "use --scheduler local:N.",
            details=repr(exc),
        ) from exc
    with client:
        yield client
