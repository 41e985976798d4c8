"""Command line: ``mask_grounding_dino <action> -e spec.yaml [key=value ...]`` and helpers.

Commands:
  train | evaluate | inference | export | quantize | gen_trt_engine
      -e SPEC [key=value ...] [--print-spec]: load and validate the spec, then run
      ``mask_grounding_dino.actions.<action>.run(cfg)``.
  dataset <tool> ...   tools found in ``mask_grounding_dino.data.tools`` (validate, convert, ...).
  schemas [--out DIR] [--check]   write or check schemas/ and references/.
  automl -e SPEC [--automl-spec FILE] [key=value ...]   AutoML (actions/automl.py).

A user's mistake (``UserError``) prints one ``error: ...`` line per problem and exits 2;
Ctrl-C exits 130. Anything else is a bug and shows its traceback.
"""

from __future__ import annotations

import argparse
import ast
import difflib
import importlib
import os
import pkgutil
import sys

from . import __version__
from .cli_help import action_description, action_epilog, action_help, action_summary, module_tree
from .errors import UserError

ACTIONS = ("train", "evaluate", "inference", "export", "quantize", "gen_trt_engine")
TOOLS_PACKAGE = "mask_grounding_dino.data.tools"
_COMMANDS = ACTIONS + ("dataset", "schemas", "quickstart", "jobs", "automl")


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``mask_grounding_dino`` console script; returns the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    from .utils.log import enable_console
    enable_console()  # the package logs; on the command line its INFO lines and warnings are shown
    try:
        return _dispatch(argv)
    except UserError as exc:
        for line in exc.problems:
            print(f"error: {line}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader went away (``... | head``): stop quietly, as Unix tools do. Point stdout at
        # devnull so the interpreter's final flush cannot raise again.
        devnull = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(devnull, sys.stdout.fileno())
        except (OSError, ValueError, AttributeError):   # stdout without a descriptor (a test's capture)
            pass
        return 128 + 13   # the shell's code for a process ended by SIGPIPE


def _dispatch(argv: list[str]) -> int:
    if not argv or argv[0] in ("-h", "--help"):
        print(_top_help())
        return 0 if argv else 2
    if argv[0] == "--version":
        print(f"mask_grounding_dino {__version__}")
        return 0
    command, rest = argv[0], argv[1:]
    if command in ACTIONS:
        return run_action(command, rest)
    if command == "dataset":
        return run_dataset_tool(rest)
    if command == "schemas":
        return run_schemas(rest)
    if command == "quickstart":
        return run_quickstart(rest)
    if command == "jobs":
        from .jobs.cli import run_jobs
        return run_jobs(rest)
    if command == "automl":
        from .actions.automl import main as run_automl
        return run_automl(rest)
    close = difflib.get_close_matches(command, _COMMANDS, n=1)
    hint = f"; did you mean {close[0]}?" if close else f"; commands: {', '.join(_COMMANDS)}"
    raise UserError(f"unknown command {command!r}{hint}")


def _top_help() -> str:
    width = max(len(action) for action in ACTIONS)
    lines = [f"  {action:{width}s}  {action_summary(action)}" for action in ACTIONS]
    return (f"usage: mask_grounding_dino <command> ...  (version {__version__})\n\n"
            "actions (each: -e SPEC [key=value ...] [--print-spec]; <action> --help: its keys and examples):\n"
            + "\n".join(lines) + "\n"
            "other commands:\n  dataset <tool> ...     data tools (mask_grounding_dino dataset --help)\n"
            "  schemas [--out DIR] [--check]   write or check schemas/ and references/\n"
            "  quickstart [--out DIR]   the whole workflow on the built-in dataset, on a CPU\n"
            "  jobs <command> ...     create, chain, watch, cancel and retry runs (mask_grounding_dino jobs --help)\n"
            "  automl -e SPEC [--automl-spec FILE] [key=value ...]   hyperparameter search (automl --help)\n"
            "  --version")


# -- actions ------------------------------------------------------------------------------------
def _action_parser(action: str) -> argparse.ArgumentParser:
    found = action_help(action)
    parser = argparse.ArgumentParser(
        prog=f"mask_grounding_dino {action}", formatter_class=argparse.RawDescriptionHelpFormatter,
        description=action_description(action, found), epilog=action_epilog(action, found))
    parser.add_argument("-e", "--experiment_spec_file", "--experiment-spec", dest="spec", default=None,
                        help="YAML spec file (optional when overrides give everything)")
    parser.add_argument("--print-spec", action="store_true",
                        help="print the fully resolved spec as YAML and exit")
    parser.add_argument("overrides", nargs="*", metavar="key=value",
                        help="spec overrides, e.g. train.num_epochs=3 dataset.augmentation.scales=[320,352]; "
                             "quote values with spaces: key='a b'")
    return parser


def run_action(action: str, argv: list[str]) -> int:
    args = _action_parser(action).parse_intermixed_args(argv)
    from .actions.folders import command_line_wins, folders_comment
    from .config.loader import dump_spec, load_spec_with_origins
    from .utils.log import process_rank

    cfg, origins = load_spec_with_origins(args.spec, args.overrides)
    notice = command_line_wins(cfg, origins, action)
    if args.print_spec:  # comments first: the output stays a loadable spec
        sys.stdout.write(folders_comment(cfg, action, notice) + dump_spec(cfg))
        return 0
    if notice and process_rank() == 0:  # Lightning's DDP re-runs this command line on every rank
        print(notice)
    module_name = f"mask_grounding_dino.actions.{action}"
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name not in (module_name, "mask_grounding_dino.actions"):
            raise
        raise UserError(f"action {action} is not available in this version") from None
    result = module.run(cfg)
    return 0 if result is None else int(result)


# -- dataset tools ------------------------------------------------------------------------------
def dataset_tools() -> dict[str, str]:
    """Tool name -> first line of its module docstring, read without importing the tool."""
    try:
        package = importlib.import_module(TOOLS_PACKAGE)
    except ModuleNotFoundError as exc:
        if exc.name and TOOLS_PACKAGE.startswith(exc.name):
            return {}
        raise
    tools = {}
    for info in pkgutil.iter_modules(package.__path__):
        if info.name.startswith("_"):
            continue
        tree = module_tree(f"{TOOLS_PACKAGE}.{info.name}")
        doc = (ast.get_docstring(tree) or "") if tree is not None else ""
        tools[info.name] = doc.strip().splitlines()[0] if doc.strip() else ""
    return dict(sorted(tools.items()))


def _tools_help(tools: dict[str, str]) -> str:
    if not tools:
        return "usage: mask_grounding_dino dataset <tool> ...\n\nno dataset tools in this version"
    width = max(len(name) for name in tools)
    lines = [f"  {name:{width}s}  {doc}" for name, doc in tools.items()]
    return "usage: mask_grounding_dino dataset <tool> ...\n\ntools:\n" + "\n".join(lines)


def run_dataset_tool(argv: list[str]) -> int:
    tools = dataset_tools()
    if not argv or argv[0] in ("-h", "--help"):
        print(_tools_help(tools))
        return 0 if argv else 2
    name, rest = argv[0], argv[1:]
    if name not in tools:
        if not tools:
            raise UserError(f"dataset tool {name!r} is not available in this version (no dataset tools yet)")
        close = difflib.get_close_matches(name, list(tools), n=1)
        hint = f"did you mean {close[0]}?" if close else f"available: {', '.join(tools)}"
        raise UserError(f"unknown dataset tool {name!r}; {hint}")
    module = importlib.import_module(f"{TOOLS_PACKAGE}.{name}")
    doc = (module.__doc__ or "").strip()
    parser = argparse.ArgumentParser(prog=f"mask_grounding_dino dataset {name}", description=doc or None,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    module.add_arguments(parser)
    result = module.run(parser.parse_args(rest))
    return 0 if result is None else int(result)


# -- quickstart ---------------------------------------------------------------------------------
def run_quickstart(argv: list[str]) -> int:
    from .actions import quickstart

    parser = argparse.ArgumentParser(prog="mask_grounding_dino quickstart",
                                     description=(quickstart.__doc__ or "").strip(),
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    quickstart.add_arguments(parser)
    return quickstart.run_quickstart(parser.parse_intermixed_args(argv))


# -- schemas ------------------------------------------------------------------------------------
def run_schemas(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="mask_grounding_dino schemas",
        description="Generate schemas/<action>.schema.json, schemas/manifest.json, "
                    "references/spec_template_<action>.yaml and references/skill_info.yaml from the spec "
                    "dataclasses.")
    parser.add_argument("--out", default=".", help="folder that receives schemas/ and references/ (default: .)")
    parser.add_argument("--check", action="store_true",
                        help="write nothing; exit 1 if any generated file is missing or out of date")
    args = parser.parse_args(argv)
    from .config.artifacts import stale_artifacts, write_artifacts

    if args.check:
        stale = stale_artifacts(args.out)
        if stale:
            print(f"stale generated files under {args.out}: {', '.join(stale)}\n"
                  f"regenerate with: mask_grounding_dino schemas --out {args.out}", file=sys.stderr)
            return 1
        print(f"generated files under {args.out} are up to date")
        return 0
    written = write_artifacts(args.out)
    print(f"wrote {len(written)} files under {args.out}")
    return 0


if __name__ == "__main__":   # python -m mask_grounding_dino.cli works like python -m mask_grounding_dino
    raise SystemExit(main())
