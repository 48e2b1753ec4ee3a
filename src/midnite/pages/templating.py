"""The pages' one Jinja2 environment: templates from the package, autoescaping, shared filters.

Every HTML page of midnite is ``render(template, **context)``: the templates in
``midnite/pages/templates`` extend ``base.html`` (one stylesheet, ``static/midnite.css``), and
the CSS and JS of ``midnite/pages/static`` are inlined into each page (``static(name)``), so a
page works from ``file://`` with no server and nothing beside it but the files it shows.
Values from records are escaped by the engine; nothing from data is marked safe.
"""

from __future__ import annotations

import functools
import html
import json
import math
from importlib import resources
from urllib.parse import quote

import jinja2
from markupsafe import Markup

from midnite.errors import UsageError

__all__ = ["environment", "fmt", "json_script", "render", "share", "static", "url"]


def share(value: object) -> str:
    """A fraction (a score, an interval's end) with two decimals; ``n/a`` for anything else."""
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        return f"{value:.2f}"
    return "n/a"


def fmt(value: object) -> str:
    """A number as pages show it (4 significant digits); ``n/a`` for anything else or non-finite."""
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        return f"{value:.4g}"
    return "n/a"


def url(path: object) -> str:
    """A relative URL of a file name or relative path (``/`` kept, everything else quoted)."""
    return quote(str(path))


def json_script(value: object) -> Markup:
    """``value`` as JSON safe in ``<script>``: ``<``, ``>``, ``&``, U+2028/9 as ``\\u`` escapes."""
    text = json.dumps(value, ensure_ascii=False, allow_nan=False)
    for char in "<>&\u2028\u2029":
        text = text.replace(char, f"\\u{ord(char):04x}")
    return Markup(text)


@functools.cache
def static(name: str) -> Markup:
    """The text of ``midnite/pages/static/<name>`` (the package's own CSS or JS), to inline."""
    folder = resources.files("midnite.pages") / "static"
    names = sorted(p.name for p in folder.iterdir() if p.is_file())
    if name not in names:
        raise UsageError(f"no static file {name!r} in midnite.pages; there are {names}")
    return Markup((folder / name).read_text(encoding="utf-8"))


def _escape(value: object) -> Markup:
    """Every ``{{ value }}``: HTML-escaped like ``html.escape`` (``&quot;``, ``&#x27;``)."""
    return value if isinstance(value, Markup) else Markup(html.escape(str(value)))


@functools.cache
def environment() -> jinja2.Environment:
    """The pages' Environment: package templates, autoescaping, strict undefined, the filters."""
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("midnite.pages", "templates"),
        autoescape=jinja2.select_autoescape(default_for_string=True, default=True),
        undefined=jinja2.StrictUndefined,
        finalize=_escape,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(fmt=fmt, share=share, url=url, json_script=json_script)
    env.globals.update(static=static)
    return env


def render(template: str, **context: object) -> str:
    """The HTML of the page template ``template`` (a file in ``midnite/pages/templates``)."""
    try:
        page = environment().get_template(template)
    except jinja2.TemplateNotFound:
        names = environment().list_templates()
        raise UsageError(f"no page template {template!r}; there are {names}") from None
    return page.render(**context)
