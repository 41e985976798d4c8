"""``mask_grounding_dino jobs <command>``: the job API on the command line.

  create ACTION [-e SPEC] [key=value ...] [--parent ID] [--name N] [--automl-policy auto|on|off] [--automl-spec FILE] [--wait]
  chain -e SPEC [key=value ...] [--name N] [--wait]   train -> export -> evaluate + inference
  list [--status S] [--action A] [--json]
  show ID [--json]
  logs ID [-f]
  wait ID [ID ...] [--timeout S]                exit 0 when all are Done, 1 otherwise
  cancel ID [--grace S]
  retry ID
  config [--max-concurrent N]

Every command takes ``--workspace DIR`` (default ``$MASK_GROUNDING_DINO_JOBS``, else
``./mgd_jobs``) and ``--db URL``. IDs may be shortened to any unique prefix, or be a job's name.
"""

from __future__ import annotations

import argparse
import difflib
import json
import sys

from ..config import ACTIONS
from . import render
from .errors import JobError
from .status import DONE, STATUSES
from .workspace import Workspace

COMMANDS = ("create", "chain", "list", "show", "logs", "wait", "cancel", "retry", "config")


def _common() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--workspace", default=None,
                        help="jobs folder (default: $MASK_GROUNDING_DINO_JOBS, else ./mgd_jobs)")
    common.add_argument("--db", default=None, help="database URL (default: sqlite:///<workspace>/jobs.db)")
    return common


def _spec_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-e", "--experiment_spec_file", "--experiment-spec", dest="spec", default=None,
                        help="YAML spec file (its contents are stored with the job)")
    parser.add_argument("overrides", nargs="*", metavar="key=value", help="spec overrides, e.g. train.num_epochs=3")
    parser.add_argument("--name", default=None, help="a name to find the job(s) by")
    parser.add_argument("--automl-policy", choices=("auto", "on", "off"), default="auto",
                        help="train: auto = AutoML when the skill enables it (default), on = AutoML, off = plain "
                             "training")
    parser.add_argument("--automl-spec", default=None, help="an AutoML train job's settings (YAML, TAO's names)")
    parser.add_argument("--wait", action="store_true", help="wait until the job(s) ended, then show the result")


def build_parsers() -> dict[str, argparse.ArgumentParser]:
    """One parser per command (each takes ``--workspace`` / ``--db``)."""
    common = _common()

    def command(name: str, help_text: str) -> argparse.ArgumentParser:
        return argparse.ArgumentParser(prog=f"mask_grounding_dino jobs {name}", parents=[common],
                                       description=help_text)

    parsers = {}
    create = parsers["create"] = command("create", "Queue a job; it starts when its parent is Done.")
    create.add_argument("action", help=f"one of {', '.join(ACTIONS)}")
    create.add_argument("--parent", default=None, help="the job whose model this one uses (parent_job_id)")
    _spec_args(create)
    chain = parsers["chain"] = command("chain", "train -> export -> evaluate (of the ONNX file) and inference: "
                                                "four linked jobs from one spec.")
    _spec_args(chain)
    listing = parsers["list"] = command("list", "The jobs as a table, oldest first.")
    listing.add_argument("--status", action="append", default=None, help=f"only these ({', '.join(STATUSES)})")
    listing.add_argument("--action", default=None)
    listing.add_argument("--json", action="store_true", help="one JSON object per job")
    show = parsers["show"] = command("show", "A job's status, spec as run, parent, metrics, files and history.")
    show.add_argument("job")
    show.add_argument("--json", action="store_true")
    logs = parsers["logs"] = command("logs", "A job's log (every attempt).")
    logs.add_argument("job")
    logs.add_argument("-f", "--follow", action="store_true", help="keep printing until the job ends")
    wait = parsers["wait"] = command("wait", "Wait until the jobs ended; exit 0 when all are Done, 1 otherwise.")
    wait.add_argument("jobs", nargs="+")
    wait.add_argument("--timeout", type=float, default=None, help="seconds (exit 1 when reached)")
    cancel = parsers["cancel"] = command("cancel", "Cancel a Pending job, or stop a Running one (SIGTERM, then "
                                                   "SIGKILL after the grace period).")
    cancel.add_argument("job")
    cancel.add_argument("--grace", type=float, default=10.0, help="seconds between SIGTERM and SIGKILL (10)")
    retry = parsers["retry"] = command("retry", "Queue an Error / Canceled job again, with the children that "
                                                "failed because of it; a train job resumes from its checkpoint.")
    retry.add_argument("job")
    config = parsers["config"] = command("config", "Show or change the workspace's settings.")
    config.add_argument("--max-concurrent", type=int, default=None, help="jobs running at once")
    return parsers


def _help() -> str:
    body = (__doc__ or "").strip().split("\n", 2)[2]  # the docstring without its title line
    return body.replace("``", "")


def _leading_options(argv: list[str]) -> tuple[dict[str, str], list[str]]:
    """``--workspace DIR`` / ``--db URL`` given before the command."""
    found: dict[str, str] = {}
    argv = list(argv)
    while argv and argv[0].split("=", 1)[0] in ("--workspace", "--db"):
        option = argv.pop(0)
        key, _, value = option.partition("=")
        if not value:
            if not argv:
                raise JobError(f"{key}: expected a value")
            value = argv.pop(0)
        found[key[2:]] = value
    return found, argv


def _wait_and_show(ws: Workspace, ids: list[str]) -> int:
    jobs = ws.wait(ids)
    print(render.table(jobs))
    return 0 if all(j.status == DONE for j in jobs) else 1


def _create(ws: Workspace, args) -> int:
    job = ws.create_job(args.action, args.spec, args.overrides, parent_job_id=args.parent, name=args.name,
                        automl_policy=args.automl_policy if args.action == "train" else None,
                        automl_settings=args.automl_spec)
    print(job.id)
    print(f"{job.action} job {job.short_id} queued in {ws.path}; follow it: mask_grounding_dino jobs logs "
          f"{job.short_id} -f", file=sys.stderr)
    return _wait_and_show(ws, [job.id]) if args.wait else 0


def _chain(ws: Workspace, args) -> int:
    if args.automl_spec:
        raise JobError("--automl-spec: give it to 'jobs create train --automl-policy on' (chain's train job uses "
                       "TAO's AutoML defaults when AutoML is on)")
    jobs = ws.chain(args.spec, args.overrides, name=args.name, automl_policy=args.automl_policy)
    print(render.table(list(jobs.values())))
    return _wait_and_show(ws, [j.id for j in jobs.values()]) if args.wait else 0


def _list(ws: Workspace, args) -> int:
    jobs = ws.list_jobs(status=args.status, action=args.action)
    if args.json:
        for job in jobs:
            print(json.dumps(job.to_dict(), default=str))
    else:
        print(render.table(jobs))
    return 0


def _show(ws: Workspace, args) -> int:
    job = ws.get_job(args.job)
    if args.json:
        print(json.dumps({**job.to_dict(), "events": ws.events(job.id)}, indent=2, default=str))
        return 0
    parent = ws.get_job(job.parent_id, settle=False) if job.parent_id else None
    print(render.page(job, parent, ws.children(job.id), ws.events(job.id)))
    return 0


def _logs(ws: Workspace, args) -> int:
    for chunk in ws.logs(args.job, follow_=args.follow):
        sys.stdout.write(chunk)
        sys.stdout.flush()
    return 0


def _wait(ws: Workspace, args) -> int:
    try:
        jobs = ws.wait(args.jobs, timeout=args.timeout)
    except TimeoutError as exc:
        print(str(exc), file=sys.stderr)
        return 1
    print(render.table(jobs))
    return 0 if all(j.status == DONE for j in jobs) else 1


def _cancel(ws: Workspace, args) -> int:
    job = ws.cancel(args.job, grace=args.grace)
    print(f"{job.label} {job.status}" + (f": {job.reason}" if job.reason else ""))
    return 0


def _retry(ws: Workspace, args) -> int:
    for job in ws.retry(args.job):
        print(f"{job.label} {job.status}")
    return 0


def _config(ws: Workspace, args) -> int:
    if args.max_concurrent is not None:
        ws.set_max_concurrent(args.max_concurrent)
    print(f"workspace       {ws.path}\ndatabase        {ws.database_url}\nmax_concurrent  {ws.max_concurrent}")
    return 0


_HANDLERS = {"create": _create, "chain": _chain, "list": _list, "show": _show, "logs": _logs, "wait": _wait,
             "cancel": _cancel, "retry": _retry, "config": _config}


def run_jobs(argv: list[str]) -> int:
    leading, argv = _leading_options(argv)
    if not argv or argv[0] in ("-h", "--help"):
        print("usage: mask_grounding_dino jobs <command> ...\n\n" + _help())
        return 0 if argv else 2
    parsers = build_parsers()
    name = argv[0]
    if name not in parsers:
        close = difflib.get_close_matches(name, COMMANDS, n=1)
        hint = f"did you mean {close[0]}?" if close else f"commands: {', '.join(COMMANDS)}"
        raise JobError(f"unknown jobs command {name!r}; {hint}")
    args = parsers[name].parse_intermixed_args(argv[1:])
    ws = Workspace(args.workspace or leading.get("workspace"), database_url=args.db or leading.get("db"))
    return _HANDLERS[name](ws, args)
