"""The ``--scheduler`` of series runs: ``threads[:N]``, ``processes[:N]`` or the address of a
running ``dask.distributed`` scheduler, all driven through one ``distributed.Client`` so the
same command runs on a laptop and on a cluster."""

from __future__ import annotations

import os
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Iterator, Optional

from ._optional import require

__all__ = ["SchedulerSpec", "parse_scheduler", "client_for"]


@dataclass(frozen=True)
class SchedulerSpec:
    """A parsed ``--scheduler`` value.

    Attributes
    ----------
    kind : {"threads", "processes", "address"}
    workers : int
        Steps run at once (threads: in this process; processes: worker processes); 0 for an
        address (the cluster decides).
    address : str or None
        ``tcp://host:port`` (or any address ``distributed.Client`` accepts).
    """

    kind: str
    workers: int = 0
    address: Optional[str] = None

    def threads_per_step(self, cores: Optional[int] = None) -> int:
        """Threads each step uses so that the local steps together fill, not oversubscribe,
        the cores; 1 on a remote cluster (its workers run one step per thread)."""
        if self.kind == "address":
            return 1
        return max(1, (cores or os.cpu_count() or 1) // self.workers)


def parse_scheduler(text: str) -> SchedulerSpec:
    """Parse ``threads``, ``threads:N``, ``processes``, ``processes:N`` or an address.

    Examples
    --------
    >>> parse_scheduler("processes:2")
    SchedulerSpec(kind='processes', workers=2, address=None)
    >>> parse_scheduler("tcp://10.0.0.1:8786").kind
    'address'
    """
    text = text.strip()
    if "://" in text:
        return SchedulerSpec("address", 0, text)
    kind, _, count = text.partition(":")
    if kind not in ("threads", "processes"):
        raise ValueError(f"scheduler {text!r}: use threads[:N], processes[:N] or a scheduler address (tcp://host:port)")
    if not count:
        n = 1 if kind == "threads" else max(1, os.cpu_count() or 1)
    else:
        try:
            n = int(count)
        except ValueError:
            n = 0
        if n < 1:
            raise ValueError(f"scheduler {text!r}: N must be an integer >= 1")
    return SchedulerSpec(kind, n)


@contextmanager
def client_for(spec: SchedulerSpec) -> Iterator[Any]:
    """A ``distributed.Client`` for ``spec`` (a local cluster is closed on exit)."""
    distributed = require("distributed", "the --scheduler of series runs")
    if spec.kind == "address":
        with distributed.Client(spec.address) as client:
            yield client
        return
    # one thread per worker: a worker runs one step at a time, the step's own threads do the rest
    cluster = distributed.LocalCluster(
        n_workers=spec.workers if spec.kind == "processes" else 1,
        threads_per_worker=1 if spec.kind == "processes" else spec.workers,
        processes=spec.kind == "processes",
        dashboard_address=":0",  # any free port: several runs may share a machine
    )
    try:
        with distributed.Client(cluster) as client:
            yield client
    finally:
        cluster.close()
