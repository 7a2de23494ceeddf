"""Progress bars for long loops. Set TQDM_DISABLE=1 to silence them (the moebook pipeline does, so
that executed notebooks hold no timings)."""

from __future__ import annotations

from tqdm import tqdm


def progress(iterable, desc: str = "", total: int | None = None):
    return tqdm(iterable, desc=desc, total=total, leave=False)
