"""Templates: each digest in words, per channel, from sandboxed Jinja2 templates.

Layout. A rule's ``template = "NAME"`` means one file per medium it sends on, looked up first
in the config's ``templates`` directory (relative to the config file) and then among the
built-ins (``default`` and ``contact``, in ``templates/builtin``)::

    NAME.email.j2   blocks "subject" (one line), "text" (plain text), "html" (autoescaped;
                    it may use ``subject``, the rendered subject line)
    NAME.sms.j2     the whole file is the message
    NAME.inapp.j2   blocks "title" (one line), "body" (plain text)

Webhook channels send the digest as JSON and need no template. An email or in-app file may
``{% extends "default.email.j2" %}`` and override only some blocks (``super()`` works). Each
block is rendered on its own, so nothing but blocks may stand at a file's top level: put an
``{% import %}`` or ``{% set %}`` inside the block that uses it.

The HTML block is compiled with autoescaping on and every other part with it off, so one file
gives safe HTML and unescaped text. What a template can use is described in
``tidings.templates.context``, plus ``preferences_url`` (the recipient's signed link to their
preferences, or ``None``: see ``template_set``); the filters ``date``, ``datetime`` and
``value`` format raw values the way fields are formatted (``{{ "2025-08-06"|date }}`` is
``6 August 2025``).

Start-up: ``TemplateSet.load(config, base_dir)`` compiles every template the rules use and
renders it on sample changes, raising one ``ConfigError`` that names every broken file and
line. Per digest: ``digest_context(...)`` then ``TemplateSet.render(name, medium, context)``.
``render_preview`` renders a template on sample data for ``tidings render TEMPLATE``.
"""

from tidings.errors import TemplateRenderError
from tidings.templates.context import (
    ChangeView,
    ContextBuilder,
    DigestContext,
    FieldView,
    Recipient,
    RecordView,
    digest_context,
)
from tidings.templates.sample import render_preview, sample_items
from tidings.templates.sms import SmsLength, sms_length
from tidings.templates.template_set import Rendered, TemplateSet, template_file

__all__ = [
    "ChangeView",
    "ContextBuilder",
    "DigestContext",
    "FieldView",
    "Recipient",
    "RecordView",
    "Rendered",
    "SmsLength",
    "TemplateRenderError",
    "TemplateSet",
    "digest_context",
    "render_preview",
    "sample_items",
    "sms_length",
    "template_file",
]
