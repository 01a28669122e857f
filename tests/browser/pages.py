"""What a reader would notice on a page of the built book, found in a real headless Chromium.

`open_browser` starts Debian's Chromium through its chromedriver (nothing is downloaded) with
the network switched off, so a page only shows what the built book itself serves. `check_page`
opens one page, waits for MathJax to typeset it, and returns one line per problem:

- formulas MathJax did not typeset, TeX errors, raw TeX delimiters left in the text;
- stray reprs (``<IPython.core.display.Markdown object>``, ``<Figure size ...>``, a Styler),
  progress-bar remnants, warnings, tracebacks and stderr in cell outputs;
- images that do not load, internal links to a missing page or anchor;
- JavaScript console errors, any resource fetched (or named, in the HTML or an inline
  script) from outside the book;
- content wider than the page (the page scrolls sideways) or than the text column.

`screenshot` saves the whole page as a PNG (`check_page` can take one on the way).
"""

from __future__ import annotations

import base64
import re
import shutil
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

from selenium import webdriver
from selenium.webdriver.chrome.service import Service

WINDOW = (1366, 900)  # a laptop screen: the theme shows both sidebars
NARROW_WIDTH = 412  # a phone held upright
SCREENSHOT_MAX_HEIGHT = 16000  # Chromium's largest capture

# Text a reader sees that means something went wrong, searched in the page's text outside code
# blocks (code may legitimately show a repr or a backslash).
RAW_TEX = [
    (re.compile(r"\\\(.*?\\\)|\\\[.*?\\\]|\\[()[\]]"), "raw TeX"),
    (re.compile(r"\$\$"), "raw $$ delimiter"),
    # $...$ holding a TeX command, or a sub/superscript (not two prices: "$5 and $6")
    (re.compile(r"\$[^$\s][^$\n]*\\[A-Za-z]+[^$\n]*\$|\$[^$\s\d][^$\n]*[_^][^$\n]*\$"),
     "raw $...$ math"),
    (re.compile(r"\\(?:begin|end)\{\w+\*?\}|\\frac\{"), "raw TeX"),
]
STRAY_OUTPUT = [
    (re.compile(r"<[A-Za-z_]\w*(?:\.\w+)+ object(?: at 0x[0-9a-fA-F]+)?>"), "stray object repr"),
    (re.compile(r"<pandas\.io\.formats\.style\.Styler"), "stray Styler repr"),
    (re.compile(r"<Figure size [\d.]+x[\d.]+ with \d+ Axes>"), "stray Figure repr"),
    (re.compile(r"^(?:Text|Line2D)\([\d.]+, ", re.M), "stray matplotlib return value"),
]
CELL_OUTPUT_ONLY = [
    (re.compile(r"\d+%\|"), "progress-bar remnant"),
    (re.compile(r"\d+/\d+ \[\d+:\d+<"), "progress-bar remnant"),
    (re.compile(r"\b\w*Warning: "), "warning"),
    (re.compile(r"Traceback \(most recent call last\)"), "traceback"),
]

# Runs in the page: waits for MathJax (when the page loads it), for every image and for running
# transitions, then returns the facts the checks need. Images marked lazy are made eager so
# that all are fetched.
COLLECT_JS = """
const done = arguments[arguments.length - 1];
const mathjax = window.MathJax && window.MathJax.startup ? window.MathJax.startup.promise
                                                          : Promise.resolve();
const images = Array.from(document.images);
images.forEach(img => { img.loading = 'eager'; });
const loads = images.map(img => img.decode().then(() => null, () => null));
// Then for the layout to settle: the theme slides its sidebars in with CSS transitions.
const settled = () => Promise.all(document.getAnimations()
  .filter(a => a.effect && a.effect.getComputedTiming().endTime !== Infinity)
  .map(a => a.finished.catch(() => null)));
Promise.all([mathjax.catch(e => String(e)), ...loads]).then(settled).then(() => {
  // Code a reader is meant to read as code (cell inputs, code in the prose) is left out; a
  // cell's text output is kept, since that is where stray reprs and warnings show.
  const skip = '.cell_input, script, style, mjx-container, .headerlink, .bd-search';
  const textOf = root => {
    const clone = root.cloneNode(true);
    clone.querySelectorAll(skip).forEach(node => node.remove());
    clone.querySelectorAll('pre, code').forEach(node => {
      if (!node.closest('.cell_output')) node.remove();
    });
    return clone.innerText || clone.textContent || '';
  };
  const article = document.querySelector('article.bd-article') || document.body;
  const column = article.getBoundingClientRect();
  const scrolls = el => {
    for (let node = el.parentElement; node && node !== article; node = node.parentElement) {
      const style = getComputedStyle(node);
      if (['auto', 'scroll', 'hidden', 'clip'].includes(style.overflowX)) return true;
    }
    return false;
  };
  const wide = [];
  for (const el of article.querySelectorAll('*')) {
    const box = el.getBoundingClientRect();
    if (box.width === 0 || box.right <= column.right + 2 || scrolls(el)) continue;
    if (el.parentElement && el.parentElement !== article &&
        el.parentElement.getBoundingClientRect().right > column.right + 2) continue;
    const name = el.tagName.toLowerCase()
                 + (el.className ? '.' + String(el.className).split(' ')[0] : '');
    wide.push(`${name} ${Math.round(box.right - column.right)} px past the text column`);
  }
  done({
    url: location.href,
    hasMathJax: !!(window.MathJax && window.MathJax.startup),
    formulas: document.querySelectorAll('.math').length,
    untypeset: Array.from(document.querySelectorAll('.math'))
      .filter(el => !el.querySelector('mjx-container') && !el.closest('mjx-container'))
      .map(el => el.textContent.trim().slice(0, 60)),
    texErrors: Array.from(document.querySelectorAll('mjx-merror'))
      .map(el => (el.getAttribute('data-mjx-error') || el.textContent).slice(0, 80)),
    text: textOf(document.body),
    outputs: Array.from(document.querySelectorAll('.cell_output')).map(textOf),
    stderr: document.querySelectorAll('.cell_output .stderr, .cell_output .traceback').length,
    brokenImages: images.filter(img => !img.complete || img.naturalWidth === 0)
      .map(img => img.getAttribute('src')),
    links: Array.from(document.querySelectorAll('a[href]')).map(a => a.href),
    resources: performance.getEntriesByType('resource').map(entry => entry.name),
    pageWidth: document.documentElement.scrollWidth,
    windowWidth: document.documentElement.clientWidth,
    wide: wide.slice(0, 5),
  });
});
"""


def chromium_paths() -> tuple[str, str]:
    """Debian's Chromium and its chromedriver (``make browser`` installs them)."""
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    if not browser or not driver:
        raise RuntimeError(
            "Chromium and chromedriver not found: run `make browser` "
            "(apt-get install chromium chromium-driver)"
        )
    return browser, driver


def open_browser() -> webdriver.Chrome:
    """Headless Chromium with a laptop-sized window, console logging on, the network off."""
    browser, driver_path = chromium_paths()
    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--hide-scrollbars", f"--window-size={WINDOW[0]},{WINDOW[1]}"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(executable_path=driver_path))
    driver.set_page_load_timeout(120)
    driver.set_script_timeout(120)  # MathJax on a long page, on a loaded machine
    driver.execute_cdp_cmd("Network.enable", {})
    driver.execute_cdp_cmd("Network.emulateNetworkConditions", {
        "offline": True, "latency": 0, "downloadThroughput": -1, "uploadThroughput": -1,
    })
    return driver


class _Source(HTMLParser):
    """A page's HTML as written: its element ids, and what it names from outside the book
    (resources a tag would fetch, URLs inside inline scripts) even where nothing fetches them
    on this visit."""

    RESOURCE = {"script": "src", "img": "src", "iframe": "src", "source": "src",
                "audio": "src", "video": "src", "link": "href"}

    def __init__(self) -> None:
        super().__init__()
        self.ids: set[str] = set()
        self.outside: list[str] = []
        self.redirect: str | None = None  # where a <meta http-equiv="refresh"> page sends you
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        self.ids.update(v for k, v in attrs if k in ("id", "name") and v)
        url = values.get(self.RESOURCE.get(tag, ""))
        if url and _is_outside(url) and not (tag == "link" and values.get("rel") == "canonical"):
            self.outside.append(f"<{tag}> {url}")
        if tag == "meta" and (values.get("http-equiv") or "").lower() == "refresh":
            self.redirect = (values.get("content") or "").partition("url=")[2].strip() or None
        self._in_script = tag == "script"

    def handle_endtag(self, tag: str) -> None:
        self._in_script = False

    def handle_data(self, data: str) -> None:
        if self._in_script:
            self.outside += [f"inline script: {url}" for url in OUTSIDE_URL.findall(data)]


OUTSIDE_URL = re.compile(r"(?:https?:)?//[a-z0-9-]+(?:\.[a-z0-9-]+)+[^\s\"'`]*", re.I)


def _is_outside(url: str) -> bool:
    return urlsplit(url).scheme in ("http", "https") or url.startswith("//")


_source_cache: dict[Path, _Source] = {}


def _source(path: Path) -> _Source:
    if path not in _source_cache:
        parser = _Source()
        parser.feed(path.read_text(encoding="utf-8", errors="replace"))
        _source_cache[path] = parser
    return _source_cache[path]


def _link_problems(links: list[str], root: Path) -> list[str]:
    problems = []
    for link in sorted(set(links)):
        parts = urlsplit(link)
        if parts.scheme != "file":
            continue  # external links are for the reader to follow, not fetched by the page
        target = Path(unquote(parts.path))
        if target.is_dir():
            target = target / "index.html"
        shown = target.relative_to(root) if target.is_relative_to(root) else target
        if not target.is_relative_to(root):
            problems.append(f"link leaves the book: {link}")
        elif not target.exists():
            problems.append(f"broken link: {shown} does not exist")
        elif (parts.fragment and target.suffix == ".html"
              and unquote(parts.fragment) not in _source(target).ids):
            problems.append(f"broken link: no #{parts.fragment} in {shown}")
    return problems


def _text_problems(text: str, patterns: list[tuple[re.Pattern, str]], most: int = 3) -> list[str]:
    """Each match with some text around it, at most ``most`` a kind and then how many more."""
    found: dict[str, list[str]] = {}
    covered: list[range] = []
    for pattern, what in patterns:
        for match in pattern.finditer(text):
            if any(match.start() in span for span in covered):
                continue  # already reported by an earlier pattern
            covered.append(range(match.start(), match.end()))
            start = max(0, match.start() - 30)
            context = " ".join(text[start:match.end() + 30].split())
            found.setdefault(what, []).append(f"{what}: ...{context}...")
    problems = []
    for what, lines in found.items():
        problems += lines[:most]
        if len(lines) > most:
            problems.append(f"{what}: {len(lines) - most} more")
    return problems


def _console_errors(driver: webdriver.Chrome) -> list[str]:
    return [
        f"console error: {entry['message'][:200]}"
        for entry in driver.get_log("browser")
        if entry["level"] == "SEVERE"
    ]


def check_page(driver: webdriver.Chrome, page: Path, root: Path,
               screenshot_to: Path | None = None) -> list[str]:
    """Open ``page`` (an HTML file under the build ``root``); one line per problem found. With
    ``screenshot_to``, a PNG of the page as first laid out is saved there.

    A redirect page (the book's index.html) is only checked for where it points: the page it
    sends the reader to is checked on its own.
    """
    source = _source(page.resolve())
    if source.redirect is not None:
        return _link_problems([(page.resolve().parent / source.redirect).as_uri()], root.resolve())
    driver.get_log("browser")  # drop what earlier pages logged
    driver.set_window_size(*WINDOW)
    driver.get(page.resolve().as_uri())
    facts = driver.execute_async_script(COLLECT_JS)
    if screenshot_to is not None:
        screenshot(driver, screenshot_to)  # before the phone-width check relays the page out
    problems = []
    if facts["untypeset"]:
        problems.append(
            f"{len(facts['untypeset'])} of {facts['formulas']} formulas not typeset "
            f"(MathJax {'loaded' if facts['hasMathJax'] else 'not loaded'}), first: "
            f"{facts['untypeset'][0]!r}"
        )
    problems += [f"TeX error: {error}" for error in facts["texErrors"]]
    problems += _text_problems(facts["text"], RAW_TEX + STRAY_OUTPUT)
    problems += _text_problems("\n".join(facts["outputs"]), CELL_OUTPUT_ONLY)
    if facts["stderr"]:
        problems.append(f"{facts['stderr']} stderr or traceback outputs shown")
    problems += [f"broken image: {src}" for src in facts["brokenImages"]]
    problems += _link_problems(facts["links"], root.resolve())
    problems += [
        f"fetched from outside the book: {url}"
        for url in facts["resources"] if urlsplit(url).scheme not in ("file", "data", "blob")
    ]
    problems += [f"names an outside resource: {what}" for what in source.outside]
    if facts["pageWidth"] > facts["windowWidth"] + 1:
        problems.append(
            f"page scrolls sideways: {facts['pageWidth']} px of content in a "
            f"{facts['windowWidth']} px window"
        )
    problems += [f"too wide: {line}" for line in facts["wide"]]
    problems += _narrow_problems(driver)
    problems += _console_errors(driver)
    return problems


def _narrow_problems(driver: webdriver.Chrome) -> list[str]:
    """On a phone-width window the page may scroll inside tables and code, never as a whole."""
    driver.set_window_size(NARROW_WIDTH, WINDOW[1])
    width, window = driver.execute_script(
        "return [document.documentElement.scrollWidth, document.documentElement.clientWidth]"
    )
    driver.set_window_size(*WINDOW)
    if width > window + 1:
        return [f"page scrolls sideways on a {NARROW_WIDTH} px phone: {width} px of content"]
    return []


def screenshot(driver: webdriver.Chrome, out: Path) -> Path:
    """The whole page (up to Chromium's largest capture) as a PNG at ``out``.

    Capturing beyond the window resizes the viewport, and the theme answers with its sidebar
    transitions; they are switched off first, so the picture shows the settled layout.
    """
    driver.execute_script(
        "const style = document.createElement('style');"
        "style.textContent = '*, *::before, *::after { transition: none !important;"
        " animation: none !important; }';"
        "document.head.appendChild(style);"
    )
    metrics = driver.execute_cdp_cmd("Page.getLayoutMetrics", {})
    size = metrics["cssContentSize"]
    clip = {"x": 0, "y": 0, "width": WINDOW[0],
            "height": min(size["height"], SCREENSHOT_MAX_HEIGHT), "scale": 1}
    shot = driver.execute_cdp_cmd("Page.captureScreenshot", {
        "format": "png", "captureBeyondViewport": True, "clip": clip,
    })
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(base64.b64decode(shot["data"]))
    return out
