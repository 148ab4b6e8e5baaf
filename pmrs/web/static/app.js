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
    $$(".tab", root).forEach((t) => t.classList.toggle("active", t === tab));
    $$(".panel", root).forEach((p) => p.classList.toggle("active", p.id === tab.dataset.tab));
  });

  const form = $("#listener");
  if (form) listener(form);
  const upload = $("#upload");
  if (upload) uploader(upload);

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
        status(resp.ok ? "" : "");
      } catch (e) {
        if (mine === seq) { results.innerHTML = '<div class="error" role="alert">The web app cannot be reached.</div>'; status(""); }
      }
    }
    form.addEventListener("submit", (ev) => { ev.preventDefault(); refresh(); });
    let timer = null;
    $$("input[type=range]", form).forEach((r) => {
      r.addEventListener("input", () => {
        r.dataset.moved = "1";
        r.nextElementSibling.textContent = Number(r.value).toFixed(2);
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
    search.addEventListener("keydown", (ev) => { if (ev.key === "Enter") ev.preventDefault(); });
    search.addEventListener("input", async () => {
      const q = search.value.trim();
      found.replaceChildren();
      if (q.length < 2) return;
      const resp = await fetch("/api/search?q=" + encodeURIComponent(q));
      const data = await resp.json();
      if (!resp.ok) { const li = document.createElement("li"); li.textContent = data.error; found.append(li); return; }
      if (!data.songs.length) { const li = document.createElement("li"); li.textContent = "no song matches"; found.append(li); }
      data.songs.forEach((s) => {
        const li = document.createElement("li");
        li.dataset.song = s.song_id;
        li.textContent = `${s.title || s.song_id} — ${s.artist}`;
        li.addEventListener("click", () => {
          if (!ids().includes(s.song_id)) {
            setIds([...ids(), s.song_id]);
            const chip = document.createElement("li");
            chip.dataset.song = s.song_id;
            chip.textContent = `${s.title || s.song_id} `;
            const x = document.createElement("button"); x.type = "button"; x.className = "remove"; x.textContent = "×";
            chip.append(x); chips.append(chip);
          }
          found.replaceChildren(); search.value = "";
          user.value = "";
          refresh();
        });
        found.append(li);
      });
    });
    chips.addEventListener("click", (ev) => {
      const x = ev.target.closest(".remove");
      if (!x) return;
      const chip = x.closest("li");
      setIds(ids().filter((i) => i !== chip.dataset.song));
      chip.remove();
      refresh();
    });

    // "played it": record a play through the web app (its token), then refresh the list
    results.addEventListener("click", async (ev) => {
      const b = ev.target.closest("button.played");
      if (!b) return;
      b.disabled = true;
      const recs = $("#recs");
      const body = new URLSearchParams({ user: recs.dataset.user, song: b.dataset.song });
      const resp = await fetch("/api/play", { method: "POST", body });
      if (!resp.ok) {
        const data = await resp.json().catch(() => ({ error: resp.statusText }));
        status(`could not record the play: ${data.error}`);
        b.disabled = false;
        return;
      }
      $("#user").value = recs.dataset.user;
      await refresh();
      status(`recorded a play of ${b.dataset.song}`);
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
})();
