"""Claim checks: each records the measured value against its threshold; ``report`` prints one line per
claim and raises ``ClaimFailed`` naming every claim that does not hold.

    claims = Claims("P2-T5.3")
    claims.equal("distinct routing paths (L=3)", n_paths, 3 ** 3)
    claims.le("sup error - worst 1-D error", gap, 1e-12)
    claims.report()
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field


class ClaimFailed(AssertionError):
    """A chapter's quantitative claim does not hold on the computed numbers."""


def fmt(v) -> str:
    """Six significant digits: what chapters print, so reruns compare equal under nbval."""
    if isinstance(v, bool):
        return str(v)
    if isinstance(v, int):
        return str(v)
    try:
        return f"{float(v):.6g}"
    except (TypeError, ValueError):
        return str(v)


@dataclass
class Claims:
    result_id: str
    rows: list[tuple[str, bool, str]] = field(default_factory=list)

    def _add(self, name: str, ok: bool, text: str) -> bool:
        self.rows.append((name, bool(ok), text))
        return bool(ok)

    def true(self, name: str, ok: bool, detail: str = "") -> bool:
        return self._add(name, ok, detail or ("holds" if ok else "does not hold"))

    def le(self, name: str, measured: float, bound: float) -> bool:
        ok = math.isfinite(float(measured)) and float(measured) <= float(bound)
        return self._add(name, ok, f"measured {fmt(measured)}, required <= {fmt(bound)}")

    def ge(self, name: str, measured: float, bound: float) -> bool:
        ok = math.isfinite(float(measured)) and float(measured) >= float(bound)
        return self._add(name, ok, f"measured {fmt(measured)}, required >= {fmt(bound)}")

    def lt(self, name: str, measured: float, bound: float) -> bool:
        ok = math.isfinite(float(measured)) and float(measured) < float(bound)
        return self._add(name, ok, f"measured {fmt(measured)}, required < {fmt(bound)}")

    def between(self, name: str, measured: float, low: float, high: float) -> bool:
        ok = math.isfinite(float(measured)) and low <= float(measured) <= high
        return self._add(name, ok, f"measured {fmt(measured)}, required in [{fmt(low)}, {fmt(high)}]")

    def equal(self, name: str, measured, expected) -> bool:
        return self._add(name, measured == expected,
                         f"measured {fmt(measured)}, required == {fmt(expected)}")

    def close(self, name: str, measured: float, expected: float, tol: float) -> bool:
        gap = abs(float(measured) - float(expected))
        ok = math.isfinite(gap) and gap <= tol
        return self._add(name, ok, f"measured {fmt(measured)}, required {fmt(expected)} "
                                   f"+/- {fmt(tol)} (off by {fmt(gap)})")

    def report(self) -> None:
        """Print ``claim holds: ...`` per claim; raise ClaimFailed if any does not hold."""
        if not self.rows:
            raise ClaimFailed(f"{self.result_id}: no claim was checked")
        for name, ok, text in self.rows:
            print(f"{'claim holds' if ok else 'CLAIM FAILS'}: {self.result_id}: {name}: {text}")
        failed = [f"{name} ({text})" for name, ok, text in self.rows if not ok]
        if failed:
            raise ClaimFailed(f"{self.result_id}: {len(failed)} of {len(self.rows)} claims fail: "
                              + "; ".join(failed))
