"""Each script once per page.

sphinx-thebe (which jupyter-book always loads) adds its inline settings, ``const THEBE_JS_URL
= ...``, after Sphinx's builder has started, and Sphinx 7 then writes them into every page
twice; the second ``const`` is a JavaScript error in the reader's console. This drops the
repeats from each page's script list, keeping the first of each.
"""

from __future__ import annotations

from typing import Any

from sphinx.application import Sphinx


def _drop_repeated_scripts(app: Sphinx, pagename: str, templatename: str,
                           context: dict[str, Any], doctree: Any) -> None:
    seen: set[tuple] = set()
    unique = []
    for script in context.get("script_files", []):
        # an inline script's filename is None in one copy and "" in the other
        key = (getattr(script, "filename", None) or "",
               tuple(sorted(getattr(script, "attributes", {}).items())))
        if key not in seen:
            seen.add(key)
            unique.append(script)
    context["script_files"][:] = unique  # in place: the builder appends to this list


def setup(app: Sphinx) -> dict[str, Any]:
    app.connect("html-page-context", _drop_repeated_scripts, priority=900)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
