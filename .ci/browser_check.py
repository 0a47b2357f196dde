"""Open the workflow's HTML report in headless Chromium and check it as a reader meets it.

Loads ``REPORT`` (Snakemake's self-contained report) from disk in Debian's Chromium (``/usr/bin/chromium``)
through Playwright and checks that every expected result (``--expect CATEGORY:FILE``) is embedded with its
data under its category, that the Results view lists every entry of every category, that showing an entry
puts its figure on the page (an image whose data names the file; tables and text are listed and shown, the
report offers them for download), and that nothing logs a console error or throws while the page loads and
while every entry is shown. Saves a screenshot with ``--show FILE`` on display (``--screenshot``).
Prints one line per problem and exits with status 1 if there is any.

    python .ci/browser_check.py results/report.html --expect Tables:table1.csv ... --screenshot report.png
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

CHROMIUM = "/usr/bin/chromium"
#: Milliseconds a view gets to render after a click.
SETTLE_MS = 600


def _row(page, key: str):
    """The Results-view row whose cell reads exactly ``key``."""
    return page.locator("tr").filter(has=page.locator("td", has_text=re.compile(rf"^\s*{re.escape(key)}\s*$")))


def _open_category(page, uri: str, category: str, first_row: str) -> None:
    """The Results view of ``category``, from a fresh load (the report's breadcrumbs lead back to its home menu):
    open Results, then the category unless its rows are listed already (one category is listed at once)."""
    page.goto(uri, wait_until="load")
    page.wait_for_timeout(SETTLE_MS)
    page.get_by_text("Results", exact=True).first.click()
    page.wait_for_timeout(SETTLE_MS)
    if not _row(page, first_row).count():
        page.get_by_text(category, exact=True).first.click()
        page.wait_for_timeout(SETTLE_MS)


def _show(page, uri: str, category: str, rows: list[str], key: str) -> None:
    """Show the entry of row ``key`` of ``category`` (the row's first button: the eye)."""
    _open_category(page, uri, category, rows[0])
    _row(page, key).first.locator("a").first.click()
    page.wait_for_timeout(SETTLE_MS)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("report", type=Path)
    parser.add_argument("--expect", nargs="+", default=[], metavar="CATEGORY:FILE",
                        help="a result (its file name) that must be embedded under CATEGORY")
    parser.add_argument("--show", help="file name on display in the screenshot")
    parser.add_argument("--screenshot", type=Path, help="PNG of the page")
    parser.add_argument("--chromium", default=CHROMIUM)
    args = parser.parse_args()
    if not args.report.is_file():
        print(f"browser_check: error: {args.report}: no such report", file=sys.stderr)
        return 1

    from playwright.sync_api import sync_playwright

    problems: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=args.chromium, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.on("console", lambda message: problems.append(f"console error: {message.text}")
                if message.type == "error" else None)
        page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
        uri = args.report.resolve().as_uri()
        page.goto(uri, wait_until="load")
        page.wait_for_timeout(SETTLE_MS)
        embedded = page.evaluate("() => Object.fromEntries(Object.entries(results).map(([key, value]) => "
                                 "[key, [value.mime_type, (value.data_uri || '').length, value.labels]]))")
        categories = {category: sorted(f for files in sub.values() for f in files)
                      for category, sub in page.evaluate("() => categories").items()}
        for item in args.expect:
            category, _, name = item.partition(":")
            found = [f for f in categories.get(category, []) if Path(f).name == name]
            if not found:
                problems.append(f"{name}: not under category {category!r}")
            elif not embedded[found[0]][1]:
                problems.append(f"{found[0]}: embedded without data")
        # A row of the Results view shows a file's first label (e.g. "Table 1"; files that differ only in a
        # toggled label, such as a run's normal and reduction cell, share a row), or else its path.
        def row_key(name: str) -> str:
            labels = embedded[name][2]
            return next(iter(labels.values())) if labels else name

        rows = {category: list(dict.fromkeys(map(row_key, files))) for category, files in categories.items()}
        shown = 0
        for category, keys in rows.items():
            _open_category(page, uri, category, keys[0])
            problems += [f"{category}: {key!r} not listed in the Results view" for key in keys
                         if not _row(page, key).count()]
            for key in keys:
                if not _row(page, key).count():
                    continue
                _show(page, uri, category, keys, key)
                images = [Path(f).name for f in categories[category]
                          if row_key(f) == key and embedded[f][0].startswith("image/")]
                if images and not any(page.locator(f"img[src*='filename={name};']").count() for name in images):
                    problems.append(f"{category}: {key!r} shown, but its image is not on the page")
                shown += 1
        if args.screenshot:
            if args.show:
                matches = [(c, f) for c, files in categories.items() for f in files if Path(f).name == args.show]
                if matches:
                    category, name = matches[0]
                    labels = embedded[name][2]
                    _show(page, uri, category, rows[category], next(iter(labels.values())) if labels else name)
                else:
                    problems.append(f"--show {args.show}: not in the report")
            args.screenshot.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(args.screenshot))
        browser.close()
    problems = list(dict.fromkeys(problems))  # an error of the page repeats at every load
    for problem in problems:
        print(f"browser_check: {args.report}: {problem}", file=sys.stderr)
    if not problems:
        print(f"browser_check: {args.report}: {len(embedded)} results in {len(categories)} categories "
              f"({', '.join(categories)}), {shown} entries shown, no console error")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
