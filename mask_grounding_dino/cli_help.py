"""What ``mask_grounding_dino --help`` and ``<action> --help`` show.

Each action module keeps its own help next to its code: a literal ``HELP`` dict
(``summary`` for the action list, ``description``, ``keys``: (key, what) pairs, ``examples``:
whole commands). It is read from the module's source with ``ast``, so help never imports
torch, and an action without a module is reported as not available in this version.
"""

from __future__ import annotations

import ast
import importlib.util
import re
import shlex
import sys
import textwrap

#: How much of a help line fits a terminal, and the indent of continued example lines.
_HELP_WIDTH, _CONTINUED = 100, "      "


def module_tree(module_name: str) -> ast.Module | None:
    """The parsed source of a module, found without importing it (None when there is none)."""
    try:
        spec = importlib.util.find_spec(module_name)
    except (ModuleNotFoundError, ValueError):      # no parent package; a module built in memory
        return None
    if spec is None or not spec.origin or not spec.origin.endswith(".py"):
        return None
    with open(spec.origin, encoding="utf-8") as handle:
        return ast.parse(handle.read())


def action_help(action: str) -> dict | None:
    """The ``HELP`` literal of ``mask_grounding_dino/actions/<action>.py``, read from the source so
    ``--help`` never imports torch: ``summary`` (the action list's line), ``description``,
    ``keys`` ((key, what) pairs) and ``examples`` (commands). ``{}`` for a module without one;
    None when this version has no such action."""
    name = f"mask_grounding_dino.actions.{action}"
    if name in sys.modules:                         # already imported: no need to read its source
        return dict(getattr(sys.modules[name], "HELP", {}))
    tree = module_tree(name)
    if tree is None:
        return None
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "HELP" for t in node.targets):
            return ast.literal_eval(node.value)
    return {}


def action_summary(action: str) -> str:
    found = action_help(action)
    if found is None:
        return "not available in this version (its spec section is read and checked)"
    return found.get("summary", "")


_QUOTED = re.compile(r"(?<!\w)'[^']*'(?!\w)|\[[^\]]*\]|\{[^}]*\}")


def fill(text: str, **indents: str) -> str:
    """``textwrap.fill`` that never breaks inside a quoted value, a [list] or a {mapping}."""
    kept = _QUOTED.sub(lambda m: m.group().replace(" ", "\0"), text)
    return textwrap.fill(kept, _HELP_WIDTH, break_on_hyphens=False, **indents).replace("\0", " ")


def _wrap_command(command: str) -> str:
    """A long example as shell lines joined by `` \\``, broken between arguments."""
    words = shlex.split(command)
    lines, line = [], "  "
    for word in words:
        shown = shlex.quote(word) if "=" not in word else _quote_value(word)
        if line.strip() and len(line) + 1 + len(shown) > _HELP_WIDTH - 2:
            lines.append(line + " \\")
            line = _CONTINUED
        line += ("" if not line.strip() else " ") + shown
    return "\n".join(lines + [line])


def _quote_value(word: str) -> str:
    """``key=value`` with only the value quoted, as people type it: ``key='a b'``."""
    key, _, value = word.partition("=")
    return f"{key}={shlex.quote(value)}" if value else word


def action_epilog(action: str, found: dict | None) -> str:
    template, schema = f"references/spec_template_{action}.yaml", f"schemas/{action}.schema.json"
    width = max(len(template), len(schema), len("--print-spec"))
    files = ("spec files (in the repository; `mask_grounding_dino schemas --out DIR` writes them anywhere):\n"
             f"  {template:{width}s}  every key with TAO's default: copy it, edit it, pass it with -e\n"
             f"  {schema:{width}s}  the type, bounds and options of every key\n"
             f"  {'--print-spec':{width}s}  prints the spec as resolved from -e SPEC and the overrides")
    if found is None:
        return f"{action} is not available in this version: the spec is read and checked, nothing runs.\n\n{files}"
    parts = []
    keys = found.get("keys", [])
    if keys:
        width = max(len(key) for key, _ in keys)
        indent = " " * (width + 4)
        rows = [fill(what, initial_indent=f"  {key:{width}s}  ", subsequent_indent=indent) for key, what in keys]
        parts.append("important keys:\n" + "\n".join(rows))
    examples = found.get("examples", [])
    if examples:
        parts.append("examples:\n" + "\n".join(_wrap_command(command) for command in examples))
    parts.append(files)
    return "\n\n".join(parts)


def action_description(action: str, found: dict | None) -> str:
    """The text under ``usage:`` of ``<action> --help``."""
    if found is None:
        return f"{action}: not available in this version."
    return fill(found.get("description", f"Run the {action} action on an experiment spec.") +
                " Keys not given keep TAO's defaults.")
