"""Write docs/api.md, the API reference, from the docstrings of fastinv's public names.

    python tools/api_reference.py          # rewrite docs/api.md
    python tools/api_reference.py --check  # exit 1 if docs/api.md is stale (tests run this)

Public names are those in the ``__all__`` of each module; each gets its signature and the
first paragraph of its docstring, with a pointer to ``help()`` for the rest.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import sys
from pathlib import Path

import fastinv

OUT = Path(__file__).resolve().parent.parent / "docs" / "api.md"


def _summary(obj) -> str:
    doc = inspect.getdoc(obj) or ""
    para = doc.split("\n\n")[0].strip()
    return " ".join(para.split()) or "(no docstring)"


def _signature(name: str, obj) -> str:
    try:
        sig = str(inspect.signature(obj)).replace("'", "")  # postponed annotations are strings
    except (TypeError, ValueError):
        return name
    return f"{name}{sig}" if len(sig) < 110 else f"{name}(...)"


def _modules() -> list[str]:
    names = ["fastinv"] + sorted(
        m.name for m in pkgutil.walk_packages(fastinv.__path__, "fastinv.") if not m.name.split(".")[-1].startswith("_")
    )
    return [n for n in names if hasattr(importlib.import_module(n), "__all__")]


def render() -> str:
    lines = [
        "# API reference",
        "",
        "Generated from the docstrings by `python tools/api_reference.py` (a test fails when this",
        "page is stale). Each entry: signature and summary; `help(name)` in Python shows the",
        "whole docstring with parameters, units and examples. The map of the package is",
        "[architecture.md](architecture.md).",
        "",
    ]
    for modname in _modules():
        mod = importlib.import_module(modname)
        lines += [f"## `{modname}`", "", _summary(mod), ""]
        for name in mod.__all__:
            obj = getattr(mod, name)
            owner = getattr(obj, "__module__", modname) or modname
            if inspect.ismodule(obj):
                lines.append(f"- **`{name}`** (module `{obj.__name__}`)")
                continue
            if not (inspect.isclass(obj) or callable(obj)):
                lines.append(f"- **`{name}`**: constant ({type(obj).__name__})")
                continue
            where = "" if owner == modname else f" (from `{owner}`)"
            lines.append(f"- **`{_signature(name, obj)}`**{where}: {_summary(obj)}")
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def main(argv: list[str]) -> int:
    text = render()
    if "--check" in argv:
        if not OUT.exists() or OUT.read_text() != text:
            print(f"{OUT} is stale: run python tools/api_reference.py", file=sys.stderr)
            return 1
        return 0
    OUT.write_text(text)
    print(f"wrote {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
