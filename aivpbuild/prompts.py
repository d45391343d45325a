"""Prompt templates: jinja2 in a sandbox, strict about undefined names.

A prompt is rendered against the manifest's ``context`` (plain values, plus character and
scene sheets when ``context.characters`` / ``context.scenes`` name globs). The rendered text
is what the key covers, so editing a sheet rebuilds exactly the clips whose prompts changed.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from functools import cache
from typing import Any

from aivpbuild.errors import TemplateError

_SPACE_RUN = re.compile(r"[ \t\u3000]+")


def normalise_prompt(text: str) -> str:
    """Prompt as sent: lines stripped, runs of spaces collapsed, blank lines dropped."""
    lines = (_SPACE_RUN.sub(" ", line).strip() for line in text.splitlines())
    return "\n".join(line for line in lines if line)


def prompt_identity(text: str) -> str:
    """Prompt as keyed: all whitespace collapsed, so reflowing a prompt changes nothing."""
    return " ".join(text.split())


@cache
def _environment() -> Any:
    from jinja2 import StrictUndefined
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    return ImmutableSandboxedEnvironment(undefined=StrictUndefined, autoescape=False)


def render_prompt(template: str, context: Mapping[str, Any], *, clip_id: str, field: str = "prompt") -> str:
    """Render one clip's prompt; any template problem is a TemplateError naming the clip."""
    if "{" not in template:  # plain text: skip jinja entirely (most prompts, and fast)
        return normalise_prompt(template)
    import jinja2
    from jinja2.exceptions import SecurityError

    where = f"clips.{clip_id}.{field}"
    try:
        rendered = _environment().from_string(template).render(**context)
    except jinja2.UndefinedError as exc:
        known = ", ".join(sorted(context)) or "nothing (the manifest has no `context:`)"
        raise TemplateError(
            f"{where}: template uses an undefined name: {exc.message}",
            hint=f"define it under `context:` in the manifest; the context has: {known}",
        ) from None
    except SecurityError as exc:
        raise TemplateError(
            f"{where}: template tried an unsafe operation ({exc}); prompts may only read "
            "context values",
            hint="remove the expression; use {{ name }} or {{ characters.x.anchor }}",
        ) from None
    except jinja2.TemplateSyntaxError as exc:
        raise TemplateError(
            f"{where}: template syntax error on line {exc.lineno}: {exc.message}",
            hint="to write literal braces use {{ '{{' }} or wrap text in {% raw %}…{% endraw %}",
        ) from None
    except jinja2.TemplateError as exc:
        raise TemplateError(f"{where}: template error: {exc}") from None
    return normalise_prompt(rendered)
