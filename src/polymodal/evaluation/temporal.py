"""Temporal hold-out and drift summaries.

A model is deployed on trials registered after the ones it learned from, so selecting it on a
random validation split of the training period overstates how well it will do. The temporal
hold-out keeps the latest registered records for selection instead (or beside it), and
:func:`drift_summary` lets a report show which period each split covers.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from polymodal.data.schema import Record
from polymodal.errors import DataError

__all__ = ["drift_summary", "temporal_holdout"]


def _order_value(record: Record, order_key: str) -> Any:
    value = record.meta.get(order_key)
    if value is None:
        raise DataError(f"record {record.id!r} has no meta[{order_key!r}] to order by "
                        f"(meta keys: {sorted(record.meta)})", field=order_key)
    return value


def _sorted(records: Sequence[Record], order_key: str) -> list[Record]:
    keyed = [(_order_value(r, order_key), i, r) for i, r in enumerate(records)]
    try:
        # The original position breaks ties, so the order is stable and never compares Records.
        keyed.sort(key=lambda item: (item[0], item[1]))
    except TypeError as err:
        kinds = sorted({type(k).__name__ for k, _, _ in keyed})
        raise DataError(f"meta[{order_key!r}] values are not mutually comparable ({', '.join(kinds)})",
                        field=order_key) from err
    return [r for _, _, r in keyed]


def temporal_holdout(
    records: Sequence[Record], *, order_key: str = "nct_number", fraction: float = 0.15
) -> tuple[list[Record], list[Record]]:
    """Split records into the earlier part and the latest ``fraction`` by ``record.meta[order_key]``.

    NCT numbers are assigned in registration order and have a fixed width ("NCT" + 8 digits), so
    their string order is their temporal order. Records sharing the boundary key value all go to
    the later part, so no key value (a date, say) straddles the split.

    Args:
        records: the pool to split (normally the training split).
        order_key: the ``meta`` field to order by; every record must have it.
        fraction: share of records in the later part, in (0, 1); rounded, at least one record.

    Returns:
        ``(earlier, latest)``, each in ascending key order.

    Raises:
        DataError: a record lacks the key, or the keys cannot be compared.
        ValueError: ``fraction`` outside (0, 1), fewer than two records, or ties leave no earlier part.
    """
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"fraction must be in (0, 1), got {fraction}")
    if len(records) < 2:
        raise ValueError(f"need at least two records for a temporal hold-out, got {len(records)}")
    ordered = _sorted(records, order_key)
    n_late = min(len(ordered) - 1, max(1, round(fraction * len(ordered))))
    cut = len(ordered) - n_late
    while cut > 0 and _order_value(ordered[cut - 1], order_key) == _order_value(ordered[cut], order_key):
        cut -= 1
    if cut == 0:
        raise ValueError(f"all records share the boundary meta[{order_key!r}] value; cannot split in time")
    return ordered[:cut], ordered[cut:]


def _positive_rate(records: Sequence[Record]) -> float | None:
    try:
        targets = [float(r.target) for r in records]
    except (TypeError, ValueError):
        return None  # not a binary/scalar target (a survival pair, a label set ...)
    targets = [t for t in targets if not math.isnan(t)]
    return sum(targets) / len(targets) if targets else None


def drift_summary(splits: Mapping[str, Sequence[Record]], order_key: str = "nct_number") -> dict[str, dict]:
    """Per split: size, range and median of the order key, and the positive rate.

    Args:
        splits: split name -> records (e.g. ``dict(DatasetSplits.items())``).
        order_key: the ``meta`` field that orders records in time.

    Returns:
        ``{split: {"n", "min", "median", "max", "positive_rate"}}``. The median is the lower middle
        element (keys may be strings such as NCT numbers); ``positive_rate`` is None when targets
        are not scalars. An empty split has ``n`` = 0 and None elsewhere.
    """
    summary: dict[str, dict] = {}
    for name, records in splits.items():
        if not records:
            summary[name] = {"n": 0, "min": None, "median": None, "max": None, "positive_rate": None}
            continue
        keys = [_order_value(r, order_key) for r in _sorted(records, order_key)]
        summary[name] = {
            "n": len(keys),
            "min": keys[0],
            "median": keys[(len(keys) - 1) // 2],
            "max": keys[-1],
            "positive_rate": _positive_rate(records),
        }
    return summary
