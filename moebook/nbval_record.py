"""A pytest plugin for `moebook check`: which notebooks passed nbval in full (file name -> bool)."""

from __future__ import annotations

import json
import os

_passed: dict[str, bool] = {}


def _file(nodeid: str) -> str:
    return os.path.basename(nodeid.split("::")[0])


def pytest_runtest_logreport(report) -> None:
    name = _file(report.nodeid)
    _passed[name] = _passed.get(name, True) and not report.failed


def pytest_collectreport(report) -> None:
    if report.failed:
        _passed[_file(report.nodeid)] = False


def pytest_sessionfinish(session, exitstatus) -> None:
    out = os.environ.get("MOEBOOK_NBVAL_RESULTS")
    if out:
        with open(out, "w") as f:
            json.dump(_passed, f)
