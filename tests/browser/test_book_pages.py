"""Every page of the built book in headless Chromium, and the checker on pages with known faults."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.browser.pages import check_page


def test_book_page(book_page: Path, browser, pytestconfig) -> None:
    root = pytestconfig.getoption("book_html")
    shots = pytestconfig.getoption("screenshots")
    name = str(book_page.relative_to(root).with_suffix(".png")).replace("/", "__")
    problems = check_page(browser, book_page, root, shots / name if shots else None)
    assert not problems, f"{book_page.relative_to(root)}:\n  " + "\n  ".join(problems)


PAGE = """<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>t</title>
<style>pre {{ overflow: auto }}</style>{head}</head>
<body><article class="bd-article" style="max-width: 600px">{body}</article></body></html>
"""


def write_page(directory: Path, name: str, body: str, head: str = "") -> Path:
    path = directory / name
    path.write_text(PAGE.format(head=head, body=body), encoding="utf-8")
    return path


def test_a_clean_page_passes(tmp_path: Path, browser) -> None:
    write_page(tmp_path, "other.html", '<h2 id="part">Part</h2>')
    page = write_page(tmp_path, "index.html", (
        '<p>Plain text, <a href="other.html#part">a link</a>, <a href="#top" id="top">top</a>, '
        'costs $5 and $6, and <code>print(r"\\(x\\)")</code>.</p>'
        '<pre>&lt;IPython.core.display.Markdown object&gt; in code is fine</pre>'
    ))
    assert check_page(browser, page, tmp_path) == []


@pytest.mark.parametrize(("body", "expected"), [
    ("<p>The context \\(K=20\\) tokens.</p>", "raw TeX"),
    ("<p>Score $100 \\, (R - R_\\text{random})$.</p>", "raw $...$ math"),
    ("<div class='cell_output'><pre>x</pre>&lt;IPython.core.display.Markdown object&gt;</div>",
     "stray object repr"),
    ("<p>&lt;pandas.io.formats.style.Styler at 0x7f00aa&gt;</p>", "stray Styler repr"),
    ("<p>&lt;Figure size 640x480 with 2 Axes&gt;</p>", "stray Figure repr"),
    ("<div class='cell_output'><p>train: 40%| 4/10 [00:02&lt;00:03]</p></div>",
     "progress-bar remnant"),
    ("<div class='cell_output'><p>UserWarning: something</p></div>", "warning"),
    ("<img src='missing.png' alt='a figure'>", "broken image: missing.png"),
    ("<a href='nowhere.html'>x</a>", "broken link: nowhere.html does not exist"),
    ("<a href='index.html#nothing'>x</a>", "broken link: no #nothing in index.html"),
    ("<script>undefinedFunction()</script>", "console error"),
    ("<img src='https://example.org/logo.png'>", "fetched from outside the book"),
    ("<script>const URL_ = 'https://unpkg.com/thebe@0.8.2/lib/index.js';</script>",
     "names an outside resource: inline script: https://unpkg.com/thebe"),
    ("<link rel='stylesheet' href='https://fonts.example.org/a.css'>",
     "names an outside resource: <link> https://fonts.example.org/a.css"),
    ("<div style='width: 3000px'>wide</div>", "page scrolls sideways"),
    ("<table style='width: 900px'><tr><td>wide</td></tr></table>", "too wide: table"),
])
def test_the_checker_finds_each_fault(tmp_path: Path, browser, body: str, expected: str) -> None:
    page = write_page(tmp_path, "index.html", body)
    problems = check_page(browser, page, tmp_path)
    assert any(expected in problem for problem in problems), problems


def test_a_redirect_is_checked_for_its_target(tmp_path: Path, browser) -> None:
    page = tmp_path / "index.html"
    page.write_text('<meta http-equiv="Refresh" content="0; url=book/intro.html" />')
    assert check_page(browser, page, tmp_path) == ["broken link: book/intro.html does not exist"]
    (tmp_path / "book").mkdir()
    write_page(tmp_path / "book", "intro.html", "<p>Hello</p>")
    assert check_page(browser, page, tmp_path) == []


def test_the_checker_finds_untypeset_math(tmp_path: Path, browser) -> None:
    """A formula left as TeX because MathJax did not load (as when it comes from a CDN offline)."""
    page = write_page(
        tmp_path, "index.html", '<span class="math notranslate">\\(K\\)</span>',
        head='<script defer src="https://cdn.example.org/mathjax/tex-chtml.js"></script>',
    )
    problems = check_page(browser, page, tmp_path)
    assert any("1 of 1 formulas not typeset (MathJax not loaded)" in p for p in problems), problems
