"""End to end in a real browser: Debian's Chromium, headless, driven by Playwright, completes a whole
study by clicking (desktop) and by tapping (a phone-sized touch screen), and saves a screenshot of
the teaching page. Skipped only where Chromium or Playwright is absent, and never under CI=true."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from sqlalchemy import func, select

from teachset.study.db import events, sessions, trials

CHROMIUM = os.environ.get("TEACHSET_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@pytest.fixture(scope="module")
def browser():
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        sync_playwright = None
    if sync_playwright is None or not os.access(CHROMIUM, os.X_OK):
        message = "needs Debian's chromium and the playwright package: run scripts/study_system_deps.sh"
        if os.environ.get("CI"):
            pytest.fail(message + "; under CI the browser test must run")
        pytest.skip(message)
    with sync_playwright() as playwright:
        # launch() gives Chromium a fresh temporary --user-data-dir of its own, removed on close
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield playwright, browser
        finally:
            browser.close()


def no_sideways_scrolling(page) -> bool:
    return page.evaluate("() => document.documentElement.scrollWidth <= window.innerWidth + 1")


READY = ("() => location.pathname === '/done' || !document.getElementById('intro').hidden"
         " || (document.querySelector('#stimulus.loaded') !== null && !document.querySelector('button.choice').disabled)")


def run_through(page, url: str, participant: str, screenshot: Path, touch: bool) -> str:
    """Consent, teaching page (screenshot), quiz and test by clicking; returns the completion code.
    On the desktop, one answer is lost on the network and one is refused, and the page must cope."""
    press = (lambda selector: page.tap(selector)) if touch else (lambda selector: page.click(selector))
    page.goto(f"{url}/?participant={participant}")
    assert no_sideways_scrolling(page)
    page.check("input[name=consent]")
    press("#start")
    page.wait_for_url("**/instructions")
    assert no_sideways_scrolling(page)
    press("#continue")
    page.wait_for_url("**/teach")
    assert page.locator(".class-row").count() == 2
    page.wait_for_function("() => Array.from(document.images).every(i => i.complete && i.naturalWidth > 0)")
    assert no_sideways_scrolling(page)
    page.screenshot(path=str(screenshot), full_page=True)
    press("#start-quiz")
    page.wait_for_url("**/trial")
    opened, faults, presses = False, [], 0
    for _ in range(60):
        try:
            page.wait_for_function(READY, timeout=15_000)
        except Exception:
            if not page.url.endswith("/done"):  # the navigation to /done may tear down the wait
                raise
        if page.url.endswith("/done"):
            break
        if page.locator("#intro").is_visible():
            press("#intro-continue")
            continue
        assert no_sideways_scrolling(page)
        if page.inner_text("#progress").startswith("Test 2") and not opened:  # reopen the teaching set mid-test
            press("#show-teaching")
            assert page.locator("#teaching-dialog").is_visible()
            assert page.locator("#teaching-dialog .class-row").count() == 2
            press("#close-teaching")
            opened = True
        if presses == 1 and not touch:
            inject_faults(page, faults)
        press("button.choice >> nth=1")
        presses += 1
    page.wait_for_url("**/done")
    assert opened
    assert touch or faults == ["dropped", "retried", "refused"], faults
    return page.inner_text("#completion-code")


def inject_faults(page, faults: list[str]) -> None:
    """The next answer is lost on the network once (the page must send it again), and the one after
    that is refused once with 409 (the page must ask the server where it is and let the participant on)."""

    def handle(route):
        if not faults:
            faults.append("dropped")
            route.abort("connectionreset")
        elif len(faults) == 1:
            faults.append("retried")
            route.continue_()
        elif len(faults) == 2:
            faults.append("refused")
            route.fulfill(status=409, content_type="application/json", body='{"error": "injected"}')
        else:
            route.continue_()

    page.route("**/api/answer", handle)


@pytest.mark.slow
@pytest.mark.parametrize("device", ["desktop", "phone"])
def test_a_whole_study_in_chromium(browser, pair_study, serve_study, tmp_path, device):
    playwright, chromium = browser
    options = {"viewport": {"width": 1280, "height": 800}} if device == "desktop" else dict(playwright.devices["Pixel 5"])
    options.pop("default_browser_type", None)
    live = serve_study(pair_study, f"sqlite:///{tmp_path / 'responses.sqlite'}")
    context = chromium.new_context(**options)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    screenshot = tmp_path / f"teaching_page_{device}.png"
    try:
        code = run_through(page, live.url, f"browser-{device}", screenshot, touch=device == "phone")
        with live.db.read() as conn:
            session = conn.execute(sessions.select()).one()
            stored = conn.execute(select(func.count()).select_from(trials)).scalar_one()
            kinds = [e.kind for e in conn.execute(events.select().order_by(events.c.id))]
    finally:
        context.close()
    assert not errors, errors
    assert session.phase == "done" and session.completion_code == code
    assert stored == len(pair_study.conditions[0].quiz) + pair_study.test_count
    assert kinds == ["teaching_done", "show_teaching_set", "hide_teaching_set"]
    assert screenshot.stat().st_size > 1000
    print(f"\nteaching page screenshot ({device}): {screenshot}")
