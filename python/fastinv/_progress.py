"""One progress display for the whole package: tqdm on stderr.

A bar is shown only when asked for *and* stderr is a terminal (``disable=None`` in tqdm), so
logs of batch jobs and CI stay clean.
"""

from __future__ import annotations

from collections.abc import Callable

from tqdm import tqdm

__all__ = ["progress_bar", "absolute_updates"]


def progress_bar(total: int, desc: str = "", unit: str = "it", enabled: bool = True) -> tqdm:
    """A tqdm bar over ``total`` items; a no-op bar when ``enabled`` is False or stderr is not
    a terminal.

    Examples
    --------
    >>> with progress_bar(3, unit="px", enabled=False) as bar:
    ...     bar.update(3)
    """
    return tqdm(
        total=max(int(total), 0), desc=desc or None, unit=unit, disable=None if enabled else True, dynamic_ncols=True
    )


def absolute_updates(bar: tqdm) -> Callable[[int], None]:
    """Adapter for APIs that report how many items are done so far (not the increment)."""

    def update(done: int) -> None:
        bar.update(int(done) - bar.n)

    return update
