// PMRS web page: plain JavaScript, no libraries (works offline).
"use strict";
(function () {
  const $ = (sel, root) => (root || document).querySelector(sel);
  const $$ = (sel, root) => Array.from((root || document).querySelectorAll(sel));
  const status = (text) => { const s = $("#status"); if (s) s.textContent = text; };

  // -- per-genre tabs (also on pages rendered by the server) --
  document.addEventListener("click", (ev) => {
    const tab = ev.target.closest(".tab");
    if (!tab) return;
    const root = tab.closest("#recs") || document;
    $$(".tab", root).forEach((t) => { t.classList.toggle("active", t === tab); t.setAttribute("aria-selected", String(t === tab)); });
    $$(".panel", root).forEach((p) => p.classList.toggle("active", p.id === tab.dataset.tab));
  });

  const form = $("#listener");
  if (form) listener(form);
  const upload = $("#upload");
  if (upload) uploader(upload);
  const live = $("#live-figures");
  if (live) liveFigures(live);
  const historyBox = $("#history");
  if (historyBox) historyPage(historyBox);
  const radioBox = $("#radio");
  if (radioBox) radioPlayer(radioBox);

  // a radio: plays the queue's clips one after another, asks for more with the token when few are
  // left; like, skip and "not for me" steer it (the songs after the current one are asked again)
  function radioPlayer(box) {
    const LOW = 3;                      // songs left in the queue when more are asked for
    const audio = $("#radio-audio"), queue = $("#radio-queue"), now = $("#now-playing");
    let token = box.dataset.token, pending = [], loading = null, ended = false;
    const named = (s) => (s.title || s.song_id) + (s.artist ? ` by ${s.artist}` : "");
    const text = (tag, t, cls) => { const e = document.createElement(tag); e.textContent = t; if (cls) e.className = cls; return e; };
    function songLink(s, id) {
      const a = text("a", s.title || s.song_id);
      a.href = "/songs/" + encodeURIComponent(s.song_id);
      if (id) a.id = id;
      return a;
    }
    function item(s) {
      const li = document.createElement("li");
      li.dataset.song = s.song_id; li.dataset.title = s.title || ""; li.dataset.artist = s.artist || ""; li.dataset.clip = s.clip || "";
      li.append(songLink(s));
      if (s.artist) li.append(" ", text("small", s.artist));
      if (!s.clip) li.append(" ", text("small", "(no clip)", "hint"));
      return li;
    }
    const fromData = (d) => ({ song_id: d.song, title: d.title, artist: d.artist, clip: d.clip });
    function show(s) {
      Object.assign(now.dataset, { song: s.song_id, title: s.title || "", artist: s.artist || "", clip: s.clip || "" });
      const line = text("p", "", "now");
      line.append(songLink(s, "now-title"), " ", text("span", s.artist || ""));
      line.lastChild.id = "now-artist";
      now.replaceChildren(text("p", "Now playing", "meta"), line);
      audio.src = s.clip;
      audio.play().catch(() => {});   // (a browser may want a press of play first)
    }
    async function more() {
      if (loading) return loading;
      if (ended) return;
      const session = pending;
      pending = [];
      loading = (async () => {
        try {
          const resp = await fetch("/api/radio", { method: "POST", headers: { "Content-Type": "application/json" },
                                                   body: JSON.stringify({ token, session }) });
          const data = await resp.json().catch(() => ({ error: resp.statusText }));
          if (!resp.ok) { pending = session.concat(pending); status(`the radio could not go on: ${data.error}`); return; }
          token = data.token;
          box.dataset.token = token;
          if (!data.songs.length) { ended = true; status("The radio has played every song it can reach."); }
          queue.append(...data.songs.map(item));
        } catch (e) {
          pending = session.concat(pending);
          status("the web app cannot be reached");
        } finally { loading = null; }
      })();
      return loading;
    }
    // the next song with a clip; songs without one are passed over, and the page says so
    async function next() {
      const passed = [];
      for (;;) {
        if (queue.children.length <= LOW && !ended) {
          if (!queue.children.length) await more(); else more();
        }
        const li = queue.firstElementChild;
        if (!li) { now.dataset.song = ""; if (ended) status("The radio has played every song it can reach."); return; }
        li.remove();
        const s = fromData(li.dataset);
        if (s.clip) {
          show(s);
          if (passed.length) status(`passed over ${passed.join(", ")}: no clip`);
          return;
        }
        passed.push(named(s));
      }
    }
    async function steer(action, button) {
      const song = now.dataset.song;
      if (!song) return;
      const title = named(fromData(now.dataset));
      button.disabled = true;
      pending.push([song, action]);
      if (box.dataset.feedback) {      // a known listener: their feedback lasts, too
        const body = new URLSearchParams({ user: box.dataset.user, song, action });
        fetch("/api/feedback", { method: "POST", body }).catch(() => {});
      }
      if (loading) await loading;
      queue.replaceChildren();         // what comes next changes: ask again, steered
      await more();
      if (action !== "like") await next();
      const said = { like: "liked", skip: "skipped", dislike: "not for me:" }[action];
      status(`${said} ${title}; the songs after it changed`);
      button.disabled = false;
    }
    audio.addEventListener("ended", () => next());
    audio.addEventListener("error", () => { if (audio.getAttribute("src")) { status(`the clip of ${named(fromData(now.dataset))} cannot be played`); next(); } });
    box.addEventListener("click", (ev) => {
      const b = ev.target.closest("button.radio-act");
      if (b) steer(b.dataset.action, b);
    });
    if (now.dataset.song && now.dataset.clip) show(fromData(now.dataset));
    else if (now.dataset.song) next();
  }

  // a listener's history: "undo" takes a like, a dislike, a skip or a hidden artist back, then the page again
  function historyPage(box) {
    box.addEventListener("click", async (ev) => {
      const b = ev.target.closest("button.undo");
      if (!b) return;
      b.disabled = true;
      const body = new URLSearchParams({ user: box.dataset.user, song: b.dataset.song, action: b.dataset.action });
      const resp = await fetch("/api/feedback", { method: "POST", body });
      if (!resp.ok) {
        const data = await resp.json().catch(() => ({ error: resp.statusText }));
        $("#status").textContent = `could not undo: ${data.error}`;
        b.disabled = false;
        return;
      }
      location.reload();
    });
  }

  const map = $("#map");
  if (map) {
    // the map scales to the screen; its points keep their size in CSS px (--k: viewBox units per px)
    const fit = () => map.style.setProperty("--k", String(Math.max(1, map.viewBox.baseVal.width / (map.clientWidth || 1))));
    fit();
    window.addEventListener("resize", fit);
  }

  function listener(form) {
    const results = $("#results");
    let seq = 0;
    function query() {
      const p = new URLSearchParams();
      const user = $("#user").value.trim();
      if (user) p.set("user", user);
      const seeds = $("#seeds").value;
      if (seeds) p.set("seeds", seeds);
      // only the sliders a listener moved: untouched ones keep the server's defaults
      $$("input[type=range]", form).forEach((r) => { if (r.dataset.moved) p.set(r.name, r.value); });
      ["genre", "min_year", "max_year"].forEach((n) => { const v = form.elements[n].value; if (v) p.set(n, v); });
      return p;
    }
    async function refresh() {
      const p = query();
      if (!p.get("user") && !p.get("seeds")) return;
      const mine = ++seq;
      status("loading…");
      history.replaceState(null, "", "/?" + p.toString());
      try {
        const resp = await fetch("/fragment/recommend?" + p.toString());
        const html = await resp.text();
        if (mine !== seq) return;          // a newer request is on its way
        results.innerHTML = html;
        status("");
        // a prefix resolved: the box shows the id the list is for
        const recs = $("#recs", results), box = $("#user");
        if (recs && recs.dataset.user && box.value.trim() && box.value.trim() !== recs.dataset.user) {
          box.value = recs.dataset.user;
          history.replaceState(null, "", "/?" + query().toString());
        }
      } catch (e) {
        if (mine === seq) { results.innerHTML = '<div class="error" role="alert">The web app cannot be reached.</div>'; status(""); }
      }
    }
    form.addEventListener("submit", (ev) => { ev.preventDefault(); refresh(); });
    let timer = null;
    const shown = (r) => { r.nextElementSibling.textContent = Number(r.value).toFixed(2); };
    const shares = $$("input.share", form);
    // the shares may add up to 1 at most: the others shrink in proportion, rounded down to the step
    function keepSharesAtMostOne(moved) {
      const others = shares.filter((r) => r !== moved);
      const rest = others.reduce((sum, r) => sum + Number(r.value), 0);
      const room = 1 - Number(moved.value);
      if (rest <= room + 1e-9) return;
      others.forEach((r) => {
        r.value = (Math.floor(Number(r.value) * room / rest * 100 + 1e-6) / 100).toFixed(2);
        r.dataset.moved = "1";
        shown(r);
      });
    }
    $$("input[type=range]", form).forEach((r) => {
      r.addEventListener("input", () => {
        r.dataset.moved = "1";
        if (shares.includes(r)) keepSharesAtMostOne(r);
        shown(r);
        clearTimeout(timer); timer = setTimeout(refresh, 150);
      });
    });
    $$("select, input[type=number]", form).forEach((el) => el.addEventListener("change", refresh));

    // user id suggestions
    const user = $("#user");
    user.addEventListener("input", async () => {
      const prefix = user.value.trim();
      if (!prefix) return;
      const resp = await fetch("/api/users?prefix=" + encodeURIComponent(prefix));
      if (!resp.ok) return;
      const data = await resp.json();
      const list = $("#user-suggest");
      list.replaceChildren(...data.users.map((u) => { const o = document.createElement("option"); o.value = u; return o; }));
    });

    // seed songs from the catalog search
    const search = $("#seed-search"), found = $("#seed-results"), chips = $("#seed-list"), seeds = $("#seeds");
    const ids = () => seeds.value ? seeds.value.split(",") : [];
    function setIds(list) { seeds.value = list.join(","); }
    // a combobox: its answers replace the list, a late answer to an older query is dropped
    let searchSeq = 0, pending = null, active = -1;
    const options = () => $$("li[data-song]", found);
    function setActive(i) {
      const opts = options();
      active = i;
      opts.forEach((o, j) => o.setAttribute("aria-selected", String(j === i)));
      if (opts[i]) { search.setAttribute("aria-activedescendant", opts[i].id); opts[i].scrollIntoView({ block: "nearest" }); }
      else search.removeAttribute("aria-activedescendant");
    }
    function showFound(items) {
      found.replaceChildren(...items);
      search.setAttribute("aria-expanded", String(items.length > 0));
      setActive(-1);
    }
    function note(text) {
      const li = document.createElement("li");
      li.setAttribute("role", "option"); li.setAttribute("aria-disabled", "true"); li.textContent = text;
      return li;
    }
    function pick(s) {
      if (!ids().includes(s.song_id)) {
        setIds([...ids(), s.song_id]);
        const chip = document.createElement("li");
        chip.dataset.song = s.song_id;
        chip.textContent = `${s.title || s.song_id} `;
        const x = document.createElement("button"); x.type = "button"; x.className = "remove"; x.textContent = "×";
        x.setAttribute("aria-label", `remove ${s.title || s.song_id}`);
        chip.append(x); chips.append(chip);
      }
      showFound([]); search.value = "";
      user.value = "";
      refresh();
    }
    search.addEventListener("keydown", (ev) => {
      const n = options().length;
      if (ev.key === "ArrowDown" && n) { ev.preventDefault(); setActive((active + 1) % n); }
      else if (ev.key === "ArrowUp" && n) { ev.preventDefault(); setActive(active <= 0 ? n - 1 : active - 1); }
      else if (ev.key === "Enter") { ev.preventDefault(); if (options()[active]) options()[active].click(); }
      else if (ev.key === "Escape") showFound([]);
    });
    search.addEventListener("input", async () => {
      const mine = ++searchSeq;
      if (pending) pending.abort();
      showFound([]);
      const q = search.value.trim();
      if (q.length < 2) return;
      pending = new AbortController();
      let resp, data;
      try {
        resp = await fetch("/api/search?q=" + encodeURIComponent(q), { signal: pending.signal });
        data = await resp.json();
      } catch (e) {
        if (mine === searchSeq) showFound([note("the search failed")]);
        return;
      }
      if (mine !== searchSeq) return;
      if (!resp.ok) { showFound([note(data.error)]); return; }
      if (!data.songs.length) { showFound([note("no song matches")]); return; }
      showFound(data.songs.map((s, i) => {
        const li = document.createElement("li");
        li.id = `seed-option-${i}`;
        li.setAttribute("role", "option");
        li.dataset.song = s.song_id;
        li.textContent = `${s.title || s.song_id} — ${s.artist}`;
        li.addEventListener("click", () => pick(s));
        return li;
      }));
    });
    chips.addEventListener("click", (ev) => {
      const x = ev.target.closest(".remove");
      if (!x) return;
      const chip = x.closest("li");
      setIds(ids().filter((i) => i !== chip.dataset.song));
      chip.remove();
      refresh();
    });

    // "played it", "like", "skip", "not for me": a write through the web app (its token), then
    // the list again, which reflects it
    results.addEventListener("click", async (ev) => {
      const b = ev.target.closest("button.played, button.fb");
      if (!b) return;
      b.disabled = true;
      const recs = $("#recs");
      const what = b.classList.contains("played") ? "play" : b.dataset.action;
      const body = new URLSearchParams({ user: recs.dataset.user, song: b.dataset.song });
      if (what !== "play") body.set("action", what);
      const resp = await fetch(what === "play" ? "/api/play" : "/api/feedback", { method: "POST", body });
      if (!resp.ok) {
        const data = await resp.json().catch(() => ({ error: resp.statusText }));
        status(`could not record the ${what}: ${data.error}`);
        b.disabled = false;
        return;
      }
      const title = b.closest("tr").querySelector("td a").textContent;
      $("#user").value = recs.dataset.user;
      await refresh();
      status(what === "play" ? `recorded a play of ${title}` : `recorded: ${what} ${title}`);
    });
  }

  function uploader(form) {
    form.addEventListener("submit", () => {
      // the browser sends the form itself (so an error page shows as a page); show that it works
      const bar = $("#upload-progress");
      bar.hidden = false; bar.removeAttribute("value");
      $("#upload-status").textContent = "uploading and analysing the clip…";
      $("button[type=submit]", form).disabled = true;
    });
  }

  // -- the lab's live figures: the server's and this page's metrics, every few seconds --
  function liveFigures(box) {
    const el = (tag, text, cls) => { const e = document.createElement(tag); if (text !== undefined) e.textContent = text; if (cls) e.className = cls; return e; };
    const fmt = (v) => v === null || v === undefined ? "–" : (Math.round(v * 100) / 100).toLocaleString();
    function table(title, rows, heads) {
      const wrap = el("div", undefined, "scroll");
      wrap.tabIndex = 0;      // a region that scrolls must be reachable with the keyboard
      wrap.setAttribute("role", "region");
      wrap.setAttribute("aria-label", title);
      const t = el("table", undefined, "songs");
      const cap = el("caption", title); t.appendChild(cap);
      const hr = el("tr"); heads.forEach((h) => hr.appendChild(el("th", h)));
      const thead = el("thead"); thead.appendChild(hr); t.appendChild(thead);
      const tb = el("tbody");
      rows.forEach((r) => { const tr = el("tr"); r.forEach((c, i) => tr.appendChild(el("td", String(c), i ? "num" : ""))); tb.appendChild(tr); });
      if (!rows.length) { const tr = el("tr"); const td = el("td", "none yet"); td.colSpan = heads.length; tr.appendChild(td); tb.appendChild(tr); }
      t.appendChild(tb); wrap.appendChild(t); return wrap;
    }
    function calls(f, what) {
      return f.calls.map((c) => [c.name, fmt(c.ok), Object.entries(c.errors).map(([k, v]) => `${k} ${fmt(v)}`).join(", ") || "–", fmt(c.p50_ms), fmt(c.p99_ms)]);
    }
    function counters(f, names) {
      const rows = [];
      names.forEach((n) => Object.entries(f.counters[n] || {}).forEach(([labels, v]) => rows.push([`${n.replace(/_total$/, "")} ${labels}`, fmt(v)])));
      Object.entries(f.gauges).forEach(([n, v]) => rows.push([n, fmt(v)]));
      return rows;
    }
    async function tick() {
      try {
        const resp = await fetch("/lab/figures.json", { cache: "no-store" });
        const data = await resp.json();
        const parts = [];
        if (data.server) {
          parts.push(table("pmrs-server: calls", calls(data.server), ["method", "ok", "errors", "p50 ms", "p99 ms"]));
          parts.push(table("pmrs-server: answers, writes, bundle", counters(data.server, ["pmrs_answers_total", "pmrs_live_writes_total", "pmrs_writes_refused_total"]), ["figure", "value"]));
        } else {
          parts.push(el("p", data.server_error || "no server figures", "hint"));
        }
        parts.push(table("pmrs-web: requests", calls(data.web), ["route", "ok", "errors", "p50 ms", "p99 ms"]));
        parts.push(table("pmrs-web: writes", counters(data.web, ["pmrs_web_writes_total", "pmrs_web_writes_refused_total"]), ["figure", "value"]));
        box.replaceChildren(...parts);
        box.dataset.updated = String(Date.now());
      } catch (err) {
        box.replaceChildren(el("p", `could not read the figures: ${err}`, "hint"));
      }
    }
    tick();
    setInterval(tick, 5000);
  }
})();
