"""The pages floor: every HTML page of midnite, from Jinja2 templates with one look.

``gallery`` (the page of a ``midnite render`` folder) and ``catalogue`` (the pages of a
``midnite catalogue`` folder) render ``templates/*.html`` through ``render`` (one Environment,
autoescaping, one value formatter), with ``static/midnite.css`` and the scripts inlined so pages
work from ``file://``. Pages read files through ``midnite.records`` and ``midnite.store``; they
write only HTML.
"""

from midnite.pages import catalogue, gallery
from midnite.pages.templating import fmt, json_script, render, url

__all__ = ["catalogue", "fmt", "gallery", "json_script", "render", "url"]
