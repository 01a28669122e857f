"""The scripts each page loads: every one once, and no live-code (thebe) loader the book
does not use.

- sphinx-thebe (which jupyter-book always loads) adds its inline settings, ``const
  THEBE_JS_URL = ...``, after Sphinx's builder has started, and Sphinx 7 then writes them into
  every page twice; the second ``const`` is an error in the reader's JavaScript console.
  Repeats are dropped, the first of each kept.
- The book has no live-code button (``launch_buttons.thebe`` is off), so thebe's loader and
  its settings, which name thebe's CDN, are dead code in every page: dropped too, so the
  pages name no outside script at all.
"""

from __future__ import annotations

from typing import Any

from sphinx.application import Sphinx

THEBE_SCRIPTS = ("sphinx-thebe.js", "THEBE_JS_URL")


def _is_thebe(script: Any) -> bool:
    text = f"{getattr(script, 'filename', None) or ''} {getattr(script, 'attributes', {})}"
    return any(marker in text for marker in THEBE_SCRIPTS)


def _page_scripts(app: Sphinx, pagename: str, templatename: str,
                  context: dict[str, Any], doctree: Any) -> None:
    launch = (app.config.html_theme_options or {}).get("launch_buttons", {})
    thebe_used = bool(launch.get("thebe"))
    seen: set[tuple] = set()
    kept = []
    for script in context.get("script_files", []):
        # an inline script's filename is None in one copy and "" in the other
        key = (getattr(script, "filename", None) or "",
               tuple(sorted(getattr(script, "attributes", {}).items())))
        if key in seen or (not thebe_used and _is_thebe(script)):
            continue
        seen.add(key)
        kept.append(script)
    context["script_files"][:] = kept  # in place: the builder appends to this list


def setup(app: Sphinx) -> dict[str, Any]:
    # late, after the handlers that add a page's scripts (MathJax's among them)
    app.connect("html-page-context", _page_scripts, priority=900)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
