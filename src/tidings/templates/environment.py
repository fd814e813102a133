"""The two sandboxed Jinja2 environments templates are compiled in.

Both share one loader (the config's template directory first, then the built-ins) and the
filters ``date``, ``datetime`` and ``value``. They differ only in autoescaping: the HTML part of
an email is compiled with autoescape on, every other part with it off, so the same file gives
escaped HTML and unescaped plain text without the author marking anything.

``ImmutableSandboxedEnvironment`` refuses underscore attributes (``''.__class__``) and methods
that mutate lists and dicts, so a template cannot reach Python internals or alter the data it
is given. ``StrictUndefined`` makes a misspelt name an error at start-up rather than a blank
in thousands of messages.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jinja2 import FileSystemLoader, StrictUndefined, Undefined
from jinja2.sandbox import ImmutableSandboxedEnvironment

from tidings.templates.context import VIEW_FIELDS
from tidings.templates.formatting import ValueFormatter

BUILTIN_DIR = Path(__file__).parent / "builtin"


class Sandbox(ImmutableSandboxedEnvironment):
    """The immutable sandbox, with a fast path for reading a field of our own views.

    The sandbox vets every attribute a template reads (a dozen type checks each), which made
    it most of the cost of a digest. The views are frozen dataclasses of strings and views,
    so reading one of their declared fields is safe without those checks; anything else
    (other attributes, other objects) still goes through them.
    """

    def getattr(self, obj: Any, attribute: str) -> Any | Undefined:
        fields = VIEW_FIELDS.get(type(obj))
        if fields is not None and attribute in fields:
            return getattr(obj, attribute)
        return super().getattr(obj, attribute)


@dataclass(frozen=True, slots=True)
class Environments:
    text: Sandbox
    html: Sandbox
    search_path: tuple[Path, ...]

    def display_name(self, filename: str | None, fallback: str | None = None) -> str:
        """A template file as authors know it: its path under the directory it came from."""
        if filename:
            path = Path(filename)
            for root in self.search_path:
                if path.is_relative_to(root):
                    return path.relative_to(root).as_posix()
            return path.name
        return fallback or "(template)"

    def display_root(self, root: Path) -> str:
        return "the built-in templates" if root == BUILTIN_DIR.resolve() else str(root)

    def is_template_file(self, filename: str) -> bool:
        path = Path(filename)
        return any(path.is_relative_to(root) for root in self.search_path)


def make_environments(search_path: tuple[Path, ...], formatter: ValueFormatter) -> Environments:
    loader = FileSystemLoader([str(p) for p in search_path], encoding="utf-8")

    def build(autoescape: bool) -> Sandbox:
        env = Sandbox(
            loader=loader,
            undefined=StrictUndefined,
            autoescape=autoescape,
            trim_blocks=True,
            lstrip_blocks=True,
            # Templates are compiled once at start-up; don't stat files on every import.
            auto_reload=False,
        )
        env.filters["date"] = formatter.date_filter
        env.filters["datetime"] = formatter.datetime_filter
        env.filters["value"] = formatter.value_filter
        return env

    return Environments(build(False), build(True), search_path)
