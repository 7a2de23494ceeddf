"""Claim checks: each claim records a measured value against its threshold and its *kind*.

Kinds (every claim names one):

- ``theorem``: the paper's quantitative statement on measured numbers (a rate, a bound, a count);
- ``derived``: a step of our derivation; ``why`` names the formula it comes from;
- ``identity``: true by construction; a guard of the implementation, never evidence.

``why`` says where the threshold comes from (a formula, a seed-spread interval). A claim that is
expected not to hold is marked ``finding="why it fails"``: it is checked and shown, and the report
fails if it unexpectedly holds (then the finding is stale) or if anything else fails.

When whether a claim holds depends on the parameter values (a budget too small in one profile, a
comparison that goes the other way at paper scale), the chapter takes the keys of its expected
findings as a parameter and passes it on: ``Claims("P2-EXP2", findings=findings)``; a claim with
``key="ii"`` is then a finding exactly when ``"ii"`` is listed, and ``report()`` rejects a listed
key that no claim of the run carries (a typo would otherwise turn a finding into a plain check).

    claims = Claims("P2-T5.3")
    claims.equal("distinct routing paths (L=3)", n_paths, 3 ** 3, kind="theorem")
    claims.le("sup error - worst 1-D error", gap, 1e-12, kind="identity")
    claims.report()   # the cell's last line: a table for readers, stable text for nbval

``report()`` returns a ``ClaimReport``: Jupyter shows its markdown table, nbval compares its plain
text (one line per claim, values to six digits), and the pipeline reads its JSON record
(``application/json``, key ``moebook_claims``). It raises ``ClaimFailed`` before returning if any
claim fails, after printing the same table as text so the notebook shows what failed.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

KINDS = ("theorem", "derived", "identity")
# Part II chapters written before kinds existed omit kind=; they show as "unclassified" until they are
# classified (the chapter-standard test rejects unclassified claims). New chapters always pass kind=.
UNCLASSIFIED = "unclassified"


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


def _finite(x) -> bool:
    try:
        return math.isfinite(float(x))
    except (TypeError, ValueError):
        return False


@dataclass(frozen=True)
class Claim:
    name: str
    kind: str
    holds: bool
    measured: str
    required: str
    why: str = ""
    finding: str = ""

    @property
    def ok(self) -> bool:
        """As expected: holds, or is a reported finding that (still) does not hold."""
        return self.holds != bool(self.finding)

    @property
    def status(self) -> str:
        if self.finding:
            return "finding: does not hold" if not self.holds else "FINDING IS STALE: holds"
        return "holds" if self.holds else "FAILS"


@dataclass
class Claims:
    result_id: str
    findings: list[str] = field(default_factory=list)   # keys of the claims expected not to hold
    rows: list[Claim] = field(default_factory=list)
    _keys: set = field(default_factory=set, repr=False)

    def __post_init__(self):
        if isinstance(self.findings, str) or not all(isinstance(k, str) for k in self.findings):
            raise ValueError(f"findings: expected a list of claim keys (strings), got {self.findings!r}")
        self.findings = list(self.findings)

    def _add(self, name: str, holds: bool, measured, required: str, *, kind: str | None = None,
             why: str = "", finding: str = "", key: str | None = None) -> bool:
        """Every check below takes the keywords ``kind``, ``why``, ``finding`` and ``key`` (see the
        module doc): with ``key``, ``finding`` applies only when the key is in ``findings``."""
        if kind is None:
            kind = UNCLASSIFIED
        elif kind not in KINDS:
            raise ValueError(f"claim '{name}': kind must be one of {', '.join(KINDS)}, got {kind!r}")
        if kind == "derived" and not why:
            raise ValueError(f"claim '{name}': a derived claim needs why= naming the formula it comes from")
        if key is not None:
            self._keys.add(key)
            finding = finding if key in self.findings else ""
        self.rows.append(Claim(name, kind, bool(holds), fmt(measured), required, why, finding))
        return bool(holds)

    def true(self, name: str, holds: bool, detail: str = "", **how) -> bool:
        """``detail`` (optional) is shown as the measured value, e.g. what was found."""
        return self._add(name, holds, detail or bool(holds), "True", **how)

    def le(self, name, measured, bound, **how) -> bool:
        ok = _finite(measured) and float(measured) <= float(bound)
        return self._add(name, ok, measured, f"<= {fmt(bound)}", **how)

    def ge(self, name, measured, bound, **how) -> bool:
        ok = _finite(measured) and float(measured) >= float(bound)
        return self._add(name, ok, measured, f">= {fmt(bound)}", **how)

    def lt(self, name, measured, bound, **how) -> bool:
        ok = _finite(measured) and float(measured) < float(bound)
        return self._add(name, ok, measured, f"< {fmt(bound)}", **how)

    def gt(self, name, measured, bound, **how) -> bool:
        ok = _finite(measured) and float(measured) > float(bound)
        return self._add(name, ok, measured, f"> {fmt(bound)}", **how)

    def between(self, name, measured, low, high, **how) -> bool:
        ok = _finite(measured) and float(low) <= float(measured) <= float(high)
        return self._add(name, ok, measured, f"in [{fmt(low)}, {fmt(high)}]", **how)

    def equal(self, name, measured, expected, **how) -> bool:
        return self._add(name, measured == expected, measured, f"== {fmt(expected)}", **how)

    def close(self, name, measured, expected, tol, **how) -> bool:
        gap = abs(float(measured) - float(expected)) if _finite(measured) else math.inf
        ok = math.isfinite(gap) and gap <= float(tol)
        return self._add(name, ok, measured, f"{fmt(expected)} +/- {fmt(tol)}", **how)

    def report(self) -> ClaimReport:
        """The table of claims; raises ClaimFailed (after printing it) if any claim is not as expected."""
        if not self.rows:
            raise ClaimFailed(f"{self.result_id}: no claim was checked")
        unknown = [k for k in self.findings if k not in self._keys]
        if unknown:
            raise ValueError(f"findings: {', '.join(map(repr, unknown))} names no claim of "
                             f"{self.result_id}; expected keys among {sorted(self._keys) or 'none'}")
        rep = ClaimReport(self.result_id, list(self.rows))
        bad = [c for c in self.rows if not c.ok]
        if bad:
            print(repr(rep))
            raise ClaimFailed(f"{self.result_id}: {len(bad)} of {len(self.rows)} claims are not as expected: "
                              + "; ".join(f"{c.name} ({c.status}: measured {c.measured}, required "
                                          f"{c.required})" for c in bad))
        return rep


@dataclass(frozen=True)
class ClaimReport:
    """What ``Claims.report()`` returns: displayed by Jupyter as a table; read by the pipeline as JSON."""

    result_id: str
    rows: list[Claim]

    def counts(self) -> dict[str, int]:
        return {k: sum(c.kind == k for c in self.rows) for k in (*KINDS, UNCLASSIFIED)}

    def __repr__(self) -> str:
        n = self.counts()
        kinds = ", ".join(f"{v} {k}" for k, v in n.items() if v)
        head = f"{self.result_id}: {len(self.rows)} claims ({kinds})"
        return "\n".join([head] + [f"[{c.kind}] {c.name}: {c.status}; measured {c.measured}, "
                                   f"required {c.required}" for c in self.rows])

    def _repr_markdown_(self) -> str:
        def cell(s: str) -> str:
            return str(s).replace("|", "\\|").replace("\n", " ")
        lines = ["| claim | kind | measured | required | holds | threshold from |",
                 "|---|---|---|---|---|---|"]
        for c in self.rows:
            lines.append("| " + " | ".join(cell(x) for x in (c.name, c.kind, c.measured, c.required,
                                                                 c.status, c.why or "—")) + " |")
        return "\n".join(lines)

    def _repr_json_(self) -> dict:
        return {"moebook_claims": {"result": self.result_id, "claims": [asdict(c) for c in self.rows]}}
