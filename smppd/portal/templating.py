"""Templates: jinja2 with autoescaping on for every template (whatever its name),
the i18n extension bound to the page's language, and a few filters. One
Environment per language, made once: installing translations is per environment,
and two fixed ones are cheaper than installing per request."""

from __future__ import annotations

from functools import cache
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined, pass_context

from . import i18n


@cache
def environment(locale: str) -> Environment:
    env = Environment(loader=PackageLoader("smppd.portal", "templates"), autoescape=True,
                      extensions=["jinja2.ext.i18n"], undefined=StrictUndefined,
                      trim_blocks=True, lstrip_blocks=True)
    env.install_gettext_translations(i18n.translations(locale), newstyle=True)  # type: ignore
    env.filters["when"] = pass_context(
        lambda context, value, style="short": i18n.when(value, locale, style,
                                                        context.get("ZONE")))
    env.filters["num"] = lambda value: i18n.number(value, locale)
    env.globals["LOCALE"] = locale
    env.globals["LOCALE_NAMES"] = i18n.NAMES
    return env


def render(locale: str, name: str, context: dict[str, Any]) -> bytes:
    return environment(locale).get_template(name).render(context).encode("utf-8")
