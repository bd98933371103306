"""End to end in a real browser: Debian's Chromium, headless, driven by Playwright, completes a whole
study by clicking (desktop) and by tapping (a phone-sized touch screen), and saves a screenshot of
the teaching page; a study with teaching aids shown at 128 px (above its 32 px working size): images
enlarged and strips opened on the teaching page and in the reopened teaching set. Skipped only where Chromium or Playwright is absent, and never under CI=true."""

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


def wait_until_ready(page) -> None:
    """Until the page waits for the participant. A navigation (to /done, or to the test's own page after
    the quiz) may tear the wait down: then wait again on the new page."""
    for attempt in range(3):
        try:
            page.wait_for_function(READY, timeout=15_000)
            return
        except Exception:
            page.wait_for_load_state()
            if page.url.endswith("/done") or attempt == 2 and page.evaluate(READY):
                return
    raise AssertionError(f"the page at {page.url} never became ready")


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
        wait_until_ready(page)
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


# ---- a Prolific study: texts, attention checks, a break, a second browser, the preview ------------------

def labels_of(design) -> dict[str, int]:
    labels = {s.token: s.label for s in design.test_pool + design.checks}
    for condition in design.conditions:
        labels.update({s.token: s.label for s in condition.quiz})
    return labels


def walk_trials(page, design, shots: Path | None = None) -> dict:
    """Answer every trial by clicking: the right class (the first quiz answer wrong, to see the feedback),
    the class an attention check names; continue through intros and breaks. Returns what was seen."""
    labels, seen = labels_of(design), {"intros": [], "checks": 0, "wrong_feedback": False, "answers": 0}
    for _ in range(80):
        wait_until_ready(page)
        if page.url.endswith("/done"):
            break
        if page.locator("#intro").is_visible():
            kind = next(k for k in ("quiz", "test", "break") if page.locator(f"#intro-{k}").is_visible())
            seen["intros"].append((kind, page.inner_text("#progress")))
            if shots and kind == "break":
                page.screenshot(path=str(shots / "break.png"), full_page=True)
            page.click("#intro-continue")
            continue
        assert no_sideways_scrolling(page)
        token = page.evaluate("() => new URL(document.getElementById('stimulus').src).pathname.slice(5, 21)")
        if page.inner_text("#progress").startswith("Test 2"):  # leave the tab and come back
            page.evaluate("""() => { for (const state of ['hidden', 'visible']) {
                Object.defineProperty(document, 'visibilityState', {value: state, configurable: true});
                document.dispatchEvent(new Event('visibilitychange')); } }""")
        if page.locator("#prompt.instruction").count():
            seen["checks"] += 1
            target = page.inner_text("#prompt").split("“", 1)[1].split("”", 1)[0]
            if shots and seen["checks"] == 1:
                page.screenshot(path=str(shots / "check.png"), full_page=True)
            page.get_by_role("button", name=target, exact=True).click()
        elif page.inner_text("#progress").startswith("Quiz") and not seen["wrong_feedback"]:
            assert page.locator("#show-teaching").count() == 0  # the quiz is not answered by looking
            page.click(f"button.choice >> nth={1 - labels[token]}")
            page.wait_for_selector("#feedback.wrong")
            assert page.locator("button.choice.chosen.wrong-answer").count() == 1
            assert page.locator("button.choice.right-answer").inner_text() == design.display_names[labels[token]]
            if shots:
                page.screenshot(path=str(shots / "quiz_feedback.png"), full_page=True)
            seen["wrong_feedback"] = True
        else:
            page.click(f"button.choice >> nth={labels[token]}")
        seen["answers"] += 1
    page.wait_for_url("**/done")
    return seen


@pytest.mark.slow
def test_a_prolific_study_with_checks_a_break_and_a_second_browser(browser, prolific_study, serve_study, tmp_path):
    playwright, chromium = browser
    live = serve_study(prolific_study, f"sqlite:///{tmp_path / 'responses.sqlite'}")
    link = f"{live.url}/?PROLIFIC_PID=browser01&STUDY_ID=studyB&SESSION_ID=sessionB"
    context, other = (chromium.new_context(viewport={"width": 1280, "height": 800}) for _ in range(2))
    page, errors = context.new_page(), []
    page.on("pageerror", lambda error: errors.append(str(error)))
    try:
        page.goto(link)
        assert "It takes about" in page.inner_text(".consent-text")
        page.check("input[name=consent]")
        page.click("#start")
        page.wait_for_url("**/instructions")
        assert page.inner_text(".instructions h2") == "Before you start"
        assert "You will sort 8 images of “One (1)” and “Zero (0)”" in page.inner_text(".instructions")
        page.click("#continue")
        page.wait_for_url("**/teach")
        assert sorted(page.locator(".class-name").all_inner_texts()) == ["One (1)", "Zero (0)"]
        page.click("#start-quiz")
        page.wait_for_url("**/trial")
        # another browser with the same Prolific link while the session is live: refused, clearly
        intruder = other.new_page()
        intruder.goto(link)
        assert "open in another browser" in intruder.inner_text("h1") and intruder.locator("form").count() == 0
        seen = walk_trials(page, prolific_study, shots=tmp_path)
        assert page.inner_text("#completion-code") == "C0MPL3T3"
        assert page.get_attribute("a.button-link", "href").endswith("/submissions/complete?cc=C0MPL3T3")
        assert page.inner_html(".debrief").strip() == "<p>This study compares <em>teaching sets</em>. Thank you!</p>"
        page.screenshot(path=str(tmp_path / "done.png"), full_page=True)
        intruder.goto(link)  # and after the end: no completion code for another browser
        assert "already taken part" in intruder.inner_text("h1") and "C0MPL3T3" not in intruder.content()
    finally:
        context.close()
        other.close()
    assert not errors, errors
    assert [kind for kind, _ in seen["intros"]] == ["quiz", "test", "break", "break"]  # after test trials 3 and 6 of 8 and seen["intros"][1][1] == "Test"
    assert seen["checks"] == 2 and seen["wrong_feedback"] and seen["answers"] == 4 + 8
    with live.db.read() as conn:
        session = conn.execute(sessions.select()).one()
        rows = conn.execute(trials.select()).all()
        kinds = [e.kind for e in conn.execute(events.select().order_by(events.c.id))]
    assert session.phase == "done" and (session.platform_study_id, session.platform_session_id) == ("studyB", "sessionB")
    assert session.environment["window_w"] == 1280 and session.environment["screen_w"] > 0
    assert session.environment["pointer"] == "fine" and "Chrome" in session.environment["user_agent"]
    check_tokens = {s.token for s in prolific_study.checks}
    assert len(rows) == 12 and [r.correct for r in rows if r.stimulus in check_tokens] == [True, True]
    assert kinds.count("break") == 2 and kinds.count("tab_hidden") == 1 and kinds.count("tab_visible") == 1
    print(f"\nProlific study screenshots: {tmp_path}")


@pytest.mark.slow
def test_a_preview_walk_through_in_chromium(browser, prolific_study, serve_study, tmp_path):
    playwright, chromium = browser
    live = serve_study(prolific_study, f"sqlite:///{tmp_path / 'responses.sqlite'}")
    token = prolific_study.secrets()["dashboard_token"]
    context = chromium.new_context(**{k: v for k, v in playwright.devices["Pixel 5"].items() if k != "default_browser_type"})
    page = context.new_page()
    try:
        page.goto(f"{live.url}/dashboard/preview?token={token}")
        assert "nothing you do is stored" in page.inner_text(".preview-banner")
        page.check("input[name=consent]")
        page.tap("#start")
        page.wait_for_url("**/instructions")
        page.tap("#continue")
        page.wait_for_url("**/teach")
        assert page.locator(".preview-banner").count() == 1 and no_sideways_scrolling(page)
        page.tap("#start-quiz")
        page.wait_for_url("**/trial")
        seen = walk_trials(page, prolific_study)
        assert page.inner_text("#completion-code") == "C0MPL3T3" and page.locator(".preview-banner").count() == 1
        page.screenshot(path=str(tmp_path / "preview_done_phone.png"), full_page=True)
        page.click("text=Leave the preview")
        assert page.inner_text("h1") == "Preview closed"
    finally:
        context.close()
    assert seen["checks"] == 2
    with live.db.read() as conn:
        studies_of_sessions = [row.study_id for row in conn.execute(select(sessions.c.study_id))]
    assert studies_of_sessions and prolific_study.uid not in studies_of_sessions  # nothing with the participants' data


@pytest.mark.slow
def test_the_analysis_report_fits_a_laptop_and_a_phone(browser, checks_study, serve_study, tmp_path):
    """The main table (humans beside the LC and NN students) fits the screen at 1280 px and on a phone;
    no table makes the page scroll sideways; the exclusions are listed."""
    import random

    from teachset.study.analysis import analyze
    from teachset.study.simulate import Participation, answer_all, oracle, start

    playwright, chromium = browser
    live = serve_study(checks_study, f"sqlite:///{tmp_path / 'responses.sqlite'}")
    for i in range(6):
        client = live.client()
        choose = oracle(checks_study, 0.3 if i == 5 else 0.9, random.Random(i))
        answer_all(client, start(client, None, Participation(f"r{i}"), link={"PROLIFIC_PID": f"report{i}"}), choose,
                   Participation(f"r{i}"), random.Random(i))
    analyze(checks_study, live.db, tmp_path / "analysis", extractor="pixels", repeats=1, permutations=200)
    report = (tmp_path / "analysis" / "report.html").as_uri()
    fits = "() => [...document.querySelectorAll('.box')].map(b => b.scrollWidth <= b.clientWidth + 1)"
    for device, options in (("laptop", {"viewport": {"width": 1280, "height": 800}}),
                            ("phone", {k: v for k, v in playwright.devices["Pixel 5"].items() if k != "default_browser_type"})):
        context = chromium.new_context(**options)
        page = context.new_page()
        try:
            page.goto(report)
            page.evaluate("() => document.querySelectorAll('details').forEach(d => { d.open = true; })")  # every table
            assert no_sideways_scrolling(page), device
            assert page.evaluate("() => { const b = document.getElementById('main-table').parentElement; "
                                 "return b.scrollWidth <= b.clientWidth + 1; }"), device
            assert page.locator("#main-table th").all_inner_texts()[-2:] == ["LC student", "NN student"]
            if device == "laptop":
                assert all(page.evaluate(fits)), page.evaluate(fits)
            assert "Exclusions" in page.inner_text("#exclusions")
            page.screenshot(path=str(tmp_path / f"report_{device}.png"), full_page=True)
        finally:
            context.close()
    print(f"\nreport screenshots: {tmp_path}")


# ---- teaching aids at a display size larger than the working size ------------------------------------

@pytest.mark.slow
def test_aids_and_enlarged_images_at_128_px_in_chromium(browser, pair_study, serve_study, tmp_path):
    """pair_study's set (32 px working size) with its aids, shown at 128 px: on the teaching page an
    image opens large at 128 px and its strip opens (logged); in the test, the reopened teaching set
    opens an image's strip and enlarges an image too."""
    from test_study_aids import FRAMES, make_aid_study

    _, chromium = browser
    design = make_aid_study(pair_study, tmp_path, display=128)
    live = serve_study(design, f"sqlite:///{tmp_path / 'responses.sqlite'}")
    labels = labels_of(design)
    context = chromium.new_context(viewport={"width": 1280, "height": 800})
    page, errors = context.new_page(), []
    page.on("pageerror", lambda error: errors.append(str(error)))
    loaded = "(selector) => [...document.querySelectorAll(selector)].every(i => i.complete && i.naturalWidth === 128)"

    def enlarge_and_open_aid(scope: str) -> None:
        page.click(f"{scope} button.enlarge >> nth=0")
        page.wait_for_function("() => { const i = document.getElementById('viewer-image'); "
                               "return i && i.complete && i.naturalWidth === 128; }")
        assert page.locator("#viewer").is_visible() and page.locator("#viewer-image").bounding_box()["width"] > 128
        page.click("#close-viewer")
        page.click(f"{scope} button.aid-button >> nth=0")
        assert page.locator("#aid-dialog").is_visible()
        assert page.locator("#aid-strips .aid-frames img").count() == FRAMES
        page.wait_for_function(loaded, arg="#aid-strips img")
        page.click("#close-aid")

    try:
        page.goto(f"{live.url}/?participant=aids-128")
        page.check("input[name=consent]")
        page.click("#start")
        page.wait_for_url("**/instructions")
        page.click("#continue")
        page.wait_for_url("**/teach")
        page.wait_for_function(loaded, arg=".class-images img")
        enlarge_and_open_aid(".teaching-grid")
        page.click("#start-quiz")
        page.wait_for_url("**/trial")
        opened = False
        for _ in range(30):
            wait_until_ready(page)
            if page.url.endswith("/done"):
                break
            if page.locator("#intro").is_visible():
                page.click("#intro-continue")
                continue
            token = page.evaluate("() => new URL(document.getElementById('stimulus').src).pathname.slice(5, 21)")
            if page.inner_text("#progress").startswith("Test 2") and not opened:
                page.click("#show-teaching")
                enlarge_and_open_aid("#teaching-dialog")
                page.click("#close-teaching")
                opened = True
            page.click(f"button.choice >> nth={labels[token]}")
        page.wait_for_url("**/done")
        with live.db.read() as conn:
            logged = [(e.kind, e.phase) for e in conn.execute(events.select().order_by(events.c.id))]
    finally:
        context.close()
    assert not errors, errors
    assert opened and logged[:3] == [("open_aid", "teaching"), ("close_aid", "teaching"), ("teaching_done", "teaching")]
    assert sorted(logged[3:]) == [("close_aid", "test"), ("hide_teaching_set", "test"), ("open_aid", "test"),
                                  ("show_teaching_set", "test")]  # sent by separate requests: any order
