"""pmrs-web in a real headless Chromium (Debian's chromium + chromium-driver through Selenium)
against real pmrs-server and pmrs-web processes on a tiny bundle: a user's list, sliders that
re-query, seed songs, the per-genre tabs, a song's clip playing, a play recorded, a clip uploaded,
error pages. Without a browser these fail when ``CI`` is set (``make install`` provides one) and
are skipped with the install hint otherwise."""

import os
from pathlib import Path

import pytest

from pmrs.web.browser import INSTALL_HINT, find_browser, headless
from servers import ServerProcess
from webworld import TOKEN, WebProcess, make_world

if find_browser() is None:
    if os.environ.get("CI"):
        pytest.fail(f"no headless browser in CI: {INSTALL_HINT}", pytrace=False)
    pytest.skip(INSTALL_HINT, allow_module_level=True)

from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.common.keys import Keys  # noqa: E402
from selenium.webdriver.support import expected_conditions as EC  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402


@pytest.fixture(scope="module")
def world(serving_workdir, tmp_path_factory):
    return make_world(serving_workdir, tmp_path_factory.mktemp("webb"))


@pytest.fixture(scope="module")
def site(world, tmp_path_factory):
    logs = tmp_path_factory.mktemp("webblog")
    server = ServerProcess(world.work, logs / "s.log", env={"PMRS_WRITE_TOKEN": TOKEN})
    web = WebProcess(world.work, server.address, logs / "w.log", env={"PMRS_WRITE_TOKEN": TOKEN})
    yield web
    web.stop()
    server.kill()


@pytest.fixture(scope="module")
def browser():
    driver = headless()
    driver.set_page_load_timeout(30)
    yield driver
    driver.quit()


def wait(driver, timeout=15):
    return WebDriverWait(driver, timeout)


def rows(driver):
    return driver.execute_script("return Array.from(document.querySelectorAll('#rec-list tbody tr'))"
                                 ".map(r => r.dataset.song);")


def test_typing_a_user_prefix_and_enter_shows_the_list(site, browser, world):
    browser.get(site.url + "/")
    box = browser.find_element(By.ID, "user")
    box.send_keys(world.users[0][:4] + Keys.ENTER)
    wait(browser).until(lambda d: len(rows(d)) == 20)
    shown = browser.find_element(By.ID, "shown-user").text
    assert shown.startswith(world.users[0][:4])
    assert box.get_attribute("value") == shown != world.users[0][:4]   # the box says whose list it is
    assert f"user={shown}" in browser.current_url
    badges = {b.text for b in browser.find_elements(By.CSS_SELECTOR, "#rec-list td > .badge")}
    assert badges == {"collaborative", "acoustic", "metadata"}
    assert "user=" in browser.current_url     # the view is a link one can share
    why = browser.find_element(By.CSS_SELECTOR, "#rec-list details.why")
    assert not why.find_element(By.TAG_NAME, "li").is_displayed()
    why.find_element(By.TAG_NAME, "summary").click()    # the reasons open under the title
    assert why.find_element(By.TAG_NAME, "li").is_displayed() and why.find_element(By.TAG_NAME, "li").text


def test_moving_a_slider_requeries(site, browser, world):
    browser.get(f"{site.url}/?user={world.users[1]}")
    before = rows(browser)
    assert len(before) == 20
    for name, value in (("share.acoustic", 1), ("diversity", 1)):
        slider = browser.find_element(By.NAME, name)
        browser.execute_script("arguments[0].value = arguments[1];"
                               "arguments[0].dispatchEvent(new Event('input', {bubbles: true}));", slider, value)
        wait(browser).until(lambda d: rows(d) and rows(d) != before)
        assert f"{name}=1" in browser.current_url
        out = slider.find_element(By.XPATH, "following-sibling::output").text
        assert out == "1.00"
        before = rows(browser)


def test_seed_songs_from_the_search(site, browser):
    browser.get(site.url + "/")
    browser.find_element(By.ID, "seed-search").send_keys("an")
    first = wait(browser).until(EC.element_to_be_clickable((By.CSS_SELECTOR, "#seed-results li[data-song]")))
    seed = first.get_attribute("data-song")
    first.click()
    wait(browser).until(lambda d: len(rows(d)) == 20)
    assert seed not in rows(browser)
    assert browser.find_element(By.CSS_SELECTOR, f"#seed-list li[data-song='{seed}']")


def test_genre_tabs(site, browser, world):
    for user in world.users[4:]:     # a user whose recommendations span several genres
        browser.get(f"{site.url}/?user={user}")
        tabs = browser.find_elements(By.CSS_SELECTOR, ".tab")
        if len(tabs) >= 2:
            break
    panels = browser.find_elements(By.CSS_SELECTOR, ".panel")
    assert len(tabs) >= 2 and len(tabs) == len(panels)
    assert panels[0].is_displayed() and not panels[1].is_displayed()
    assert "%" in tabs[0].text
    assert [t.get_attribute("aria-selected") for t in tabs[:2]] == ["true", "false"]
    tabs[1].click()
    assert panels[1].is_displayed() and not panels[0].is_displayed()
    assert [t.get_attribute("aria-selected") for t in tabs[:2]] == ["false", "true"]
    assert tabs[1].get_attribute("aria-controls") == panels[1].get_attribute("id")
    assert panels[1].find_elements(By.CSS_SELECTOR, "tbody tr")


def test_a_song_page_plays_its_clip(site, browser, world):
    browser.get(f"{site.url}/songs/{world.clip_song}")
    assert browser.find_elements(By.CSS_SELECTOR, "#genre-chart rect")
    assert len(browser.find_elements(By.CSS_SELECTOR, ".neighbour-list")) == 3
    browser.execute_script("document.getElementById('clip').play();")
    wait(browser).until(lambda d: d.execute_script("return document.getElementById('clip').currentTime") > 0.3)
    # seeking works: the clip is served with ranges
    browser.execute_script("const a = document.getElementById('clip'); a.currentTime = 2.5;")
    wait(browser).until(lambda d: d.execute_script("return document.getElementById('clip').currentTime") >= 2.5)
    assert browser.execute_script("return document.getElementById('clip').error") is None


def test_played_it_removes_the_song_from_the_list(site, browser, world):
    browser.get(f"{site.url}/?user={world.users[3]}")
    first = rows(browser)[0]
    browser.find_element(By.CSS_SELECTOR, f"button.played[data-song='{first}']").click()
    wait(browser).until(lambda d: first not in rows(d) and len(rows(d)) == 20)
    assert "recorded a play" in browser.find_element(By.ID, "status").text


def test_not_for_me_and_skip_change_the_list_at_once(site, browser, world):
    browser.get(f"{site.url}/?user={world.users[4]}")
    listed = rows(browser)
    title = browser.find_element(By.CSS_SELECTOR, f"tr[data-song='{listed[0]}'] td a").text
    browser.find_element(By.CSS_SELECTOR, f"button.fb[data-action='dislike'][data-song='{listed[0]}']").click()
    wait(browser).until(lambda d: listed[0] not in rows(d) and len(rows(d)) == 20)
    assert browser.find_element(By.ID, "status").text == f"recorded: dislike {title}"   # by title, not id
    now = rows(browser)
    browser.find_element(By.CSS_SELECTOR, f"button.fb[data-action='skip'][data-song='{now[0]}']").click()
    wait(browser).until(lambda d: rows(d)[-1] == now[0])            # a skipped song sinks to the end



def test_undo_on_the_history_page_brings_a_song_back(site, browser, world):
    user = world.users[7]
    browser.get(f"{site.url}/?user={user}")
    first = rows(browser)[0]
    browser.find_element(By.CSS_SELECTOR, f"button.fb[data-action='dislike'][data-song='{first}']").click()
    wait(browser).until(lambda d: first not in rows(d))
    browser.find_element(By.LINK_TEXT, "history").click()
    undo = wait(browser).until(EC.element_to_be_clickable((By.CSS_SELECTOR, f"button.undo[data-song='{first}']")))
    undo.click()
    wait(browser).until(lambda d: not d.find_elements(By.CSS_SELECTOR, f"button.undo[data-song='{first}']"))
    browser.get(f"{site.url}/?user={user}")
    assert first in rows(browser)


def test_upload_a_clip_and_land_on_its_page(site, browser, world):
    browser.get(site.url + "/upload")
    form = browser.find_element(By.ID, "upload")
    for name, value in (("song_id", "BROWSER-NEW-1"), ("title", "Heard <first> here"), ("artist", "Browser"),
                        ("genre", world.genres[0])):
        form.find_element(By.NAME, name).send_keys(value)
    form.find_element(By.NAME, "clip").send_keys(str(world.audio_dir / f"{world.clip_song}.wav"))
    form.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    wait(browser, 60).until(lambda d: d.current_url.endswith("/songs/BROWSER-NEW-1") or d.find_elements(By.CSS_SELECTOR, ".error"))
    assert browser.current_url.endswith("/songs/BROWSER-NEW-1"), browser.find_element(By.CSS_SELECTOR, ".error").text
    assert browser.find_element(By.TAG_NAME, "h1").text.startswith("Heard <first> here")
    acoustic = browser.find_element(By.CSS_SELECTOR, ".neighbour-list[data-source='acoustic']")
    assert len(acoustic.find_elements(By.TAG_NAME, "li")) == 8
    browser.execute_script("document.getElementById('clip').play();")   # its clip, before any rebuild
    wait(browser).until(lambda d: d.execute_script("return document.getElementById('clip').currentTime") > 0.3)


def test_errors_are_readable_pages(site, browser, tmp_path):
    browser.get(site.url + "/songs/NO-SUCH-SONG")
    assert "unknown song" in browser.find_element(By.CSS_SELECTOR, ".error").text
    browser.get(site.url + "/?user=zz-nobody")
    assert "no user" in browser.find_element(By.CSS_SELECTOR, ".error").text
    browser.get(site.url + "/upload")
    form = browser.find_element(By.ID, "upload")
    for name, value in (("song_id", "BROWSER-BAD"), ("title", "T"), ("artist", "A")):
        form.find_element(By.NAME, name).send_keys(value)
    bad = tmp_path / "not-audio.wav"
    bad.write_bytes(b"not audio " * 200)
    form.find_element(By.NAME, "clip").send_keys(str(bad))
    form.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    error = wait(browser, 30).until(EC.presence_of_element_located((By.CSS_SELECTOR, ".error")))
    assert error.text and browser.current_url.endswith("/upload")
    browser.get(site.url + "/")
    browser.find_element(By.ID, "seed-search").send_keys("x" * 300)
    wait(browser).until(lambda d: "not something to search for" in d.find_element(By.ID, "seed-results").text)


def test_the_map_opens_a_song(site, browser):
    browser.get(site.url + "/map")
    points = browser.find_elements(By.CSS_SELECTOR, "#map a.point.cold")
    assert points
    song = points[0].get_attribute("data-song")
    browser.execute_script("arguments[0].dispatchEvent(new MouseEvent('click', {bubbles: true}))", points[0])
    wait(browser).until(lambda d: d.current_url.endswith(f"/songs/{song}"))
    assert "nobody yet" in browser.page_source


def test_a_cross_site_form_and_fetch_from_another_origin_are_refused(site, browser, world, tmp_path):
    # an attacker's page on another origin (localhost, another port) posts a form to pmrs-web's
    # /api/play and fires a text/plain fetch at it; the browser sends its Origin and Fetch
    # Metadata, and pmrs-web writes nothing
    import http.server
    import threading
    from urllib.parse import urlsplit

    from pmrs.live.log import WriteLog

    target = site.url + "/api/play"
    attack = (f"<!doctype html><title>win a prize</title>"
              f"<form id=f method=post action='{target}'>"
              f"<input name=user value='{world.users[0]}'><input name=song value='{world.clip_song}'></form>"
              f"<script>fetch('{target}', {{method: 'POST', mode: 'no-cors', headers: {{'Content-Type': 'text/plain'}},"
              f"body: 'user={world.users[0]}&song={world.clip_song}'}}).finally(() => document.getElementById('f').submit());"
              f"</script>").encode()

    class Attacker(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.end_headers()
            self.wfile.write(attack)

        def log_message(self, *args):
            pass

    evil = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Attacker)
    threading.Thread(target=evil.serve_forever, daemon=True).start()
    with WriteLog.of(world.work) as wlog:
        before = wlog.last_seq()
    try:
        browser.get(f"http://localhost:{evil.server_address[1]}/")
        wait(browser).until(lambda d: urlsplit(d.current_url).port == urlsplit(site.url).port)
        body = browser.find_element(By.TAG_NAME, "body").text
        assert "refused" in body and ("cross-site" in body or "another origin" in body)
    finally:
        evil.shutdown()
    with WriteLog.of(world.work) as wlog:
        assert wlog.last_seq() == before
    # the page's own "played it" still writes (same origin)
    browser.get(f"{site.url}/?user={world.users[0]}")
    wait(browser).until(lambda d: len(rows(d)) == 20)


def test_the_lab_shows_live_figures(site, browser):
    browser.get(site.url + "/lab")
    wait(browser).until(lambda d: d.execute_script(
        "return document.querySelector('#live-figures').dataset.updated || ''"))
    captions = [c.text for c in browser.find_elements(By.CSS_SELECTOR, "#live-figures caption")]
    assert "pmrs-server: calls" in captions and "pmrs-web: requests" in captions
    methods = browser.execute_script(
        "return Array.from(document.querySelectorAll('#live-figures table')[0].querySelectorAll('tbody tr td:first-child'))"
        ".map(td => td.textContent);")
    assert "GetBundleInfo" in methods    # the page asked the server for the bundle it describes


def _search(site, q: str) -> list[str]:
    import json
    import urllib.parse
    import urllib.request

    with urllib.request.urlopen(f"{site.url}/api/search?q={urllib.parse.quote(q)}", timeout=10) as r:
        return [s["song_id"] for s in json.load(r)["songs"]]


def found(driver) -> list[str]:
    return driver.execute_script("return Array.from(document.querySelectorAll('#seed-results li'))"
                                 ".map(li => li.dataset.song || li.textContent);")


def test_a_late_search_answer_does_not_land_under_a_newer_query(site, browser, world):
    import time

    browser.get(site.url + "/")
    # a query typed further whose answer differs from the first one's
    first = _search(site, "an")
    longer = next(q for q in ("and", "ang", "ant", "ane", "ana", "ank", "ano") if first != _search(site, q) != [])
    expected = _search(site, longer)
    # the answer to "an" comes back late, after the answer to the longer query
    browser.execute_script("""
        const real = window.fetch;
        window.fetch = (url, opts) => /[?&]q=an$/.test(String(url))
            ? real(url).then((resp) => new Promise((ok) => setTimeout(() => ok(resp), 1000)))
            : real(url, opts);""")
    box = browser.find_element(By.ID, "seed-search")
    below = browser.execute_script("return document.getElementById('results').getBoundingClientRect().top")
    box.send_keys("an")
    box.send_keys(longer[2:])
    wait(browser).until(lambda d: found(d) == expected)
    time.sleep(1.5)                   # the late answer has come, and was dropped
    assert found(browser) == expected
    # the answers float in a bounded box: nothing under the search moved down
    assert browser.execute_script("return document.getElementById('results').getBoundingClientRect().top") == below
    assert browser.execute_script("return document.getElementById('seed-results').getBoundingClientRect().height") <= 400


def test_the_search_answers_are_reachable_with_the_keyboard(site, browser):
    browser.get(site.url + "/")
    box = browser.find_element(By.ID, "seed-search")
    box.send_keys("an")
    wait(browser).until(lambda d: len(browser.find_elements(By.CSS_SELECTOR, "#seed-results li[data-song]")) >= 2)
    options = browser.find_elements(By.CSS_SELECTOR, "#seed-results li[role=option][data-song]")
    box.send_keys(Keys.ARROW_DOWN, Keys.ARROW_DOWN)
    assert box.get_attribute("aria-activedescendant") == options[1].get_attribute("id")
    assert options[1].get_attribute("aria-selected") == "true" and options[0].get_attribute("aria-selected") == "false"
    box.send_keys(Keys.ARROW_UP)
    assert box.get_attribute("aria-activedescendant") == options[0].get_attribute("id")
    seed = options[0].get_attribute("data-song")
    box.send_keys(Keys.ENTER)
    wait(browser).until(lambda d: len(rows(d)) == 20)
    assert browser.find_element(By.CSS_SELECTOR, f"#seed-list li[data-song='{seed}'] button.remove").get_attribute("aria-label")
    assert browser.current_url.endswith(f"seeds={seed}")


def test_the_shares_never_add_up_to_more_than_one(site, browser, world):
    browser.get(f"{site.url}/?user={world.users[1]}")
    shares = browser.find_elements(By.CSS_SELECTOR, "input.share")
    assert len(shares) >= 2
    for slider in shares + shares[:1]:
        browser.execute_script("window.before = document.getElementById('recs');"
                               "arguments[0].value = 0.7; arguments[0].dispatchEvent(new Event('input', {bubbles: true}));",
                               slider)
        values = [float(s.get_attribute("value")) for s in shares]
        assert sum(values) <= 1 + 1e-9 and float(slider.get_attribute("value")) == 0.7
        for s in shares:    # each label shows its handle's value
            assert s.find_element(By.XPATH, "following-sibling::output").text == f"{float(s.get_attribute('value')):.2f}"
        wait(browser).until(lambda d: d.execute_script(
            "const r = document.getElementById('recs'); return (r && r !== window.before) || document.querySelector('#results .error');"))
        assert not browser.find_elements(By.CSS_SELECTOR, "#results .error")
        assert len(rows(browser)) == 20


_CONTRAST = r"""
const rgb = (c) => c.match(/[\d.]+/g).map(Number);
const lum = (c) => { const v = rgb(c).slice(0, 3).map((x) => { x /= 255; return x <= 0.03928 ? x / 12.92 : ((x + 0.055) / 1.055) ** 2.4; });
                     return 0.2126 * v[0] + 0.7152 * v[1] + 0.0722 * v[2]; };
const background = (el) => { for (; el; el = el.parentElement) { const c = getComputedStyle(el).backgroundColor; const a = rgb(c);
                               if (a.length < 4 || a[3] > 0) return c; } return "rgb(255, 255, 255)"; };
const bad = [];
for (const el of document.querySelectorAll("body *")) {
  if (el.closest("[disabled], script, style, svg") || !el.getClientRects().length) continue;
  if (![...el.childNodes].some((n) => n.nodeType === 3 && n.textContent.trim())) continue;
  const [a, b] = [lum(getComputedStyle(el).color), lum(background(el))].sort((x, y) => y - x);
  const ratio = (a + 0.05) / (b + 0.05);
  if (ratio < 4.5) bad.push(`${el.tagName}.${el.className}: ${el.textContent.trim().slice(0, 30)} ${ratio.toFixed(2)}`);
}
return bad;"""


def test_the_listener_page_reads_well_without_a_mouse_or_good_eyes(site, browser, world):
    browser.get(f"{site.url}/?user={world.users[0]}")
    assert browser.find_element(By.TAG_NAME, "h1").text
    browser.find_element(By.TAG_NAME, "body").send_keys(Keys.TAB)
    first = browser.switch_to.active_element
    assert first.text == "Skip to recommendations" and first.get_attribute("href").endswith("#results")
    assert first.is_displayed()      # shown when focused
    assert browser.execute_script(_CONTRAST) == []
    browser.get(f"{site.url}/songs/{world.clip_song}")
    assert browser.execute_script(_CONTRAST) == []


@pytest.fixture(scope="module")
def phone():
    driver = headless()
    driver.set_page_load_timeout(30)
    # (a window is never narrower than 500 px: the phone's screen is emulated)
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                           {"width": 390, "height": 844, "deviceScaleFactor": 1, "mobile": True})
    yield driver
    driver.quit()


HOSTILE_ARTIST = "/artists/%C3%84rtist%20%26%20%3Ci%3ECo%3C/i%3E"   # the page of webworld's hostile artist


def _a_tag_page(world) -> str:
    from urllib.parse import quote

    from pmrs.catalog import CATALOG_FILE, Catalog
    with Catalog(world.work / CATALOG_FILE) as cat:
        return "/tags/" + quote(next(t for _, tags in cat.items_tags() for t in tags))


@pytest.fixture(scope="module")
def wide_report(world):
    """A report with a plot and a table far wider than a phone."""
    run = world.work / "reports" / "wide-1"
    run.mkdir(parents=True, exist_ok=True)
    (run / "plot.svg").write_text('<svg xmlns="http://www.w3.org/2000/svg" width="2000" height="600">'
                                  '<rect width="2000" height="600" fill="#2b6cb0"/></svg>')
    cells = " | ".join(f"column-{i}-with-a-long-heading" for i in range(12))
    (run / "report.md").write_text(f"# Wide\n\n![plot](plot.svg)\n\n| {cells} |\n|{'---|' * 12}\n| {cells} |\n")
    return run


def test_a_phone_sees_the_page_without_scrolling_sideways(site, phone, world, wide_report):
    # (on a phone the layout viewport grows with wider content: innerWidth is 390 only when none is)
    overflow = "return [document.documentElement.scrollWidth, window.innerWidth];"
    wide = ("return Array.from(document.querySelectorAll('body *')).filter(e => e.getBoundingClientRect().right > 390 && !e.parentElement.closest('.scroll'))"
            ".map(e => `${e.tagName}.${e.className}#${e.id}`);")   # what sticks out, to say so
    phone.get(f"{site.url}/?user={world.users[0]}")
    assert len(rows(phone)) == 20
    assert phone.execute_script(overflow) == [390, 390], phone.execute_script(wide)
    for page in (f"/songs/{world.clip_song}", "/lab", "/map", HOSTILE_ARTIST, _a_tag_page(world),
                 f"/radio?song={world.cold_song}", "/radio?artist=" + HOSTILE_ARTIST.removeprefix("/artists/")):
        phone.get(site.url + page)
        assert phone.execute_script(overflow) == [390, 390], (page, phone.execute_script(wide))
    phone.get(site.url + "/lab")
    plot = phone.find_element(By.CSS_SELECTOR, ".report[data-report='wide-1'] a.plot img")
    wait(phone).until(lambda d: plot.size["width"] > 100)
    assert plot.size["width"] <= 390 and plot.find_element(By.XPATH, "..").get_attribute("href").endswith("/lab/files/wide-1/plot.svg")
    phone.get(site.url + "/map")
    for sel in ("#map a.point:not(.cold) circle", "#map a.point.cold rect"):   # points a finger can see
        box = phone.execute_script("const r = document.querySelector(arguments[0]).getBoundingClientRect();"
                                   "return [r.width, r.height];", sel)
        assert min(box) >= 6, (sel, box)
    assert phone.execute_script("return document.getElementById('map').getBoundingClientRect().width") <= 390


def test_the_favicon_loads(site, browser):
    browser.get(site.url + "/favicon.ico")
    assert browser.find_elements(By.TAG_NAME, "svg")


AXE = (Path(__file__).parent / "vendor" / "axe-core" / "axe.min.js").read_text(encoding="utf-8")


def _axe_serious(driver) -> list[str]:
    """axe-core's serious and critical violations on the page shown (rule: the elements)."""
    driver.execute_script(AXE)
    found = driver.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "axe.run(document, {resultTypes: ['violations']}).then(r => done(r.violations.map("
        "v => ({id: v.id, impact: v.impact, nodes: v.nodes.slice(0, 3).map(n => n.target.join(' '))}))));")
    return [f"{v['id']} ({v['impact']}): {v['nodes']}" for v in found if v["impact"] in ("serious", "critical")]


@pytest.mark.parametrize("width", ["desktop", "phone"])
def test_no_page_has_a_serious_accessibility_violation(site, browser, phone, world, wide_report, width):
    driver = browser if width == "desktop" else phone
    pages = ["/", f"/?user={world.users[0]}", f"/?seeds={world.clip_song}", f"/songs/{world.clip_song}",
             "/upload", "/map", "/lab", "/songs/NO-SUCH-SONG", HOSTILE_ARTIST, _a_tag_page(world),
             f"/users/{world.users[7]}", f"/radio?song={world.cold_song}&user={world.users[8]}"]
    found = {}
    for page in pages:
        driver.get(site.url + page)
        if page.startswith("/?user="):
            wait(driver).until(lambda d: len(rows(d)) == 20)
        found[page] = _axe_serious(driver)
    assert found == {page: [] for page in pages}


def _radio(driver) -> tuple[str, list[str]]:
    """The song now playing and the songs queued after it."""
    return driver.execute_script(
        "return [document.getElementById('now-playing').dataset.song || '',"
        " Array.from(document.querySelectorAll('#radio-queue li')).map(li => li.dataset.song)];")


def _queued(driver, what: str) -> list[str]:
    return driver.execute_script(f"return Array.from(document.querySelectorAll('#radio-queue li')).map(li => li.dataset.{what});")


def _ended(driver) -> None:
    """The clip now playing comes to its end (as the browser would say when it does)."""
    driver.execute_script("document.getElementById('radio-audio').dispatchEvent(new Event('ended'));")


@pytest.mark.parametrize("width", ["desktop", "phone"])
def test_a_radio_plays_on_by_itself_and_skip_and_not_for_me_steer_it(site, browser, phone, world, width):
    driver = browser if width == "desktop" else phone
    if width == "desktop":
        driver.set_window_size(1280, 800)
    user = world.users[10 if width == "desktop" else 11]
    driver.get(f"{site.url}/?user={user}")
    wait(driver).until(lambda d: len(rows(d)) == 20)
    first_row = rows(driver)[0]
    driver.find_element(By.CSS_SELECTOR, f"tr[data-song='{first_row}'] a.radio-start").click()   # "radio" on a row
    wait(driver).until(lambda d: "/radio?" in d.current_url and _radio(d)[0])
    assert f"song={first_row}" in driver.current_url and f"user={user}" in driver.current_url
    audio = driver.find_element(By.ID, "radio-audio")
    assert audio.get_attribute("aria-label") and audio.get_attribute("src").endswith(f"/media/{_radio(driver)[0]}")
    # auto-advance: each clip's end plays the next song with a clip; more are asked for as the queue runs low
    heard = [_radio(driver)[0]]
    for _ in range(12):
        now, queue = _radio(driver)
        clips = _queued(driver, "clip")
        expected = next(s for s, c in zip(queue, clips) if c)
        _ended(driver)
        wait(driver).until(lambda d, expected=expected: _radio(d)[0] == expected)
        assert driver.find_element(By.ID, "now-title").text
        heard.append(expected)
    wait(driver).until(lambda d: len(_radio(d)[1]) > 3)
    assert len(set(heard)) == len(heard) == 13 and first_row not in heard      # past the first ten, none twice
    # skip: another song plays, and the queue after it is asked again
    now, before = _radio(driver)
    driver.find_element(By.CSS_SELECTOR, "button.radio-act[data-action='skip']").click()
    wait(driver).until(lambda d: "skipped" in d.find_element(By.ID, "status").text)
    after_skip, queue = _radio(driver)
    assert after_skip and after_skip != now and queue and not set(queue) & set(before) and now not in queue
    # not for me: the song's artist is gone from what follows
    artist = driver.execute_script("return document.getElementById('now-playing').dataset.artist").casefold()
    disliked = _radio(driver)[0]
    button = driver.find_element(By.CSS_SELECTOR, "button.radio-act[data-action='dislike']")
    assert button.get_attribute("aria-label") == "not for me: the song now playing"
    button.send_keys(Keys.ENTER)                 # (a button: the keyboard presses it as well)
    wait(driver).until(lambda d: "not for me" in d.find_element(By.ID, "status").text)
    now, queue = _radio(driver)
    artists = [a.casefold() for a in _queued(driver, "artist")]
    now_artist = driver.execute_script("return document.getElementById('now-playing').dataset.artist").casefold()
    assert artist and now != disliked and queue and artist not in artists and now_artist != artist
    assert driver.execute_script("return [document.documentElement.scrollWidth, window.innerWidth];")[0] <= \
        driver.execute_script("return window.innerWidth;")
    assert _axe_serious(driver) == []
    # the listener's own feedback was written through the page: the history lists the dislike
    driver.get(f"{site.url}/users/{user}")
    assert driver.find_elements(By.CSS_SELECTOR, f"ul[data-kind='undo_dislike'] li[data-song='{disliked}']")
