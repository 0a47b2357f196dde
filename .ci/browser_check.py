"""Open the workflow's HTML report in headless Chromium and check it as a reader meets it.

Loads ``REPORT`` (Snakemake's self-contained report) from disk in Debian's Chromium (``/usr/bin/chromium``)
through Playwright and checks that every expected result (``--expect CATEGORY:FILE``) is embedded with its
data under its category, that the Results view lists every file of every category, that showing each file
puts it on the page (a figure as an image), and that nothing logs a console error or throws while the page
loads and while every file is shown. Saves a screenshot with ``--show FILE`` on display (``--screenshot``).
Prints one line per problem and exits with status 1 if there is any.

    python .ci/browser_check.py results/report.html --expect Tables:table1.csv ... --screenshot report.png
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

CHROMIUM = "/usr/bin/chromium"
#: Milliseconds a view gets to render after a click.
SETTLE_MS = 600


def _open_category(page, uri: str, category: str, first_file: str) -> None:
    """The Results view of ``category``, from a fresh load (the report's breadcrumbs lead back to its home menu):
    open Results, then the category unless its files are listed already (one category is listed at once)."""
    page.goto(uri, wait_until="load")
    page.wait_for_timeout(SETTLE_MS)
    page.get_by_text("Results", exact=True).first.click()
    page.wait_for_timeout(SETTLE_MS)
    if not page.locator("tr", has_text=first_file).count():
        page.get_by_text(category, exact=True).first.click()
        page.wait_for_timeout(SETTLE_MS)


def _show(page, uri: str, category: str, files: list[str], name: str) -> None:
    """Show the file ``name`` of ``category`` (its first button: the eye)."""
    _open_category(page, uri, category, files[0])
    page.locator("tr", has_text=name).first.locator("a").first.click()
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
        embedded = page.evaluate("() => Object.fromEntries(Object.entries(results).map("
                                 "([key, value]) => [key, [value.mime_type, (value.data_uri || '').length]]))")
        categories = {category: sorted(f for files in sub.values() for f in files)
                      for category, sub in page.evaluate("() => categories").items()}
        for item in args.expect:
            category, _, name = item.partition(":")
            found = [f for f in categories.get(category, []) if Path(f).name == name]
            if not found:
                problems.append(f"{name}: not under category {category!r}")
            elif not embedded[found[0]][1]:
                problems.append(f"{found[0]}: embedded without data")
        shown = 0
        for category, files in categories.items():
            _open_category(page, uri, category, files[0])
            listed = page.inner_text("body")
            missing = [f for f in files if f not in listed]
            problems += [f"{category}: {f} not listed in the Results view" for f in missing]
            for name in (f for f in files if f not in missing):
                _show(page, uri, category, files, name)
                if embedded[name][0].startswith("image/") and not page.locator("img[src^='data:image']").count():
                    problems.append(f"{name}: shown, but no image on the page")
                shown += 1
        if args.screenshot:
            if args.show:
                matches = [(c, files, f) for c, files in categories.items() for f in files if Path(f).name == args.show]
                if matches:
                    _show(page, uri, *matches[0])
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
              f"({', '.join(categories)}), {shown} shown, no console error")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
