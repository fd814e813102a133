"""``TemplateSet``: every template a config uses, compiled and tried once at start-up.

``TemplateSet.load`` finds, compiles and renders on sample data each template that a rule
(or a rule's contacts) sends on each medium of its channels, and reports every problem in one
``ConfigError`` naming the rule's key and the template file and line. After that,
``render`` only runs precompiled code: no file is read and nothing is parsed per digest.

Besides the context's variables, every template gets ``preferences_url``: the recipient's
signed link to their preferences when ``[links] preferences_url`` is configured, else
``None`` (so ``{% if preferences_url %}`` keeps a template's wording without it).
"""

from __future__ import annotations

import logging
import os
import re
import traceback
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, NamedTuple, TypeAlias

from jinja2 import Template, TemplateError, TemplateNotFound, TemplateSyntaxError, nodes
from jinja2.runtime import Context

from tidings.config import Config, Medium
from tidings.errors import ConfigError, TemplateRenderError
from tidings.links import Links, links_from
from tidings.templates.context import ContextBuilder, DigestContext, TemplateContext
from tidings.templates.environment import BUILTIN_DIR, Sandbox, make_environments
from tidings.templates.formatting import ValueFormatter
from tidings.templates.sms import SmsLength, sms_length

log = logging.getLogger(__name__)

PARTS: Mapping[Medium, tuple[str, ...]] = {
    "email": ("subject", "text", "html"),
    "sms": (),  # the whole file is the message
    "inapp": ("title", "body"),
    "webhook": (),
}

_TRAILING_SPACE = re.compile(r"[ \t]+(?=\n)")
_BLANK_LINES = re.compile(r"\n{3,}")


class _Problem(Exception):
    """A template that cannot be used; ``reason`` names the file and line."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Rendered:
    """One digest rendered for one medium; parts the medium lacks are ``None``."""

    subject: str | None = None
    text: str | None = None
    html: str | None = None
    title: str | None = None
    body: str | None = None
    sms: SmsLength | None = None

    @property
    def warnings(self) -> tuple[str, ...]:
        warning = self.sms.warning if self.sms else None
        return (warning,) if warning else ()


def template_file(name: str, medium: Medium) -> str:
    return f"{name}.{medium}.j2"


def _line(text: str) -> str:
    # A subject or title is one line: a newline in an email subject would be a header break.
    return " ".join(text.split())


def _tidy(text: str) -> str:
    # The substring tests are much cheaper than the regexes, and usually false.
    if " \n" in text or "\t\n" in text:
        text = _TRAILING_SPACE.sub("", text)
    if "\n\n\n" in text:
        text = _BLANK_LINES.sub("\n\n", text)
    return text.strip()


BlockRender = Callable[[Context], Iterator[str]]


@dataclass(frozen=True, slots=True)
class _Blocks:
    """A template rendered block by block, with its ``{% extends %}`` chain resolved so a
    block the file does not override comes from its parent (and ``super()`` works)."""

    template: Template
    stacks: dict[str, list[BlockRender]]
    globals: dict[str, Any]

    def render(self, names: tuple[str, ...], variables: dict[str, Any]) -> list[str]:
        template = self.template
        # What Template.new_context does, minus copying the globals' ChainMap every time.
        ctx = Context(template.environment, {**self.globals, **variables}, template.name, {})
        ctx.blocks = self.stacks  # only a full render appends to these; rendering blocks reads
        try:
            return ["".join(self.stacks[name][0](ctx)) for name in names]
        except Exception:
            self.template.environment.handle_exception()  # re-raises with template lines
            raise  # pragma: no cover - handle_exception always raises


@dataclass(frozen=True, slots=True)
class _Email:
    text: _Blocks  # compiled without autoescape: subject and text
    html: _Blocks  # the same file compiled with autoescape

    def render(self, variables: dict[str, Any]) -> Rendered:
        subject, text = self.text.render(("subject", "text"), variables)
        subject = _line(subject)
        # The HTML gets the finished subject (for <title>), rather than rendering it again.
        (html,) = self.html.render(("html",), {**variables, "subject": subject})
        return Rendered(subject=subject, text=_tidy(text), html=html.strip())


@dataclass(frozen=True, slots=True)
class _InApp:
    blocks: _Blocks

    def render(self, variables: dict[str, Any]) -> Rendered:
        title, body = self.blocks.render(("title", "body"), variables)
        return Rendered(title=_line(title), body=_tidy(body))


@dataclass(frozen=True, slots=True)
class _Sms:
    template: Template

    def render(self, variables: dict[str, Any]) -> Rendered:
        message = _tidy(self.template.render(variables))
        return Rendered(text=message, sms=sms_length(message))


_Compiled: TypeAlias = _Email | _InApp | _Sms


class TemplateSet:
    """The templates of one config, compiled once. Build with ``TemplateSet.load``."""

    def __init__(
        self, config: Config, search_path: tuple[Path, ...], links: Links | None = None
    ) -> None:
        self.config = config
        self.links = links
        self.contexts = ContextBuilder(config)
        self.envs = make_environments(search_path, ValueFormatter(config))
        self._compiled: dict[tuple[str, Medium], _Compiled | _Problem] = {}

    @classmethod
    def load(
        cls,
        config: Config,
        base_dir: Path | None = None,
        *,
        path: str | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> TemplateSet:
        """Compile and try every template the config's rules use; raise one ``ConfigError``
        listing every problem (``path`` is the config file, for the message). ``environ``
        (default ``os.environ``) holds the links' signing secret."""
        problems: list[tuple[str, str]] = []
        links = None
        try:
            links = links_from(config.links, os.environ if environ is None else environ)
        except ConfigError as exc:
            problems.extend(exc.problems)
        search = [BUILTIN_DIR.resolve()]
        if config.templates:
            folder = Path(config.templates)
            if not folder.is_absolute():
                folder = (base_dir or Path.cwd()) / folder
            if folder.is_dir():
                search.insert(0, folder.resolve())
            else:
                problems.append(("templates", f"{folder} is not a directory of templates"))
        templates = cls(config, tuple(search), links)
        tried: dict[tuple[str, Medium, Sample], str | None] = {}
        for key, name, medium, sample in _uses(config):
            use = (name, medium, sample)
            if use not in tried:
                tried[use] = templates._try(name, medium, sample)
            reason = tried[use]
            if reason is not None:
                problems.append((key, reason))
        if problems:
            raise ConfigError(problems, path)
        return templates

    def render(self, name: str, medium: Medium, context: TemplateContext) -> Rendered:
        """Render template ``name`` for ``medium``; ``TemplateRenderError`` names file and line."""
        compiled = self._compiled.get((name, medium))
        if compiled is None or isinstance(compiled, _Problem):
            compiled = self._compile(name, medium)
        try:
            return compiled.render(self._variables(context))
        except Exception as exc:
            # Real data: say where, but not the exception's own text, which may quote values.
            raise TemplateRenderError(self._reason(exc, quote=False)) from exc

    def _variables(self, context: TemplateContext) -> dict[str, Any]:
        variables = context.variables()
        links = self.links
        # Signed per recipient here, not in the context, so every kind of notice gets it.
        variables["preferences_url"] = (
            links.preferences(context.recipient.id) if links is not None else None
        )
        return variables

    def context(self, **kwargs: Any) -> DigestContext:
        """``ContextBuilder.build`` for this config (see ``digest_context``)."""
        return self.contexts.build(**kwargs)

    # --- compiling ------------------------------------------------------------------------

    def _compile(self, name: str, medium: Medium) -> _Compiled:
        """The compiled template, or ``ConfigError`` (it is compiled once, then cached)."""
        compiled = self._compiled.get((name, medium))
        if compiled is None:
            try:
                compiled = self._build(name, medium)
            except _Problem as problem:
                compiled = problem
            self._compiled[name, medium] = compiled
        if isinstance(compiled, _Problem):
            raise ConfigError([(f"templates.{name}", compiled.reason)])
        return compiled

    def _build(self, name: str, medium: Medium) -> _Compiled:
        if medium == "webhook":
            raise _Problem("webhook channels send the digest as JSON and use no template")
        file = template_file(name, medium)
        if medium == "sms":
            return _Sms(self._get(self.envs.text, file))
        if medium == "inapp":
            return _InApp(self._blocks(self.envs.text, file, PARTS[medium]))
        text = self._blocks(self.envs.text, file, PARTS[medium])
        return _Email(text, self._blocks(self.envs.html, file, ("html",)))

    def _get(self, env: Sandbox, file: str, child: str | None = None) -> Template:
        try:
            return env.get_template(file)
        except TemplateNotFound as exc:
            where = " or ".join(self.envs.display_root(root) for root in self.envs.search_path)
            missing = f"there is no template {exc.name} (looked in {where})"
            raise _Problem(f"{child} extends {exc.name}: {missing}" if child else missing) from None
        except TemplateSyntaxError as exc:
            raise _Problem(self._reason(exc)) from None

    def _blocks(self, env: Sandbox, file: str, required: tuple[str, ...]) -> _Blocks:
        chain = self._chain(env, file)
        stacks: dict[str, list[BlockRender]] = {}
        for template in chain:  # child first, so index 0 is the overriding block
            for block, render in template.blocks.items():
                stacks.setdefault(block, []).append(render)
        missing = [block for block in required if block not in stacks]
        if missing:
            wanted = ", ".join("{% block " + block + " %}" for block in missing)
            raise _Problem(f"{file} has no {wanted}; a {file.split('.')[-2]} template needs one")
        return _Blocks(chain[0], stacks, dict(chain[0].globals))

    def _chain(self, env: Sandbox, file: str) -> list[Template]:
        """``file`` and the templates it extends, child first."""
        chain = [self._get(env, file)]
        parent = self._parent(env, chain[0])
        while parent is not None:
            if any(t.name == parent for t in chain):
                raise _Problem(f"{file} extends itself (through {parent})")
            chain.append(self._get(env, parent, chain[-1].name))
            parent = self._parent(env, chain[-1])
        return chain

    def _parent(self, env: Sandbox, template: Template) -> str | None:
        """The template ``template`` extends, checking that nothing stands outside blocks:
        parts are rendered block by block, so top-level statements would never run."""
        name = template.name or ""
        assert env.loader is not None
        source, filename, _ = env.loader.get_source(env, name)
        shown = self.envs.display_name(filename, name)
        parent = None
        for node in env.parse(source, name, filename).body:
            if isinstance(node, nodes.Extends):
                if not isinstance(node.template, nodes.Const):
                    raise _Problem(f"{shown} line {node.lineno}: extend a template by its name")
                parent = str(node.template.value)
            elif isinstance(node, nodes.Output) and all(
                isinstance(n, nodes.TemplateData) and not n.data.strip() for n in node.nodes
            ):
                continue
            elif not isinstance(node, nodes.Block):
                raise _Problem(
                    f"{shown} line {node.lineno}: only blocks may stand at the top level of an "
                    "email or in-app template; put imports and sets inside the block using them"
                )
        return parent

    # --- trying on sample data ------------------------------------------------------------

    def _try(self, name: str, medium: Medium, sample: Sample) -> str | None:
        """``None`` if the template compiles and renders ``sample`` data (changes of its
        entity; a reminder of its date field; a managers' digest of its report), else the
        reason it does not."""
        from tidings.templates.sample import (  # sample renders through us
            sample_context,
            sample_manager_digest_context,
            sample_reminder_context,
        )

        try:
            compiled = self._compile(name, medium)
        except ConfigError as exc:
            return exc.problems[0][1]
        context: TemplateContext
        if sample.kind == "reminder":
            context = sample_reminder_context(self.contexts, sample.entity, sample.detail, medium)
        elif sample.kind == "report":
            context = sample_manager_digest_context(self.contexts, sample.detail, medium)
        else:
            context = sample_context(self.contexts, sample.entity, medium)
        try:
            rendered = compiled.render(self._variables(context))
        except Exception as exc:  # any failure here is the template's: report, don't crash
            return self._reason(exc)
        if rendered.sms and rendered.sms.warning:
            log.warning(
                "template %s on sample data: %s", template_file(name, medium), rendered.sms.warning
            )
        return None

    def _reason(self, exc: BaseException, *, quote: bool = True) -> str:
        """``file line N: message`` for a template failure; ``quote=False`` leaves out the
        text of errors that are not Jinja's own."""
        if isinstance(exc, TemplateSyntaxError):
            shown = self.envs.display_name(exc.filename, exc.name)
            return f"{shown} line {exc.lineno}: {exc.message}"
        if isinstance(exc, TemplateNotFound):
            message = f"there is no template {exc.name}"
        elif isinstance(exc, TemplateError):
            message = exc.message or type(exc).__name__
        else:
            message = f"{type(exc).__name__}: {exc}" if quote and str(exc) else type(exc).__name__
        frames = [
            frame
            for frame in traceback.extract_tb(exc.__traceback__)
            if self.envs.is_template_file(frame.filename)
        ]
        if not frames:
            return message
        frame = frames[-1]
        return f"{self.envs.display_name(frame.filename)} line {frame.lineno}: {message}"


def media_of(config: Config, channels: tuple[str, ...]) -> list[Medium]:
    """The media (email, sms, inapp) the channels named send through, once each, in order."""
    media: list[Medium] = []
    for name in channels:
        channel = config.channels.get(name)
        if channel is not None and channel.medium != "webhook" and channel.medium not in media:
            media.append(channel.medium)
    return media


class Sample(NamedTuple):
    """The sample data a template is tried on: changes of ``entity``, a reminder of its date
    field ``detail``, or a managers' digest of the report ``detail``."""

    kind: Literal["changes", "reminder", "report"]
    entity: str
    detail: str = ""


def _uses(config: Config) -> Iterator[tuple[str, str, Medium, Sample]]:
    """``(key, template, medium, sample)`` for every template a rule, a reminder or a
    report's digest sends with.

    Contacts are reached by email: with no ``channels`` of their own they use the rule's
    email channels.
    """
    for i, rule in enumerate(config.rules):
        if rule.exclude or not rule.template:
            continue
        for medium in media_of(config, rule.channels):
            yield f"rules.{i}.template", rule.template, medium, Sample("changes", rule.entity)
        contacts = rule.contacts
        if contacts is not None:
            channels = contacts.channels or tuple(
                name
                for name in rule.channels
                if name in config.channels and config.channels[name].medium == "email"
            )
            for medium in media_of(config, channels):
                key = f"rules.{i}.contacts.template"
                yield key, contacts.template, medium, Sample("changes", rule.entity)
    for i, reminder in enumerate(config.reminders):
        for medium in media_of(config, reminder.channels):
            key = f"reminders.{i}.template"
            sample = Sample("reminder", reminder.entity, reminder.field)
            yield key, reminder.template, medium, sample
    for i, report in enumerate(config.reports):
        if report.digest is not None:
            for medium in media_of(config, report.digest.channels):
                sample = Sample("report", report.entity, report.name)
                yield f"reports.{i}.digest.template", report.digest.template, medium, sample
