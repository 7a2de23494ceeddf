"""The moebook command: list, run, check, build. Run it anywhere inside the project.

Exit status: 0 all went well; 1 a chapter failed (or check/build found a notebook not ready); 2 a
bad input (chapter id, parameter, project file, option), reported on one line before anything runs;
130/143 interrupted by SIGINT/SIGTERM (nothing half-written is left; the previous notebooks stay).
"""

from __future__ import annotations

import argparse
import os
import signal
import sys

from . import params as P
from .chapters import PROFILES, UsageError, all_chapters, full_profile, parameters, resolve
from .execute import TIMEOUTS, plan, run_sequential, summary, sweep_leftovers


class Interrupted(KeyboardInterrupt):
    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def _on_signal(signum, _frame):
    raise Interrupted(signum)


def cmd_list(args) -> int:
    chapters = all_chapters()
    w = max([len("id")] + [len(c.id) for c in chapters])
    if args.profile is None:
        print(f"{'id':<{w}}  {'short':<16} {'result':<18} paper  title")
        for c in chapters:
            print(f"{c.id:<{w}}  {c.alias:<16} {c.label:<18} {c.paper:<5}  {c.title}")
        return 0
    from . import store
    from .build import claims_cell
    if args.profile == "full":
        full_profile(chapters)
    print(f"{'id':<{w}}  {'state':<21} {'seconds':>8}  claims held, by kind")
    n_fresh, fresh_seconds = 0, 0.0
    for c in chapters:
        p = plan(c, parameters(c, args.profile), args.profile, custom=False)
        s = store.state(p.entry, p.key)
        what = "fresh" if s.fresh else s.reason.split(":")[0]
        if not s.fresh and p.entry.failed.exists():
            what += ", failed"  # the last run failed; its notebook is kept beside the entry
        rec = s.record or {}
        n_fresh += s.fresh
        fresh_seconds += float(rec.get("seconds", 0.0)) if s.fresh else 0.0
        print(f"{c.id:<{w}}  {what:<21} {float(rec.get('seconds', 0.0)):>8.1f}  "
              f"{claims_cell(rec.get('claims', [])) if rec else '-'}")
    print(f"{n_fresh} of {len(chapters)} fresh in the {args.profile} profile ({fresh_seconds:.0f} s of "
          f"execution recorded for them)")
    return 0


def _select(args, chapters) -> list:
    if args.all and args.ids:
        raise UsageError("give chapter ids or --all, not both")
    if not args.all and not args.ids:
        raise UsageError("name at least one chapter, or use --all ('moebook list' shows them)")
    return chapters if args.all else resolve(args.ids, chapters)


def plan_run(args) -> list:
    """Every check of a run's inputs, before anything runs: the chapters, their parameters, the profile."""
    chapters = all_chapters()
    selected = _select(args, chapters)
    overrides = P.parse_pairs([tuple(p) for p in args.param or []])
    if overrides and len(selected) > 1:
        raise UsageError("-p sets parameters of one chapter; name exactly one")
    if args.profile == "full":
        full_profile(chapters)  # the whole file is checked, not just the chapters named
    return [plan(c, parameters(c, args.profile, overrides, chapters), args.profile, custom=bool(overrides))
            for c in selected]


def cmd_run(args) -> int:
    plans = plan_run(args)
    timeout = args.timeout if args.timeout is not None else TIMEOUTS[args.profile]
    if args.jobs is not None or args.scheduler is not None:
        from .cluster import connect, run_cluster
        cluster = connect(args.jobs, args.scheduler)  # a bad address or other versions: exit 2 here
        sweep_leftovers()
        with cluster:
            results = run_cluster(plans, args.profile, args.force, timeout, cluster)
    else:
        sweep_leftovers()
        results = run_sequential(plans, args.profile, args.force, timeout)
    print(summary(results))
    return 1 if any(r.status == "FAILED" for r in results) else 0


def _profile_params(chapters, selected, profile) -> dict[str, dict]:
    if profile == "full":
        full_profile(chapters)  # the whole file is checked
    return {c.id: parameters(c, profile, {}, chapters) for c in selected}


def cmd_check(args) -> int:
    from .nbcheck import check
    chapters = all_chapters()
    selected = resolve(args.ids, chapters) if args.ids else chapters
    return check(selected, _profile_params(chapters, selected, args.profile), args.profile, jobs=args.jobs)


def cmd_build(args) -> int:
    from .build import build
    chapters = all_chapters()
    _profile_params(chapters, chapters, args.profile)  # a bad full_profile.yml is exit 2, before staging
    return build(chapters, args.profile, strict=args.strict, student=args.student)


def cmd_assign(args) -> int:
    from .coursework import cmd_assign as run
    return run(args, resolve)


def cmd_grade(args) -> int:
    from .coursework import cmd_grade as run
    return run(args)


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, exit 2
        self.exit(2, f"{self.prog}: {message} (see '{self.prog} --help')\n")


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, got {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a positive number of seconds, got {text!r}")
    return value


def _workers(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a number of workers >= 1, got {text!r}")
    return int(text)


def parser() -> argparse.ArgumentParser:
    p = _Parser(prog="moebook", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)
    ls = sub.add_parser("list", help="every chapter: id, short id, result, paper, title; with --profile, "
                                     "the state of its executed notebooks")
    ls.add_argument("--profile", choices=PROFILES, default=None,
                    help="per chapter: fresh / stale / not executed / corrupt (and failed when the last "
                         "run failed), recorded seconds, claims held by kind")
    ls.set_defaults(fn=cmd_list)

    run = sub.add_parser("run", help="execute chapters into _build/executed/<profile>/ "
                                     "(_build/runs/ with -p)")
    run.add_argument("ids", nargs="*", help="chapter ids or short ids")
    run.add_argument("--all", action="store_true", help="every chapter")
    run.add_argument("--profile", default="book", choices=PROFILES)
    run.add_argument("-p", "--param", nargs=2, action="append", metavar=("NAME", "VALUE"),
                     help="set a parameter, read as the type of its default; repeatable; the result goes "
                          "to _build/runs/<id>-<hash>/, never replacing the profile's notebook")
    run.add_argument("--force", action="store_true", help="execute even if the cache is current")
    run.add_argument("--timeout", type=_seconds, metavar="SECONDS",
                     help="time limit per chapter (default: "
                          + ", ".join(f"{k} {v:g} s" for k, v in TIMEOUTS.items()) + ")")
    where = run.add_mutually_exclusive_group()
    where.add_argument("--jobs", type=_workers, metavar="N",
                       help="run chapters on a local Dask cluster of N worker processes")
    where.add_argument("--scheduler", metavar="ADDRESS",
                       help="run chapters on an existing Dask scheduler, e.g. tcp://host:8786")
    run.set_defaults(fn=cmd_run)

    chk = sub.add_parser("check", help="nbval (strict) over a profile's executed notebooks")
    chk.add_argument("ids", nargs="*")
    chk.add_argument("--profile", default="book", choices=PROFILES)
    chk.add_argument("--jobs", type=_workers, default=1, metavar="N",
                     help="N nbval processes at once, each re-executing its share of the notebooks")
    chk.set_defaults(fn=cmd_check)

    b = sub.add_parser("build", help="build the HTML book (_build/html; _build/html-full for --profile full)")
    b.add_argument("--profile", default="book", choices=PROFILES)
    b.add_argument("--strict", action="store_true", help="warnings are errors (-W -n --keep-going)")
    b.add_argument("--student", action="store_true", help="student edition into _build/html-student")
    b.set_defaults(fn=cmd_build)

    a = sub.add_parser("assign", help="student notebooks and autograder bundles of graded chapters")
    a.add_argument("ids", nargs="+")
    a.add_argument("--out", default="_build/assign")
    a.set_defaults(fn=cmd_assign)
    g = sub.add_parser("grade", help="grade submissions locally with an autograder bundle")
    g.add_argument("bundle")
    g.add_argument("submission", nargs="+")
    g.add_argument("--jobs", type=_workers, default=1, metavar="N",
                   help="grade N submissions at a time (default 1)")
    g.add_argument("--json", help="also write the report as JSON here")
    g.set_defaults(fn=cmd_grade)
    return p


def main(argv: list[str] | None = None) -> int:
    try:
        args = parser().parse_args(argv)
    except SystemExit as e:  # a bad option (one line printed) or --help
        return e.code if isinstance(e.code, int) else 2
    if args.command != "grade":  # grading needs no project: a bundle and a notebook anywhere
        os.chdir(paths_root())
    previous = signal.getsignal(signal.SIGTERM)
    try:
        signal.signal(signal.SIGTERM, _on_signal)
    except ValueError:  # not the main thread (tests): SIGTERM keeps its handler
        previous = None
    try:
        return args.fn(args)
    except UsageError as e:
        print(f"moebook {args.command}: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as e:
        signum = getattr(e, "signum", signal.SIGINT)
        print(f"moebook {args.command}: interrupted ({signal.Signals(signum).name}); nothing half-written "
              "is left and the previous notebooks are kept", file=sys.stderr)
        return 128 + signum
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def paths_root():
    from .paths import find_root
    return find_root()


if __name__ == "__main__":
    sys.exit(main())
