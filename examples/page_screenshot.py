"""A screenshot of the chat page of `likeme serve`, taken by headless Chromium (Debian's `chromium`)
through Playwright: one message sent, the streamed reply on the page.

    likeme serve runs/robin-voice &
    .venv/bin/python examples/page_screenshot.py --out docs/serve-page.png
"""
import argparse

from playwright.sync_api import sync_playwright

ap = argparse.ArgumentParser()
ap.add_argument("--url", default="http://127.0.0.1:8000/")
ap.add_argument("--out", default="docs/serve-page.png")
ap.add_argument("--messages", nargs="+", default=["hi, how are you?", "what are you doing this weekend?"])
ap.add_argument("--width", type=int, default=900)
ap.add_argument("--height", type=int, default=560)
args = ap.parse_args()

with sync_playwright() as p:
    browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=[
        "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run"])
    page = browser.new_page(viewport={"width": args.width, "height": args.height})
    page.goto(args.url)
    page.wait_for_selector("#model option", state="attached")
    page.fill("#temperature", "0.7")
    page.fill("#max-tokens", "48")
    for i, text in enumerate(args.messages, 1):
        page.fill("#input", text)
        page.click("#send")
        page.wait_for_function(f"() => document.querySelectorAll('.msg.assistant').length === {i} && "
                               "!document.querySelector('#send').disabled", timeout=120_000)
    page.screenshot(path=args.out)
    browser.close()
print(args.out)
