"""The moebook command: list, run, check, build. Run it anywhere inside the project."""

from __future__ import annotations

import argparse
import os
import sys

import yaml

from . import paths
from .build import build
from .chapters import UsageError, all_chapters, parameters, resolve
from .execute import run_chapter, summary
from .nbcheck import check


def _parse_value(text: str):
    """A -p value is read as YAML: 3 -> int, 0.5 -> float, [1, 2] -> list, abc -> str."""
    return yaml.safe_load(text)


def cmd_list(_args) -> int:
    chapters = all_chapters()
    w = max(len(c.id) for c in chapters)
    print(f"{'id':<{w}}  {'short':<16} {'result':<18} paper  title")
    for c in chapters:
        print(f"{c.id:<{w}}  {c.alias:<16} {c.label:<18} {c.paper:<5}  {c.title}")
    return 0


def _select(args) -> list:
    if args.all and args.ids:
        raise UsageError("give chapter ids or --all, not both")
    if not args.all and not args.ids:
        raise UsageError("name at least one chapter, or use --all ('moebook list' shows them)")
    return all_chapters() if args.all else resolve(args.ids)


def cmd_run(args) -> int:
    chapters = _select(args)
    overrides = {name: _parse_value(value) for name, value in args.param or []}
    if overrides and len(chapters) > 1:
        raise UsageError("-p sets parameters of one chapter; name exactly one")
    plans = [(c, parameters(c, args.profile, overrides)) for c in chapters]  # all names checked first
    results = []
    for i, (c, params) in enumerate(plans, 1):
        print(f"[{i}/{len(plans)}] {c.id} ({c.label}) ...", flush=True)
        r = run_chapter(c, args.profile, params, force=args.force)
        print(f"    {r.status} in {r.seconds:.1f} s" + (f": {r.error}" if r.error else ""), flush=True)
        if r.status == "FAILED":
            print(f"    traceback kept in {paths.executed_dir(args.profile) / (c.id + '.failed.ipynb')}")
        results.append(r)
    print(summary(results))
    return 1 if any(r.status == "FAILED" for r in results) else 0


def cmd_check(args) -> int:
    chapters = resolve(args.ids) if args.ids else all_chapters()
    return check(chapters, args.profile)


def cmd_build(args) -> int:
    return build(all_chapters(), args.profile, strict=args.strict, student=args.student)


def cmd_assign(args) -> int:
    from .coursework import cmd_assign as run
    return run(args, resolve)


def cmd_grade(args) -> int:
    from .coursework import cmd_grade as run
    return run(args)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="moebook", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="every chapter: id, short id, result, paper, title").set_defaults(fn=cmd_list)

    run = sub.add_parser("run", help="execute chapters with papermill into _build/executed/<profile>/")
    run.add_argument("ids", nargs="*", help="chapter ids or short ids")
    run.add_argument("--all", action="store_true", help="every chapter")
    run.add_argument("--profile", default="book", choices=["book", "full"])
    run.add_argument("-p", "--param", nargs=2, action="append", metavar=("NAME", "VALUE"),
                     help="set a parameter (value read as YAML); repeatable")
    run.add_argument("--force", action="store_true", help="execute even if the cache is current")
    run.set_defaults(fn=cmd_run)

    chk = sub.add_parser("check", help="nbval (strict) over the executed notebooks")
    chk.add_argument("ids", nargs="*")
    chk.add_argument("--profile", default="book", choices=["book", "full"])
    chk.set_defaults(fn=cmd_check)

    b = sub.add_parser("build", help="build the HTML book into _build/html")
    b.add_argument("--profile", default="book", choices=["book", "full"])
    b.add_argument("--strict", action="store_true", help="warnings are errors (-W -n --keep-going)")
    b.add_argument("--student", action="store_true", help="student edition into _build/html-student")
    b.set_defaults(fn=cmd_build)

    a = sub.add_parser("assign", help="student notebooks and autograder bundles of graded chapters")
    a.add_argument("ids", nargs="+")
    a.add_argument("--out", default=str(paths.BUILD / "assign"))
    a.set_defaults(fn=cmd_assign)
    g = sub.add_parser("grade", help="grade one submission locally with an autograder bundle")
    g.add_argument("bundle")
    g.add_argument("submission")
    g.add_argument("--json", help="also write the report as JSON here")
    g.set_defaults(fn=cmd_grade)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.command != "grade":  # grading needs no project: a bundle and a notebook anywhere
        os.chdir(paths.find_root())
    try:
        return args.fn(args)
    except UsageError as e:
        print(f"moebook {args.command}: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
