"""Screenshots of a `likeme report` page, taken by headless Chromium (Debian's `chromium`) through
Playwright: one PNG per section (the page is long), as the README links them.

    likeme report runs/robin-voice --data "WhatsApp Chat with Robin (later).txt" --as Robin --out robin.html
    .venv/bin/python examples/report_screenshots.py robin.html --out docs/report
"""
import argparse
from pathlib import Path

from playwright.sync_api import sync_playwright

ap = argparse.ArgumentParser()
ap.add_argument("page", type=Path)
ap.add_argument("--out", type=Path, default=Path("docs/report"))
ap.add_argument("--width", type=int, default=1000)
args = ap.parse_args()
args.out.mkdir(parents=True, exist_ok=True)

with sync_playwright() as p:
    browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=[
        "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run"])
    page = browser.new_page(viewport={"width": args.width, "height": 900})
    page.route("**/*", lambda r: r.abort() if not r.request.url.startswith(("file:", "data:")) else r.continue_())
    page.goto(args.page.resolve().as_uri())
    page.wait_for_function("() => [...document.images].every(i => i.complete && i.naturalWidth > 0)")
    heads = page.locator("h2")
    names = []
    for i in range(heads.count()):  # from one heading to the next
        box = page.evaluate("""(i) => { const hs = [...document.querySelectorAll('h2')]; const a = hs[i];
            const b = hs[i + 1]; const top = i === 0 ? 0 : a.getBoundingClientRect().top + window.scrollY - 8;
            const bottom = b ? b.getBoundingClientRect().top + window.scrollY - 8 : document.body.scrollHeight;
            return {top, bottom}; }""", i)
        name = f"{i + 1:02d}-" + heads.nth(i).inner_text().lower().replace(" ", "-").replace(",", "").replace("?", "")[:40]
        page.screenshot(path=str(args.out / f"{name}.png"), full_page=True,
                        clip={"x": 0, "y": box["top"], "width": args.width, "height": min(1400, box["bottom"] - box["top"])})
        names.append(name)
    browser.close()
print("\n".join(str(args.out / f"{n}.png") for n in names))
