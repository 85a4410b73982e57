"""Resumable, lossless series runs on dask.distributed: one task per step, one output file per
step written atomically by the task, a JSON run log.

A re-run skips steps whose output exists *and* validates (the caller's check: checksums,
inputs, options), redoes the others, and records each step's fate (done, failed with its
error, skipped) in the run log, rewritten atomically after every step, so an interrupted run
leaves a log that says how far it got. Failed steps do not stop the others; ``retries``
re-runs a failing step (as does Dask, on another worker, when a worker dies under it).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Optional

from ._atomic import write_text
from ._optional import require
from ._progress import progress_bar

__all__ = ["Step", "run_steps", "summary"]


@dataclass
class Step:
    """One unit of a series: its inputs, its output file and a name for the log."""

    name: str
    output: Path
    inputs: list[str] = field(default_factory=list)


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def run_steps(
    steps: list[Step],
    work: Callable[[Step], dict],
    validate: Callable[[Step], Optional[str]],
    client: Any,
    log_path: Path,
    retries: int = 0,
    progress: bool = True,
    header: Optional[dict] = None,
    on_result: Optional[Callable[[str, dict], None]] = None,
) -> dict:
    """Run ``work(step)`` for every step whose output is missing or invalid.

    Parameters
    ----------
    steps : list of Step
    work : callable
        Picklable; runs on a worker, writes ``step.output`` atomically and returns a small
        JSON-able summary. An exception marks the step failed.
    validate : callable
        Picklable; ``validate(step)`` -> None when ``step.output`` is complete and matches
        the step, else the reason it does not (called in the task, for outputs that exist).
    client : distributed.Client
    log_path : Path
        The JSON run log (rewritten atomically after each step).
    retries : int
        Extra attempts of a failing step.
    progress : bool
        One tqdm bar for the series (done / failed / skipped).
    header : dict, optional
        Extra fields for the log (command options, incomplete steps...).
    on_result : callable, optional
        ``on_result(name, entry)`` after each finished step (tests use it to kill a worker).

    Returns
    -------
    dict
        The run log: ``steps`` (name -> status, output, inputs, error, seconds, worker),
        ``counts``, ``workers_gone`` (workers of the start that were gone at the end: died,
        their steps re-run elsewhere by Dask, or retired) and the header's fields.
    """
    distributed = require("distributed", "series runs")
    log: dict[str, Any] = dict(header or {})
    log.update(started=_now(), finished=None, steps={}, counts={})
    entries: dict[str, dict] = log["steps"]

    def save() -> None:
        counts: dict[str, int] = {}
        for e in entries.values():
            counts[e["status"]] = counts.get(e["status"], 0) + 1
        log["counts"] = counts
        log["updated"] = _now()
        write_text(log_path, json.dumps(log, indent=1) + "\n")

    bar = progress_bar(len(steps), desc="steps", unit="step", enabled=progress)
    for step in steps:
        entries[step.name] = {"output": str(step.output), "inputs": list(step.inputs), "status": "pending"}
    save()
    started = time.monotonic()
    workers_at_start = set(client.scheduler_info().get("workers", {}))
    # validation runs in the tasks, on the workers: a resumed archive's checksums are read in
    # parallel, not one file after another here
    attempt = _Attempt(work, validate)
    futures = {client.submit(attempt, step, retries=int(retries), pure=False): step for step in steps}
    try:
        for fut in distributed.as_completed(futures):
            step = futures[fut]
            entry = entries[step.name]
            try:
                result = fut.result()
                entry.update(status="skipped" if result.pop("skipped", False) else "done", **result)
            except Exception as exc:  # a failed step is recorded; the others go on
                entry.update(status="failed", error=f"{type(exc).__name__}: {exc}")
            bar.update(1)
            bar.set_postfix_str(_postfix(entries), refresh=False)
            save()
            if on_result is not None:
                on_result(step.name, entry)
    finally:
        for fut in futures:
            fut.cancel()
        bar.close()
        log["finished"] = _now()
        log["wall_s"] = round(time.monotonic() - started, 3)
        log["complete"] = not any(e["status"] == "pending" for e in entries.values())
        # workers that died (Dask re-ran their steps elsewhere) or left an adaptive cluster
        log["workers_gone"] = sorted(workers_at_start - set(client.scheduler_info().get("workers", {})))
        save()
    return log


def run_on_cluster(
    steps: list[Step],
    work: Callable[[Step], dict],
    validate: Callable[[Step], Optional[str]],
    spec: Any,
    client: Any,
    log_path: Path,
    retries: int = 0,
    progress: bool = True,
    header: Optional[dict] = None,
    on_result: Optional[Callable[[str, dict], None]] = None,
    announce: Optional[Callable[[str], None]] = None,
) -> dict:
    """:func:`run_steps` on ``client``, or on a client made for the scheduler ``spec``
    (:func:`fastinv._scheduler.client_for`), announcing the dashboard of a distributed one;
    afterwards removes the stale temporaries of writers killed mid-write (a lost worker)
    beside outputs that are now complete. ``header`` gains the dashboard address."""
    from ._atomic import temporaries
    from ._scheduler import client_for

    header = dict(header or {})

    def go(c) -> dict:
        link = getattr(c, "dashboard_link", None)
        if announce is not None and link and spec.kind != "threads":
            announce(f"dask dashboard: {link}")
        header["dashboard"] = link
        return run_steps(steps, work, validate, c, log_path, retries, progress, header, on_result)

    if client is not None:
        log = go(client)
    else:
        with client_for(spec) as c:
            log = go(c)
    for step in steps:
        if log["steps"][step.name]["status"] in ("done", "skipped"):
            for tmp in temporaries(step.output):
                tmp.unlink(missing_ok=True)
    return log


def step_result(status: Any, started: float) -> dict:
    """The summary a step's ``work`` returns: its pixels, those solved (status 0), its seconds
    since ``started`` (:func:`time.perf_counter`) and the Dask worker that ran it (None
    outside one)."""
    import numpy as np

    worker = None
    try:
        from distributed import get_worker

        worker = get_worker().address
    except (ImportError, ValueError):
        pass
    return {
        "pixels": int(status.size),
        "solved": int(np.count_nonzero(status == 0)),
        "seconds": round(time.perf_counter() - started, 3),
        "worker": worker,
    }


class _Attempt:
    """The task of one step: skip it when its output validates, else run ``work``."""

    def __init__(self, work: Callable[[Step], dict], validate: Callable[[Step], Optional[str]]) -> None:
        self.work, self.validate = work, validate

    def __call__(self, step: Step) -> dict:
        redone = {}
        if step.output.exists():
            reason = self.validate(step)
            if reason is None:
                return {"skipped": True, "note": "valid output exists"}
            redone = {"redone": f"the existing output was invalid: {reason}"}
        return {**self.work(step), **redone}


def summary(log: dict) -> str:
    """``done N, failed N, skipped N`` of a run log."""
    return _postfix(log["steps"])


def _postfix(entries: dict) -> str:
    n = {s: sum(e["status"] == s for e in entries.values()) for s in ("done", "failed", "skipped")}
    return f"done {n['done']}, failed {n['failed']}, skipped {n['skipped']}"
