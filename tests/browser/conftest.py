"""Options of the browser test: which build to open and where its screenshots go.

    pytest tests/browser --book-html .smoke/committed/_build/html \
        --screenshots .smoke/screenshots/committed

Without ``--book-html`` only the checker's own tests run (on pages made here with known faults).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.browser.pages import open_browser


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--book-html", type=Path, help="a built book's html directory")
    parser.addoption("--screenshots", type=Path, help="where to save a PNG of each page")


def book_pages(root: Path) -> list[Path]:
    """Every page of a built book: its HTML files, not the theme's or sphinx's assets."""
    assets = {"_static", "_sources", "_images", "_downloads"}
    return sorted(
        path for path in root.rglob("*.html")
        if not assets.intersection(path.relative_to(root).parts)
    )


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "book_page" in metafunc.fixturenames:
        root = metafunc.config.getoption("book_html")
        if root is None:
            pages = []
        elif not (root / "index.html").exists():
            raise pytest.UsageError(f"--book-html {root}: no index.html there (build the book)")
        else:
            pages = book_pages(root)
        metafunc.parametrize(
            "book_page", pages, ids=[str(p.relative_to(root)) for p in pages] if pages else None
        )


@pytest.fixture(scope="session")
def browser():
    driver = open_browser()
    yield driver
    driver.quit()
