"""likeme report on a tiny voice: the figures, the HTML page (opened in headless Chromium) and its JSON."""

import json

import pytest
from tiny import CHROMIUM_ARGS, chromium, likeme_cli

LATER = "\n".join(["Sam: hi there", "Ana: hey", "Bo: yo", "Ana: ok see you", "Sam: cake?", "Ana: sure thing",
                   "", "Sam: hi again", "Ana: what's up", "Bo: pic", "Ana: ok"]) + "\n"


@pytest.fixture(scope="module")
def report(tiny_voice_run, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("report")
    (tmp / "later.txt").write_text(LATER, encoding="utf-8")
    p = likeme_cli("report", tiny_voice_run, "--data", tmp / "later.txt", "--as", "Ana", "--samples", "4",
                   "--format", "transcript", "--out", tmp / "ana.html")
    assert p.returncode == 0, p.stderr
    return tmp / "ana.html", p.stdout


def test_figures(report, tiny_voice_run):
    path, stdout = report
    assert stdout.startswith(f"{path}: perplexity") and "Burrows' Delta to Ana's replies" in stdout
    f = json.loads(path.with_suffix(".json").read_text())
    assert f["samples"] == 4 and f["as"] == "Ana" and set(f["style"]) == {"real", "trained", "base"}
    real = f["style"]["real"]
    assert real["lengths"] == [1, 3, 2, 2] and real["burrows_delta"] == 0.0  # hey / ok see you / sure thing / what's up
    assert f["examples"][0]["real"] == "hey" and f["examples"][0]["context"] == ["Sam: hi there"]
    assert set(f["memorisation"]) == {"trained", "base"} and f["training_messages"] == 36  # 3 by Ana x 12 sessions
    assert f["provenance"]["messages"]["Ana"] == 36 and f["audit"] is None
    like = f["likeness"]  # every person's turns of the export scored in Ana's slot
    assert set(like["by_person"]) == {"Ana", "Sam", "Bo"} and like["by_person"]["Ana"]["turns"] == 5  # all of her turns
    own, others = like["by_person"]["Ana"]["drop"], like["others_drop"]
    assert like["specificity"] == pytest.approx(100 * (own - others), abs=0.02)


@pytest.mark.skipif(chromium() is None, reason="no Chromium installed (Debian: apt-get install chromium)")
def test_page_has_its_plots_in_chromium(report):
    sync_api = pytest.importorskip("playwright.sync_api")
    path, _ = report
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium(), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            page.route("**/*", lambda route: route.abort() if not route.request.url.startswith(("file:", "data:"))
                       else route.continue_())  # self-contained: nothing from the network
            page.goto(path.as_uri())
            assert page.title() == "likeme report: Ana"
            sizes = page.evaluate("() => [...document.images].map(i => [i.alt, i.naturalWidth, i.naturalHeight])")
            assert [s[0] for s in sizes] == ["Held-out perplexity (lower is better)",
                                             "Perplexity drop from the base, each person's turns in this slot",
                                             "Reply length",
                                             "Writing habits: share of replies with each",
                                             "Diversity (loops: share of replies)"]
            assert all(w > 200 and h > 100 for _, w, h in sizes)
            assert page.locator("h2").all_inner_texts()[:4] == ["Held-out perplexity", "Like Ana, or like everyone?",
                                                                "Style", "Collapse and diversity"]
        finally:
            browser.close()
