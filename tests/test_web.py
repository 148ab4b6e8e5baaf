"""pmrs-web over HTTP (Starlette's TestClient) against a real pmrs-server process: every page
answers from the server, errors are readable pages with the right status, catalog text is
escaped, clips are served with their MIME type and ranges, and no file outside the media and
report folders can be reached."""

import html
import json
import os
import wave
from html.parser import HTMLParser

import pytest

import pmrs

from pmrs.live.songs import MAX_CLIP_BYTES
from pmrs.web.app import create_app, markdown_blocks
from pmrs.web.data import MAX_QUERY_CHARS, WorkdirData
from servers import ServerProcess
from webworld import HOSTILE, TOKEN, WebProcess, make_world, page_client


@pytest.fixture(scope="module")
def world(serving_workdir, tmp_path_factory):
    return make_world(serving_workdir, tmp_path_factory.mktemp("web"))


@pytest.fixture(scope="module")
def server(world, tmp_path_factory):
    s = ServerProcess(world.work, tmp_path_factory.mktemp("weblog") / "s.log", env={"PMRS_WRITE_TOKEN": TOKEN})
    yield s
    s.kill()


@pytest.fixture(scope="module")
def web(world, server):
    with page_client(create_app(world.work, server.address, token=TOKEN)) as c:
        yield c


def _alert(html: str) -> str:
    assert 'role="alert"' in html, html[:500]
    return html.split('role="alert"', 1)[1].split("</div>", 1)[0]


def test_listener_view_shows_a_users_list_with_badges_scores_reasons_and_genre_tabs(web, world, server):
    r = web.get("/", params={"user": world.users[0]})
    assert r.status_code == 200
    assert r.text.count("<tr data-song=") == 20
    for source in ("collaborative", "acoustic", "metadata"):   # the bundle's sources, as badges
        assert f'class="badge src-{source}">{source}</span>' in r.text
    assert 'role="tab"' in r.text and 'role="tabpanel"' in r.text
    # every row says why it is there, one line per source that placed it, in the server's words
    rows = r.text.split("<tr data-song=")[1:]
    assert all('<details class="why">' in row for row in rows)
    with pmrs.connect(server.address) as client:
        served = client.recommend(world.users[0], k=20, explain=True).songs
    for row, song in zip(rows, served):
        assert row.startswith(f'"{song.song_id}"') and song.reasons
        for reason in song.reasons:
            assert html.escape(reason.text) in row
    # a prefix: the first known id that starts with it, said so
    prefix = world.users[0][:3]
    r = web.get("/fragment/recommend", params={"user": prefix})
    assert r.status_code == 200 and "first id that starts with it" in r.text
    first = sorted(u for u in world.users if u.startswith(prefix))[0]
    assert f'data-user="{first}"' in r.text


def test_sliders_and_filters_change_the_answer(web, world):
    user = world.users[1]

    def badges(**params):
        r = web.get("/fragment/recommend", params={"user": user, **params})
        assert r.status_code == 200, r.text
        rows = r.text.split("<tr data-song=")[1:]
        return [row.split("</tr>")[0] for row in rows]

    def order(rows):
        return [row.split('"', 2)[1] for row in rows]

    only_acoustic = badges(**{"share.acoustic": 1})
    none_acoustic = badges(**{"share.acoustic": 0, "share.metadata": 0})
    # (in this 80-song world every source's candidates hold every song, so each row carries
    # every badge; the order is what the shares decide)
    assert all(">acoustic<" in row for row in only_acoustic)
    assert all(">collaborative<" in row for row in none_acoustic)
    assert order(only_acoustic) != order(none_acoustic)
    assert order(badges(diversity=1)) != order(badges(diversity=0))
    genre = world.genres[0]
    rows = badges(genre=genre)
    assert rows and all(f"</span>{genre}</td>" in row for row in rows)
    years = badges(min_year=1990, max_year=1999)
    assert all(any(f"<td>{y}</td>" in row for y in range(1990, 2000)) for row in years)


def test_seed_songs_from_the_catalog_search(web, world):
    found = web.get("/api/search", params={"q": "a"}).json()["songs"]
    assert found and all("a" in (s["title"] + s["artist"]).lower() for s in found)
    r = web.get("/fragment/recommend", params={"seeds": ",".join(s["song_id"] for s in found[:3])})
    assert r.status_code == 200 and r.text.count("<tr data-song=") == 20
    assert not {s["song_id"] for s in found[:3]} & set(r.text.split('data-song="')[1:])


@pytest.mark.parametrize("q,status", [("", 400), ("   ", 400), ("x" * (MAX_QUERY_CHARS + 1), 400),
                                      ("a\x01b", 400), ("zzzzqqqq-no-such-song", 200)])
def test_empty_and_absurd_searches(web, q, status):
    r = web.get("/api/search", params={"q": q})
    assert r.status_code == status
    assert ("error" in r.json()) == (status == 400)
    if status == 200:
        assert r.json()["songs"] == []


def test_catalog_text_is_escaped_everywhere(web, world):
    song = world.hostile_song
    pages = [web.get(f"/songs/{song}").text]
    r = web.get("/api/search", params={"q": "東京"})
    assert [s["song_id"] for s in r.json()["songs"]] == [song] and r.json()["songs"][0]["title"] == HOSTILE
    pages.append(web.get("/", params={"seeds": song}).text)
    for html in pages:
        assert "<script>alert" not in html and "<b>Ünïcödé</b>" not in html
        assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt; &amp; &lt;b&gt;Ünïcödé&lt;/b&gt; 東京 &#39;q&#39;" in html


def test_song_page_has_fields_genre_chart_neighbours_per_source_and_a_clip(web, world, server):
    from urllib.parse import quote
    r = web.get(f"/songs/{world.clip_song}")
    assert r.status_code == 200
    assert 'id="genre-chart"' in r.text and r.text.count("<rect") >= len(world.genres)
    for source in ("collaborative", "acoustic", "metadata"):
        part = r.text.split(f'data-source="{source}"', 1)[1].split("</section>", 1)[0]
        assert part.count("<li>") == 8
    assert f'src="/media/{world.clip_song}"' in r.text
    import pmrs   # the tags row shows the API's tags, heaviest first
    with pmrs.connect(server.address) as client:
        near = client.similar_songs(world.clip_song, k=50).song_ids
        tagged = next(s for s in [world.clip_song, *near] if client.song(s).tags)
        tags = client.song(tagged).tags
    page = web.get(f"/songs/{tagged}").text
    row = page.split('<td class="tags">', 1)[1].split("</td>", 1)[0]
    assert row == "".join(f'<a class="tag" href="/tags/{quote(t)}" title="{w}">{t}</a>' for t, w in tags)
    tag_page = web.get(f"/tags/{quote(tags[0][0])}")      # a tag's page lists the songs tagged with it
    assert tag_page.status_code == 200 and f'<tr data-song="{tagged}">' in tag_page.text
    assert web.get("/tags/no-such-tag-anywhere").status_code == 404
    cold = web.get(f"/songs/{world.cold_song}").text
    assert "has no collaborative vector" in cold
    assert cold.split('data-source="acoustic"', 1)[1].split("</section>")[0].count("<li>") == 8


def test_an_artist_page_lists_exactly_the_artists_catalog_songs_and_similar_artists(web, world):
    from urllib.parse import quote, unquote

    from pmrs.catalog import CATALOG_FILE, Catalog
    with Catalog(world.work / CATALOG_FILE) as cat:
        by_artist: dict[str, set[str]] = {}
        for sid, f in cat.items():
            by_artist.setdefault(f.get("artist") or "", set()).add(sid)
    artist = max((a for a in by_artist if a), key=lambda a: len(by_artist[a]))
    r = web.get(f"/artists/{quote(artist)}")
    assert r.status_code == 200
    listed = [t for t in _Tags(r.text.split('id="artist-songs"', 1)[1].split("</table>", 1)[0]).find("tr")
              if "data-song" in t]
    assert {t["data-song"] for t in listed} == by_artist[artist] and len(listed) == len(by_artist[artist])
    similar = r.text.split('id="similar-artists"', 1)[1].split("</ol>", 1)[0]
    assert 0 < similar.count("<li>") <= 10 and f">{html.escape(artist)}<" not in similar
    # the hostile artist: escaped on its page, linked from its song's page and from lists
    hostile = "Ärtist & <i>Co</i>"
    url = f"/artists/{quote(hostile)}"
    page = web.get(url)
    assert page.status_code == 200 and "<i>Co</i>" not in page.text
    assert "<h1" in page.text and "Ärtist &amp; &lt;i&gt;Co&lt;/i&gt;</h1>" in page.text
    assert [t["data-song"] for t in _Tags(page.text).find("tr") if "data-song" in t] == [world.hostile_song]
    song = _Tags(web.get(f"/songs/{world.hostile_song}").text)
    assert [unquote(a["href"]) for a in song.find("a") if a["href"].startswith("/artists/")][:2] == [f"/artists/{hostile}"] * 2
    rec = web.get("/fragment/recommend", params={"user": world.users[0]}).text
    assert rec.count('<a href="/artists/') >= 10
    missing = web.get("/artists/Nobody%20Of%20This%20Name")
    assert missing.status_code == 404 and "no artist" in _alert(missing.text)


def test_clips_are_served_with_their_type_and_ranges(web, world):
    path = world.audio_dir / f"{world.clip_song}.wav"
    whole = web.get(f"/media/{world.clip_song}")
    assert whole.status_code == 200 and whole.headers["content-type"] == "audio/wav"
    assert whole.content == path.read_bytes() and whole.headers["accept-ranges"] == "bytes"
    part = web.get(f"/media/{world.clip_song}", headers={"Range": "bytes=100-299"})
    assert part.status_code == 206 and part.content == path.read_bytes()[100:300]
    assert part.headers["content-range"] == f"bytes 100-299/{path.stat().st_size}"
    assert web.get(f"/media/{world.clip_song}", headers={"Range": "bytes=999999999-"}).status_code == 416


@pytest.mark.parametrize("url", ["/media/%2e%2e", "/media/..%2f..%2fetc%2fpasswd",
                                 "/media/%2e%2e%2f%2e%2e%2fbundles%2fCURRENT", "/media//etc/passwd",
                                 "/media/%2Fetc%2Fpasswd",
                                 "/lab/files/..%2f..%2fbundles%2fCURRENT", "/lab/files/%2fetc%2fpasswd",
                                 "/lab/files//etc/passwd", "/static/..%2f..%2fapp.py", "/media/NO-SUCH-SONG"])
def test_nothing_outside_the_media_and_report_folders(web, url):
    r = web.get(url)
    assert r.status_code == 404
    assert b"root:" not in r.content and b"import" not in r.content


def test_raw_paths_with_dot_segments_reach_nothing(world, server, tmp_path):
    """Paths sent as they are (a browser or httpx would remove the dot segments first), to the
    real ``pmrs-web`` process."""
    proc = WebProcess(world.work, server.address, tmp_path / "web.log")
    try:
        for path in ("/media/..", "/media/../../etc/passwd", "/media/%2e%2e/%2e%2e/etc/passwd",
                     "/lab/files/../bundles/CURRENT", "/lab/files/../../../../etc/passwd",
                     "/lab/files/%2e%2e/%2e%2e/etc/passwd", "/static/../app.py", "/static/%2e%2e/app.py",
                     "/lab/files/..%5c..%5cetc%5cpasswd", "/media/%00", "/lab/files/a%00.png"):
            status, body = proc.raw_get(path)
            assert status in (400, 404), (path, status)
            assert b"root:" not in body and b"import " not in body and b"bundles" not in body[:100]
        status, body = proc.raw_get(f"/media/{world.clip_song}")
        assert status == 200 and body[:4] == b"RIFF"
    finally:
        assert proc.stop() == 0


def test_symlinks_out_of_the_media_folders_are_refused(tmp_path, world):
    audio = tmp_path / "audio"
    audio.mkdir()
    good = audio / "GOOD.wav"
    good.write_bytes((world.audio_dir / f"{world.clip_song}.wav").read_bytes())
    secret = tmp_path / "secret.wav"
    secret.write_bytes(b"RIFF secret")
    (audio / "EVIL.wav").symlink_to(secret)
    (tmp_path / "work" / "reports" / "r1").mkdir(parents=True)
    (tmp_path / "work" / "reports" / "r1" / "plot.png").symlink_to(secret)
    (tmp_path / "work" / "features_report.json").write_text(json.dumps({"audio_dir": str(audio)}))
    data = WorkdirData(tmp_path / "work")
    assert data.clip("GOOD") == (good.resolve(), "audio/wav")
    assert data.clip("EVIL") is None and data.clip("../secret") is None
    assert data.report_file("r1/plot.png") is None and data.report_file("../features_report.json") is None
    assert data.report_file(str(secret)) is None


def test_unknown_ids_are_readable_404s(web):
    for url, words in (("/songs/NO-SUCH-SONG", "unknown song"), ("/?user=zz-no-such-user", "no user"),
                       ("/fragment/recommend?user=zz-no-such-user", "no user"), ("/nowhere", "no such page")):
        r = web.get(url)
        assert r.status_code == 404 and words in _alert(r.text) and "Traceback" not in r.text


@pytest.mark.parametrize("params,words", [({"user": "x", "share.acoustic": "2"}, "between 0 and 1"),
                                          ({"user": "x", "share.acoustic": "nan"}, "between 0 and 1"),
                                          ({"user": "x", "diversity": "lots"}, "must be a number"),
                                          ({"user": "x", "min_year": "-3"}, "must be a year"),
                                          ({"user": "x", "share.acoustic": ".7", "share.metadata": ".7"}, "more than 1"),
                                          ({}, "type a user id")])
def test_bad_settings_are_readable_400s(web, params, words):
    r = web.get("/fragment/recommend", params=params)
    assert r.status_code == 400 and words in _alert(r.text)


def test_a_server_that_is_down_is_a_readable_503(world):
    import socket
    with socket.socket() as s:       # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    app = create_app(world.work, f"127.0.0.1:{port}", timeout_s=1.0, retries=0)
    with page_client(app) as c:
        for url in ("/", f"/?user={world.users[0]}", f"/songs/{world.clip_song}", "/map", "/lab",
                    f"/fragment/recommend?user={world.users[0]}"):
            r = c.get(url)
            assert r.status_code == 503, url
            assert "not answering" in _alert(r.text) and "Traceback" not in r.text


class _Tags(HTMLParser):
    """Every start tag of a page, in order, as ``(tag, attrs)``, and the text of each ``<output>``."""

    def __init__(self, text: str):
        super().__init__()
        self.tags, self.outputs, self._in_output = [], [], False
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        self._in_output = tag == "output"

    def handle_data(self, data):
        if self._in_output:
            self.outputs.append(data)
            self._in_output = False

    def find(self, tag, **attrs):
        return [a for t, a in self.tags if t == tag and all(a.get(k.replace("_", "-")) == v for k, v in attrs.items())]


def test_the_listener_page_names_its_parts_for_assistive_technology(web, world):
    page = _Tags(web.get("/", params={"user": world.users[0]}).text)
    assert len(page.find("h1")) == 1
    focusable = [(t, a) for t, a in page.tags if t in ("a", "button", "input", "select")]
    assert focusable[0] == ("a", {"class": "skip", "href": "#results"})
    assert page.find("div", id="results")
    played = [a["aria-label"] for a in page.find("button", **{"class": "played"})]
    assert len(played) == 20 and len(set(played)) == 20 and all(p.startswith("played ") for p in played)
    tabs = page.find("button", role="tab")
    assert len(tabs) >= 1 and [t["aria-selected"] for t in tabs] == ["true"] + ["false"] * (len(tabs) - 1)
    panels = {a["id"] for a in page.find("div", role="tabpanel")}
    assert {t["aria-controls"] for t in tabs} == panels
    search = page.find("input", id="seed-search")[0]
    assert search["role"] == "combobox" and page.find("ul", id=search["aria-controls"], role="listbox")
    seeds = [s["song_id"] for s in web.get("/api/search", params={"q": "a"}).json()["songs"][:3]]
    removes = [a["aria-label"] for a in _Tags(web.get("/", params={"seeds": ",".join(seeds)}).text)
               .find("button", **{"class": "remove"})]
    assert len(removes) == 3 and len(set(removes)) == 3 and all(r.startswith("remove ") for r in removes)
    audio = _Tags(web.get(f"/songs/{world.clip_song}").text).find("audio")[0]
    assert audio["aria-label"].startswith("clip of ")


@pytest.mark.parametrize("params", [{}, {"share.acoustic": "0.423", "diversity": "0.377"}])
def test_a_slider_shows_the_value_its_handle_sits_at(web, world, params):
    page = _Tags(web.get("/", params={"user": world.users[0], **params}).text)
    sliders = page.find("input", type="range")
    assert len(sliders) == len(page.outputs) >= 2
    for slider, shown in zip(sliders, page.outputs):
        step = float(slider["step"])
        assert slider["value"] == shown.strip()      # the label is the value, to the digit
        assert abs(float(shown) / step - round(float(shown) / step)) < 1e-9   # and the handle can sit there
    if params:
        assert (page.outputs[0], page.outputs[-1]) == ("0.42", "0.38")   # share.acoustic, diversity


def test_a_prefix_typed_shows_the_id_it_resolved_to(web, world):
    prefix = world.users[0][:3]
    first = sorted(u for u in world.users if u.startswith(prefix))[0]
    box = _Tags(web.get("/", params={"user": prefix}).text).find("input", id="user")[0]
    assert first != prefix and box["value"] == first


def test_the_favicon_is_an_icon(web):
    r = web.get("/favicon.ico")
    assert r.status_code == 200 and r.headers["content-type"].startswith("image/svg+xml")
    assert r.text.startswith("<svg") and "</svg>" in r.text
    assert _Tags(web.get("/").text).find("link", rel="icon", href="/favicon.ico")


def test_played_it_records_a_play_and_the_list_changes(web, world):
    user = world.users[2]
    before = web.get("/fragment/recommend", params={"user": user}).text
    first = before.split('<tr data-song="', 1)[1].split('"', 1)[0]
    r = web.post("/api/play", data={"user": user, "song": first})
    assert r.status_code == 200 and r.json()["sequence"] >= 1
    after = web.get("/fragment/recommend", params={"user": user}).text
    assert f'<tr data-song="{first}"' not in after
    assert web.post("/api/play", data={"user": user, "song": "NO-SUCH-SONG"}).status_code == 404
    assert web.post("/api/play", data={"user": "", "song": first}).status_code == 400


def test_feedback_from_the_page_is_written_and_the_list_reflects_it(web, world):
    user = world.users[5]
    before = web.get("/fragment/recommend", params={"user": user}).text
    assert 'data-action="dislike"' in before and 'aria-label="not for me: ' in before
    first = before.split('<tr data-song="', 1)[1].split('"', 1)[0]
    r = web.post("/api/feedback", data={"user": user, "song": first, "action": "dislike"})
    assert r.status_code == 200 and r.json()["sequence"] >= 1
    assert f'<tr data-song="{first}"' not in web.get("/fragment/recommend", params={"user": user}).text
    assert web.post("/api/feedback", data={"user": user, "song": first, "action": "love"}).status_code == 400
    assert web.post("/api/feedback", data={"user": user, "song": "NO-SUCH-SONG", "action": "like"}).status_code == 404
    assert web.post("/api/feedback", data={"user": "", "song": first, "action": "like"}).status_code == 400


def test_a_listeners_history_page_lists_feedback_and_undoes_it(web, world):
    user = world.users[6]
    listed = web.get("/fragment/recommend", params={"user": user}).text
    assert f'href="/users/{user}"' in listed
    first, second, third = [part.split('"', 1)[0] for part in listed.split('<tr data-song="')[1:4]]
    for song, action in ((first, "dislike"), (second, "skip"), (third, "like")):
        assert web.post("/api/feedback", data={"user": user, "song": song, "action": action}).status_code == 200
    page = web.get(f"/users/{user}").text
    assert 'data-action="undo_dislike" data-song="' + first + '"' in page
    assert 'data-action="undo_skip" data-song="' + second + '"' in page and "skipped 1×" in page
    assert 'data-action="undo_like" data-song="' + third + '"' in page
    assert web.post("/api/feedback", data={"user": user, "song": third, "action": "undo_like"}).status_code == 200
    assert 'data-action="undo_like"' not in web.get(f"/users/{user}").text
    assert "Most played" in page and "Top artists" in page
    assert web.post("/api/feedback", data={"user": user, "song": first, "action": "undo_dislike"}).status_code == 200
    assert 'data-action="undo_dislike"' not in web.get(f"/users/{user}").text
    assert f'<tr data-song="{first}"' in web.get("/fragment/recommend", params={"user": user}).text
    assert web.get("/users/nobody-at-all").status_code == 404


def _wav_bytes(world):
    return (world.audio_dir / f"{world.clip_song}.wav").read_bytes()


def test_upload_lands_on_the_new_songs_page(web, world):
    r = web.post("/upload", data={"song_id": "WEB-NEW-1", "title": "Brand <new>", "artist": "Web Artist",
                                  "genre": world.genres[0], "year": "2020"},
                 files={"clip": ("mine.wav", _wav_bytes(world), "audio/wav")}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/songs/WEB-NEW-1"
    page = web.get("/songs/WEB-NEW-1")
    assert page.status_code == 200 and "Brand &lt;new&gt;" in page.text
    # its clip plays before any rebuild (from the write log), with ranges
    assert 'src="/media/WEB-NEW-1"' in page.text
    clip = web.get("/media/WEB-NEW-1", headers={"Range": "bytes=0-11"})
    assert clip.status_code == 206 and clip.content == _wav_bytes(world)[:12]
    assert clip.headers["content-type"] == "audio/wav"
    assert page.text.split('data-source="acoustic"', 1)[1].split("</section>")[0].count("<li>") == 8


def test_upload_without_an_id_gets_the_id_the_ingest_would_give(web, world):
    from pmrs.ingest.resolve import new_song_id
    derived = new_song_id(None, "Id-less Artist", "No Id Given")
    r = web.post("/upload", data={"song_id": "", "title": "No Id Given", "artist": "Id-less Artist"},
                 files={"clip": ("n.wav", _wav_bytes(world), "audio/wav")}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == f"/songs/{derived}"
    page = web.get(f"/songs/{derived}")
    assert page.status_code == 200 and "No Id Given" in page.text and f"<code>{derived}</code>" in page.text
    r = web.post("/upload", data={"song_id": "", "title": "", "artist": "Only An Artist"},
                 files={"clip": ("n.wav", _wav_bytes(world), "audio/wav")})
    assert r.status_code == 400 and "needs a title and an artist" in _alert(r.text)


def test_songs_and_users_added_live_are_searched_suggested_and_mapped_before_a_rebuild(web, world):
    assert web.get("/api/search", params={"q": "zyzzyva"}).json()["songs"] == []
    r = web.post("/upload", data={"song_id": "WEB-LIVE-2", "title": "Zyzzyva Nights", "artist": "Live Act",
                                  "genre": world.genres[1], "year": "2021"},
                 files={"clip": ("z.wav", _wav_bytes(world), "audio/wav")}, follow_redirects=False)
    assert r.status_code == 303
    found = web.get("/api/search", params={"q": "zyzzyva"}).json()["songs"]
    assert [(s["song_id"], s["artist"], s["genre"]) for s in found] == [("WEB-LIVE-2", "Live Act", world.genres[1])]
    assert web.get("/api/search", params={"q": "live act"}).json()["songs"][0]["song_id"] == "WEB-LIVE-2"
    points = web.get("/map").text
    assert 'href="/songs/WEB-LIVE-2" class="point cold"' in points   # placed by its embedding

    user = "web-live-listener-1"
    assert web.get("/api/users", params={"prefix": "web-live-"}).json()["users"] == []
    assert web.post("/api/play", data={"user": user, "song": "WEB-LIVE-2"}).status_code == 200
    assert web.get("/api/users", params={"prefix": "web-live-"}).json()["users"] == [user]
    known = world.users[0]
    assert web.get("/api/users", params={"prefix": known}).json()["users"] == [known]   # once


def _silence_wav(path, seconds=5):
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1), w.setsampwidth(2), w.setframerate(22050)
        w.writeframes(b"\x00\x00" * 22050 * seconds)
    return path.read_bytes()


@pytest.mark.parametrize("case", ["not audio", "silent", "wrong type", "no file", "too large", "bad id",
                                  "no title", "exists"])
def test_bad_uploads_are_readable_with_their_status(web, world, tmp_path, case):
    form = {"song_id": f"WEB-BAD-{case.replace(' ', '-')}", "title": "T", "artist": "A"}
    clip = ("x.wav", _wav_bytes(world), "audio/wav")
    expect, words = 400, None
    if case == "not audio":
        clip, words = ("x.wav", b"this is not audio at all" * 100, "audio/wav"), "INVALID_ARGUMENT" 
    elif case == "silent":
        clip = ("x.wav", _silence_wav(tmp_path / "s.wav"), "audio/wav")
    elif case == "wrong type":
        clip, words = ("notes.txt", b"hello", "text/plain"), "not an audio file"
    elif case == "no file":
        clip, words = ("", b"", "application/octet-stream"), "choose an audio clip"
    elif case == "too large":
        clip, expect = ("big.wav", b"\0" * (MAX_CLIP_BYTES + 10), "audio/wav"), 413
    elif case == "bad id":
        form["song_id"], words = "../../etc", "song id is"
    elif case == "no title":
        form["title"], words = "", "title and an artist"
    elif case == "exists":
        form["song_id"], expect = world.clip_song, 409
    r = web.post("/upload", data=form, files={"clip": clip}, follow_redirects=False)
    assert r.status_code == expect, r.text[:300]
    alert = _alert(r.text)
    assert "Traceback" not in r.text and len(alert) > 20
    if words and words != "INVALID_ARGUMENT":
        assert words in alert


def test_writes_need_the_web_apps_token(world, server):
    with page_client(create_app(world.work, server.address)) as c:
        assert c.post("/api/play", data={"user": world.users[0], "song": world.clip_song}).status_code == 403
        r = c.post("/upload", data={"song_id": "WEB-X", "title": "T", "artist": "A"},
                   files={"clip": ("x.wav", _wav_bytes(world), "audio/wav")})
        assert r.status_code == 403 and "write token" in _alert(r.text)
        assert ">played it<" not in c.get("/", params={"user": world.users[0]}).text


def test_map_and_lab(web, world, tmp_path):
    r = web.get("/map")
    assert r.status_code == 200
    points = r.text.count('class="point')
    cold = r.text.count('class="point cold"')
    assert points >= 60 and 0 < cold < points
    assert f'href="/songs/{world.cold_song}" class="point cold"' in r.text
    lab = web.get("/lab")
    assert lab.status_code == 200 and 'id="sources"' in lab.text
    for source in ("collaborative", "acoustic", "metadata"):
        assert f">{source}</span>" in lab.text.split('id="sources"', 1)[1]


def test_report_markdown_tables_become_rows():
    blocks = markdown_blocks("# Hold-out\n\n| k | recall |\n|---|---|\n| 10 | 0.2 |\n| 50 | <b>0.4</b> |\ntext")
    assert blocks == [("h", "Hold-out"), ("table", (["k", "recall"], [["10", "0.2"], ["50", "<b>0.4</b>"]])),
                      ("p", "text")]


def test_reports_are_shown_and_served(world, server, tmp_path):
    import shutil
    work = tmp_path / "w"
    (work / "reports" / "holdout-1").mkdir(parents=True)
    shutil.copytree(world.work / "bundles", work / "bundles")
    (work / "reports" / "holdout-1" / "report.md").write_text("# Hold-out\n\n| k | recall |\n|---|---|\n| 10 | 0.25 |\n")
    png = b"\x89PNG\r\n\x1a\n" + os.urandom(64)
    (work / "reports" / "holdout-1" / "recall.png").write_bytes(png)
    with page_client(create_app(work, server.address)) as c:
        lab = c.get("/lab").text
        assert "<td>0.25</td>" in lab and 'src="/lab/files/holdout-1/recall.png"' in lab
        assert 'href="/lab/files/holdout-1/recall.png"' in lab    # each plot links to its full size
        r = c.get("/lab/files/holdout-1/recall.png")
        assert r.status_code == 200 and r.content == png and r.headers["content-type"] == "image/png"


def test_report_images_bold_and_code_are_rendered_and_the_rest_escaped(world, server, tmp_path):
    import shutil
    work = tmp_path / "w"
    run = work / "reports" / "scale-1"
    run.mkdir(parents=True)
    shutil.copytree(world.work / "bundles", work / "bundles")
    (run / "report.md").write_text(
        "# Scaling\n\n![scaling](scaling.png)\n\nThe **0** failures in `pmrs serve` <i>x</i>\n\n"
        "![escape](../../etc/passwd) ![far](http://evil.example/x.png)\n\n| k | **n** |\n|---|---|\n| `10` | 1 |\n")
    (run / "scaling.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    (run / "other.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    with page_client(create_app(work, server.address)) as c:
        lab = c.get("/lab").text
    report = lab.split('data-report="scale-1"', 1)[1].split("</section>", 1)[0]
    assert ('<a class="plot" href="/lab/files/scale-1/scaling.png"><img src="/lab/files/scale-1/scaling.png" '
            'alt="scaling" loading="lazy"></a>') in report
    assert "![scaling]" not in report and report.count("scaling.png") == 2   # placed once, not again below
    assert "The <strong>0</strong> failures in <code>pmrs serve</code> &lt;i&gt;x&lt;/i&gt;" in report
    assert "![escape](../../etc/passwd) ![far](http://evil.example/x.png)" in report   # left as text
    assert "<th><strong>n</strong></th>" in report and "<td><code>10</code></td>" in report
    assert 'class="scroll" tabindex="0" role="region" aria-label="scale-1: table' in report
    assert 'src="/lab/files/scale-1/other.png"' in report    # a plot the text does not place


def test_command_line_errors_and_the_token(tmp_path, monkeypatch):
    from pmrs.web.cli import main, web_token
    assert main(["--bind", "no-port"]) == 2
    assert main(["--config", str(tmp_path / "missing.toml")]) == 2
    (tmp_path / "c.toml").write_text("[web]\nnot_a_setting = 1\n")
    assert main(["--config", str(tmp_path / "c.toml")]) == 2
    monkeypatch.delenv("PMRS_WRITE_TOKEN", raising=False)
    monkeypatch.setenv("PMRS_TOKEN", "from-the-client-variable")
    assert web_token(None) == "from-the-client-variable"
    monkeypatch.setenv("PMRS_WRITE_TOKEN", "from-the-write-variable")
    assert web_token(None) == "from-the-write-variable"
    (tmp_path / "t").write_text(" from-a-file \n")
    assert web_token(str(tmp_path / "t")) == "from-a-file"


def test_every_song_and_list_starts_a_radio(web, world):
    from urllib.parse import quote

    pages = {f"/songs/{world.clip_song}": f'href="/radio?song={world.clip_song}"',
             f"/?user={world.users[0]}": f'href="/radio?user={world.users[0]}"',
             f"/users/{world.users[0]}": f'href="/radio?user={world.users[0]}"',
             "/artists/" + quote("Ärtist & <i>Co</i>"): 'href="/radio?artist=%C3%84rtist%20%26%20%3Ci%3ECo%3C/i%3E"'}
    for page, link in pages.items():
        r = web.get(page)
        assert r.status_code == 200 and link in r.text, page
    rows = web.get("/", params={"user": world.users[0]}).text.split("<tr data-song=")[1:]
    assert rows and all('class="radio-start small" href="/radio?song=' in row and f"user={world.users[0]}" in row
                        for row in rows)
    seeds = web.get("/fragment/recommend", params={"seeds": world.clip_song}).text
    assert f'href="/radio?seeds={world.clip_song}"' in seeds


def test_a_radio_page_and_its_player_api(web, world, server):
    r = web.get("/radio", params={"song": world.cold_song, "user": world.users[2]})
    assert r.status_code == 200 and 'id="radio-audio"' in r.text and 'aria-label="radio: the song now playing"' in r.text
    with pmrs.connect(server.address) as client:
        want = client.radio(song_id=world.cold_song, user_id=world.users[2], k=10)
    assert f'<div id="now-playing" aria-live="polite" data-song="{want.songs[0].song_id}"' in r.text
    queued = [part.split('"', 1)[0] for part in r.text.split('<li data-song="')[1:]]
    assert queued == want.song_ids[1:]
    assert f'data-token="{want.token}"' in r.text
    # the player asks for more with the token and the session; a disliked song's artist stays out
    disliked = want.songs[1]
    got = web.post("/api/radio", json={"token": want.token, "session": [[disliked.song_id, "dislike"]], "k": 10})
    assert got.status_code == 200, got.text
    data = got.json()
    assert len(data["songs"]) == 10 and data["token"] != want.token
    assert not {s["song_id"] for s in data["songs"]} & set(want.song_ids)
    assert all(s["artist"].casefold() != disliked.artist.casefold() for s in data["songs"])
    assert all(s["clip"] == f"/media/{s['song_id']}" for s in data["songs"] if s["clip"])
    for body, words in (({"token": "garbage"}, "token"), ({}, "start"), ([1], "JSON object"),
                        ({"token": want.token, "session": "skip"}, "session"), ({"token": want.token, "k": 1000}, "k")):
        bad = web.post("/api/radio", json=body)
        assert bad.status_code == 400 and words in bad.json()["error"], (body, bad.text)
    hostile = web.get("/radio", params={"artist": "Ärtist & <i>Co</i>"})
    assert hostile.status_code == 200 and "<i>Co</i>" not in hostile.text and "&lt;i&gt;Co&lt;/i&gt;" in hostile.text
    assert web.get("/radio", params={"song": "NO-SUCH-SONG"}).status_code == 404
    assert web.get("/radio").status_code == 400


def test_search_and_artist_pages_read_the_bundles_search_text_as_the_catalog_scan_did(world, monkeypatch):
    from pmrs.serving.contract import SONG_TEXT_FILE, current_bundle
    from pmrs.web import data as D

    assert (current_bundle(world.work) / SONG_TEXT_FILE).is_file()
    with_text = D.WorkdirData(world.work)
    assert with_text.snapshot().song_text() is not None
    queries = ["a", "e", "the", "東京", "Ünï", "zzzzqqqq", world.hostile_song, world.hostile_song.lower()]
    artists = sorted({f.get("artist") or "" for _, _, _, f in with_text.snapshot().songs()} - {""})[:5]
    answers = ([with_text.search(q) for q in queries], [with_text.artist_songs(a) for a in artists])
    monkeypatch.setattr(D._Snapshot, "song_text", lambda self: None)   # a bundle built before the file
    scanned = D.WorkdirData(world.work)
    assert answers == ([scanned.search(q) for q in queries], [scanned.artist_songs(a) for a in artists])
    assert all(answers[1]) and any(answers[0])
