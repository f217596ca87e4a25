// likeness web page: search by an image, browse a collection, review near duplicates.
// Plain JavaScript, no build step. Three views share the header's collection, feature, label
// and tag controls; a lightbox shows one image large with its facts.
"use strict";
const $ = (s) => document.querySelector(s);
const MAX_K = 1000; // the most results the page asks for at once (the API allows 10000)
const state = {
  collections: [], query: null, k: 24, lastResults: [], showUnrelated: false,
  server: { read_only: false, writes_need_key: false, roots: [] },
  searchSeq: 0, browseSeq: 0, browse: { offset: 0, total: 0 }, groups: [], lightbox: { items: [], index: 0 }, writeKey: null,
};

// ---------- HTTP ----------

// A server started with --read-key answers 401 until the page presents the key: ask for it once
// and keep it in a same-site cookie, which fetches and thumbnail <img>s then send.
async function api(path, options, asked) {
  const res = await fetch(path, options);
  if (res.status === 401 && !asked) {
    const key = window.prompt("This server needs a key to search. Key:");
    if (key) {
      document.cookie = `likeness_key=${encodeURIComponent(key.trim())}; path=/; SameSite=Strict`;
      return api(path, options, true);
    }
  }
  let body = null;
  try { body = await res.json(); } catch (_) { body = { error: res.statusText }; }
  if (!res.ok) throw new Error(body && body.error ? body.error : res.statusText);
  return body;
}

// A write (delete, move): with the API key when the server wants one (asked once, kept in memory).
async function write(path, options) {
  const send = () => {
    const headers = Object.assign({}, options.headers || {});
    if (state.writeKey) headers["x-api-key"] = state.writeKey;
    return fetch(path, Object.assign({}, options, { headers }));
  };
  let res = await send();
  if (res.status === 401) {
    const key = window.prompt("Changes need this server's API key. Key:");
    if (!key) throw new Error("no API key given");
    state.writeKey = key.trim();
    res = await send();
  }
  let body = null;
  try { body = await res.json(); } catch (_) { body = { error: res.statusText }; }
  if (!res.ok) throw new Error(body && body.error ? body.error : res.statusText);
  return body;
}

const base = () => `/api/collections/${encodeURIComponent($("#collection").value)}`;

// ---------- small helpers ----------

function el(tag, props, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(props || {})) {
    if (k === "class") e.className = v;
    else if (k === "dataset") Object.assign(e.dataset, v);
    else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else if (v !== undefined && v !== null) e[k] = v;
  }
  for (const c of children) if (c !== null && c !== undefined) e.append(c);
  return e;
}

function plural(n, word) { return `${n} ${word}${n === 1 ? "" : "s"}`; }

function fileName(p) { return (p || "").split("/").pop(); }

function humanSize(n) {
  if (n === null || n === undefined) return "—";
  const units = ["B", "KB", "MB", "GB"];
  let i = 0; let v = n;
  while (v >= 1000 && i < units.length - 1) { v /= 1000; i++; }
  return `${v.toFixed(i === 0 ? 0 : 1)} ${units[i]}`;
}

function humanDate(secs) {
  if (!secs) return "—";
  return new Date(secs * 1000).toISOString().slice(0, 16).replace("T", " ");
}

function resolution(c) { return c.width && c.height ? `${c.width} × ${c.height}` : "—"; }

function setStatus(sel, text, isError) {
  const s = $(sel);
  s.textContent = text;
  s.classList.toggle("error", !!isError);
}

function currentCollection() { return state.collections.find((c) => c.name === $("#collection").value); }

function currentField() {
  const c = currentCollection();
  return c && (c.fields.find((x) => x.name === $("#feature").value) || c.fields[0]);
}

// A record as the views show it, from a search hit or a browse/duplicates card.
function fromHit(h) {
  const m = h.metadata || {};
  return {
    id: h.id, path: h.path, name: m.original_name || fileName(h.path), label: h.label, tags: m.tags || [],
    size: m.size, width: m.width, height: m.height, format: m.format, mtime: m.mtime,
    thumb: h.thumb, original: undefined, distance: h.distance, verification: h.verification,
  };
}

// How close a distance is, in words, for a feature with calibrated bands (docs/app.md).
function verdict(field, d) {
  const b = field && field.bands;
  if (!b) return null;
  if (d <= b.near_duplicate) return { text: "near duplicate", cls: "v-dup" };
  if (d <= b.similar) return { text: "similar", cls: "v-similar" };
  if (d <= b.related) return { text: "related", cls: "v-related" };
  return { text: "unrelated", cls: "v-unrelated" };
}

// A 0–100 % similarity where the metric has a natural one (cosine, bits of a hash).
function similarity(field, d) {
  if (!field) return null;
  if (field.metric === "cosine") return Math.max(0, Math.min(1, 1 - d));
  if (field.metric === "hamming") return Math.max(0, 1 - d / field.dim);
  return null;
}

// ---------- cards ----------

function tagChips(tags, max) {
  const box = el("div", { class: "tags" });
  for (const t of (tags || []).slice(0, max || 99)) {
    box.append(el("button", {
      type: "button", class: "chip tag", textContent: t, title: `Show images tagged “${t}”`,
      onclick: (e) => { e.stopPropagation(); closeLightbox(); searchTag(t); },
    }));
  }
  return box;
}

// The matched quadrilateral of a verified hit (the query's corners in the image's pixels),
// drawn over the thumbnail: the SVG's viewBox is the full image and it is fitted like the
// thumbnail (object-fit: contain), so the outline lands where the query appears.
function quadOverlay(quad, width, height) {
  const ns = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("class", "quad");
  svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
  svg.setAttribute("preserveAspectRatio", "xMidYMid meet");
  svg.setAttribute("aria-label", "where the query appears");
  const poly = document.createElementNS(ns, "polygon");
  poly.setAttribute("points", quad.map((p) => `${p[0].toFixed(1)},${p[1].toFixed(1)}`).join(" "));
  poly.setAttribute("vector-effect", "non-scaling-stroke");
  svg.append(poly);
  return svg;
}

// One image card; `items`/`index` say which list the lightbox walks through.
function card(c, items, index, field) {
  const fig = el("figure", { class: "result", tabIndex: 0, title: c.path || "", dataset: { id: c.id } });
  const img = el("img", { src: c.thumb, alt: `${c.name || "image"}${c.label ? `, ${c.label}` : ""}`, loading: "lazy" });
  const thumb = el("div", { class: "thumb" }, img);
  fig.append(thumb);
  const ver = c.verification;
  if (ver && ver.verified && ver.quad && c.width && c.height) thumb.append(quadOverlay(ver.quad, c.width, c.height));
  if (c.distance !== undefined) {
    const v = verdict(field, c.distance);
    const sim = similarity(field, c.distance);
    const meta = el("figcaption", { class: "meta" });
    meta.append(el("span", { class: `verdict ${v ? v.cls : "v-none"}`, textContent: v ? v.text : "distance" }));
    if (sim !== null) meta.append(el("span", { class: "score", textContent: `${Math.round(sim * 100)}%`, title: field.metric === "cosine" ? "cosine similarity" : "bits in common" }));
    meta.append(el("span", { class: "distance", textContent: c.distance.toFixed(field && field.metric === "hamming" ? 0 : 3), title: "distance (lower = closer)" }));
    if (ver && ver.verified) {
      meta.append(el("span", { class: "verified", textContent: `✓ ${ver.inliers}`,
        title: `verified: ${ver.inliers} keypoint matches agree on where the query appears${ver.mirrored ? " (mirrored)" : ""}` }));
    }
    fig.append(meta);
  }
  const row = el("div", { class: "row" }, el("span", { class: "label chip", textContent: c.label || "—" }));
  fig.append(row, tagChips(c.tags, 5), el("div", { class: "name", textContent: c.name || fileName(c.path) }));
  const open = () => openLightbox(items, index);
  fig.addEventListener("click", open);
  fig.addEventListener("keydown", (e) => { if (e.key === "Enter" || e.key === " ") { e.preventDefault(); open(); } });
  return fig;
}

// ---------- collections and controls ----------

async function loadCollections() {
  const j = await api("/api/collections");
  state.collections = j.collections;
  const sel = $("#collection");
  const keep = sel.value;
  sel.innerHTML = "";
  for (const c of j.collections) sel.append(el("option", { value: c.name, textContent: `${c.name} (${c.count})` }));
  if (keep && j.collections.some((c) => c.name === keep)) sel.value = keep;
  else if (j.collections.some((c) => c.name === j.default)) sel.value = j.default;
  if (!j.collections.length) setStatus("#status", "The database is empty: index a folder with `likeness index DIR --db DB`.");
}

async function collectionChanged() {
  const c = currentCollection();
  const fsel = $("#feature");
  fsel.innerHTML = "";
  if (!c) return;
  const preferred = ["cnn", "cnn-lite2", "color", "texture", "phash", "dhash"];
  const names = c.fields.map((f) => f.name);
  for (const n of names) fsel.append(el("option", { value: n, textContent: n }));
  fsel.value = preferred.find((p) => names.includes(p)) || names[0];
  configureThreshold();
  const lsel = $("#label");
  lsel.innerHTML = '<option value="">any</option>';
  try {
    const j = await api(`${base()}/labels`);
    for (const l of j.labels) lsel.append(el("option", { value: l.label, textContent: `${l.label} (${l.count})` }));
  } catch (e) { setStatus("#status", e.message, true); }
}

function configureThreshold() {
  const f = currentField();
  if (!f) return;
  const t = $("#threshold");
  if (f.metric === "hamming") { t.min = 0; t.max = f.dim; t.step = 1; t.value = Math.round(f.dim / 8); }
  else if (f.metric === "cosine") { t.min = 0; t.max = 1; t.step = 0.01; t.value = 0.3; }
  else { t.min = 0; t.max = 2; t.step = 0.01; t.value = 0.5; }
  showThreshold();
}

function showThreshold() {
  const t = $("#threshold");
  $("#threshold-value").textContent = Number(t.value).toFixed(t.step >= 1 ? 0 : 2);
}

// The Results box: 1..MAX_K; a larger number is brought down where the user sees it.
function readK() {
  const box = $("#k");
  let k = Math.floor(Number(box.value)) || 24;
  let note = "";
  if (k > MAX_K) { note = ` (the page shows at most ${MAX_K} at once)`; k = MAX_K; }
  if (k < 1) k = 1;
  box.value = String(k);
  state.k = k;
  return note;
}

// ---------- search view ----------

function searchParams(k) {
  const p = { feature: $("#feature").value, k };
  if ($("#use-threshold").checked) p.threshold = Number($("#threshold").value);
  const label = $("#label").value;
  if (label) p.filter = { label };
  return p;
}

async function runSearch(note) {
  const c = currentCollection();
  if (!c || !state.query) return;
  const p = searchParams(state.k);
  const seq = ++state.searchSeq; // only the latest search's answer is shown
  setStatus("#status", "Searching…");
  try {
    let j;
    if (state.query.file) {
      const fd = new FormData();
      fd.append("image", state.query.file, state.query.file.name);
      fd.append("feature", p.feature);
      fd.append("k", String(p.k));
      if (p.threshold !== undefined) fd.append("threshold", String(p.threshold));
      if (p.filter) fd.append("filter", JSON.stringify(p.filter));
      if ($("#verify").checked) fd.append("verify", "true");
      j = await api(`${base()}/search/image`, { method: "POST", body: fd });
    } else {
      j = await api(`${base()}/search`, {
        method: "POST", headers: { "content-type": "application/json" },
        body: JSON.stringify({ ...p, id: state.query.id }),
      });
    }
    if (seq !== state.searchSeq) return;
    state.lastResults = j.results.map(fromHit);
    state.lastFeature = j.feature;
    state.showUnrelated = false;
    renderResults();
    const more = j.results.length >= p.k && p.threshold === undefined;
    setStatus("#status", `${plural(j.results.length, "result")} by ${j.feature} in ${j.took_ms.toFixed(1)} ms${more ? " · more exist" : ""}${note || ""}`);
  } catch (e) {
    if (seq !== state.searchSeq) return;
    $("#results").innerHTML = "";
    $("#notice").hidden = true;
    $("#more").hidden = true;
    setStatus("#status", e.message, true);
  }
}

function renderResults() {
  const grid = $("#results");
  grid.innerHTML = "";
  const field = currentCollection().fields.find((f) => f.name === state.lastFeature);
  const items = state.lastResults;
  const notice = $("#notice");
  notice.hidden = true;
  notice.innerHTML = "";
  const nearest = items[0];
  const v = nearest && verdict(field, nearest.distance);
  if (!items.length) {
    notice.hidden = false;
    notice.append(el("strong", { textContent: "No results. " }),
      $("#use-threshold").checked ? "Nothing is within the maximum distance: move the slider right." : "Nothing matches the label filter.");
  } else if (v && v.text === "unrelated" && !state.showUnrelated) {
    notice.hidden = false;
    notice.classList.add("no-match");
    notice.append(
      el("strong", { textContent: "No close match. " }),
      `The nearest image is ${nearest.distance.toFixed(field.metric === "hamming" ? 0 : 3)} away by ${field.name}; ` +
      `beyond ${field.bands.related} images are unrelated on this feature. `,
      el("button", { type: "button", id: "show-anyway", textContent: "Show the nearest anyway",
        onclick: () => { state.showUnrelated = true; renderResults(); } }));
    $("#more").hidden = true;
    return;
  }
  items.forEach((c, i) => grid.append(card(c, items, i, field)));
  $("#more").hidden = !(items.length >= state.k && !$("#use-threshold").checked && state.k < MAX_K);
}

function showQuery(src, text) {
  const img = $("#query-image");
  img.src = src; img.hidden = false;
  img.alt = `Query image: ${text}`;
  $("#query-info").textContent = `Query: ${text}`;
  $("#drop-text").textContent = "Drop another image, or open a result and search by it";
}

function searchByFile(file) {
  if (!file) return;
  state.query = { file };
  showQuery(URL.createObjectURL(file), `${file.name} (uploaded)`);
  showView("search");
  runSearch(readK());
}

function searchById(c) {
  state.query = { id: c.id };
  showQuery(c.thumb, c.name || fileName(c.path) || c.id);
  showView("search");
  runSearch(readK());
}

// ---------- browse view ----------

async function runBrowse() {
  const c = currentCollection();
  if (!c) return;
  const limit = Number($("#page-size").value);
  const q = new URLSearchParams({ offset: String(state.browse.offset), limit: String(limit) });
  if ($("#label").value) q.set("label", $("#label").value);
  const tag = $("#tag").value.trim();
  if (tag) q.set("tag", tag);
  const seq = ++state.browseSeq;
  setStatus("#browse-status", "Loading…");
  try {
    const j = await api(`${base()}/records?${q}`);
    if (seq !== state.browseSeq) return;
    state.browse.total = j.total;
    const items = j.records;
    const grid = $("#browse-grid");
    grid.innerHTML = "";
    items.forEach((r, i) => grid.append(card(r, items, i, null)));
    const pages = Math.max(1, Math.ceil(j.total / limit));
    const page = Math.floor(j.offset / limit) + 1;
    $("#page-info").textContent = `Page ${page} of ${pages}`;
    $("#prev-page").disabled = j.offset === 0;
    $("#next-page").disabled = j.offset + limit >= j.total;
    const what = [$("#label").value && `label ${$("#label").value}`, tag && `tags containing “${tag}”`].filter(Boolean).join(", ");
    const first = j.total ? j.offset + 1 : 0;
    setStatus("#browse-status", `${plural(j.total, "image")}${what ? ` with ${what}` : ""} · showing ${first}–${j.offset + items.length}`);
  } catch (e) {
    if (seq !== state.browseSeq) return;
    $("#browse-grid").innerHTML = "";
    setStatus("#browse-status", e.message, true);
  }
}

function searchTag(t) {
  $("#tag").value = t;
  state.browse.offset = 0;
  showView("browse");
}

// ---------- duplicates view ----------

async function runDupes() {
  const c = currentCollection();
  if (!c) return;
  const q = new URLSearchParams();
  const f = currentField();
  // The header's feature when it has a calibrated threshold or one is given; else the server's choice.
  const thr = $("#dup-threshold").value.trim();
  if (f && (f.bands || thr)) q.set("feature", f.name);
  if (thr) q.set("threshold", thr);
  setStatus("#dupes-status", "Looking for near duplicates…");
  $("#groups").innerHTML = "";
  $("#dup-actions").hidden = true;
  try {
    const j = await api(`${base()}/duplicates?${q}`);
    state.groups = j.groups;
    $("#dup-threshold").placeholder = String(j.threshold);
    renderGroups();
    const n = j.groups.reduce((a, g) => a + g.members.length, 0);
    setStatus("#dupes-status", j.groups.length
      ? `${plural(j.groups.length, "group")} (${n} images) among ${j.records} by ${j.feature} within ${j.threshold}, in ${j.took_ms.toFixed(0)} ms`
      : `No near duplicates among ${j.records} images by ${j.feature} within ${j.threshold}.`);
  } catch (e) {
    setStatus("#dupes-status", e.message, true);
  }
}

function renderGroups() {
  const box = $("#groups");
  box.innerHTML = "";
  const rule = $("#keep-rule").value;
  state.groups.forEach((g, gi) => {
    const keepId = g.keep[rule];
    const art = el("article", { class: "group", dataset: { group: String(gi) } });
    const dist = Number.isInteger(g.max_distance) ? String(g.max_distance) : g.max_distance.toFixed(3);
    art.append(el("h3", { textContent: `Group ${gi + 1} · ${g.members.length} images · max distance ${dist}` }));
    const row = el("div", { class: "dup-row" });
    g.members.forEach((m, mi) => {
      const keep = m.id === keepId;
      const fig = el("figure", { class: `dup${keep ? " keep" : ""}`, dataset: { id: m.id } });
      const img = el("img", { src: m.thumb, alt: m.name || "image", loading: "lazy" });
      const thumb = el("div", { class: "thumb", tabIndex: 0, title: "Open the preview" }, img);
      thumb.addEventListener("click", () => openLightbox(g.members, mi));
      thumb.addEventListener("keydown", (e) => { if (e.key === "Enter") openLightbox(g.members, mi); });
      const facts = el("dl", { class: "facts" },
        el("dt", { textContent: "Size" }), el("dd", { class: "f-size", textContent: humanSize(m.size) }),
        el("dt", { textContent: "Resolution" }), el("dd", { class: "f-res", textContent: resolution(m) }),
        el("dt", { textContent: "Date" }), el("dd", { class: "f-date", textContent: humanDate(m.mtime) }),
        el("dt", { textContent: "Format" }), el("dd", { class: "f-format", textContent: m.format || "—" }));
      const keepRadio = el("input", { type: "radio", name: `keep-${gi}`, checked: keep, class: "keep-radio",
        onchange: () => { g.keep[rule] = m.id; renderGroups(); } });
      const select = el("input", { type: "checkbox", class: "select", checked: !keep, onchange: updateSelection });
      fig.append(thumb,
        el("figcaption", {},
          el("div", { class: "name", textContent: m.name || fileName(m.path), title: m.path || "" }),
          keep ? el("span", { class: "chip keep-badge", textContent: "suggested keep" }) : null,
          facts,
          el("div", { class: "picks" },
            el("label", {}, keepRadio, " keep"),
            el("label", {}, select, " select"))));
      row.append(fig);
    });
    art.append(row);
    box.append(art);
  });
  updateSelection();
}

function selectedMembers() {
  const out = [];
  document.querySelectorAll("#groups .dup").forEach((fig) => {
    if (fig.querySelector(".select").checked) {
      const g = state.groups[Number(fig.closest(".group").dataset.group)];
      out.push(g.members.find((m) => m.id === fig.dataset.id));
    }
  });
  return out;
}

function updateSelection() {
  const sel = selectedMembers();
  const writable = !state.server.read_only;
  $("#dup-actions").hidden = !state.groups.length || !writable;
  $("#dup-selected").textContent = `${sel.length} selected`;
  const onDisk = state.server.roots.length > 0;
  for (const id of ["#dup-remove", "#dup-delete", "#dup-move"]) $(id).disabled = !sel.length;
  $("#dup-delete").hidden = !onDisk;
  $("#dup-move").hidden = !onDisk;
  $("#move-to").parentElement.hidden = !onDisk;
}

// Ask before a change; resolves true when confirmed.
function confirmAction(title, text, names) {
  const d = $("#confirm");
  $("#confirm-title").textContent = title;
  $("#confirm-text").textContent = text;
  const list = $("#confirm-list");
  list.innerHTML = "";
  for (const n of names) list.append(el("li", { textContent: n }));
  d.showModal();
  return new Promise((resolve) => {
    const done = (v) => { d.close(); $("#confirm-ok").onclick = null; $("#confirm-cancel").onclick = null; resolve(v); };
    $("#confirm-ok").onclick = () => done(true);
    $("#confirm-cancel").onclick = () => done(false);
    d.oncancel = () => resolve(false);
  });
}

async function dupAction(kind) {
  const sel = selectedMembers();
  if (!sel.length) return;
  const names = sel.map((m) => m.path || m.id);
  let title; let text; let call;
  if (kind === "remove") {
    title = `Remove ${plural(sel.length, "image")} from the collection?`;
    text = "Their records are deleted; the files stay on disk (uploads are deleted with their record).";
    call = (m) => write(`${base()}/records/${m.id}`, { method: "DELETE" });
  } else if (kind === "delete") {
    title = `Delete ${plural(sel.length, "file")} from disk?`;
    text = "The files are deleted and their records removed. This cannot be undone.";
    call = (m) => write(`${base()}/records/${m.id}/file`, { method: "DELETE" });
  } else {
    const to = $("#move-to").value.trim();
    if (!to) { setStatus("#dupes-status", "Give the folder to move the files into.", true); return; }
    title = `Move ${plural(sel.length, "file")} to ${to}?`;
    text = "The files move into that folder and leave the collection (their records are removed).";
    call = (m) => write(`${base()}/records/${m.id}/move`, {
      method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ to, forget: true }),
    });
  }
  if (!(await confirmAction(title, text, names))) { setStatus("#dupes-status", "Nothing changed."); return; }
  let ok = 0; const errors = [];
  for (const m of sel) {
    try { await call(m); ok++; } catch (e) { errors.push(`${m.name || m.id}: ${e.message}`); }
  }
  await loadCollections().catch(() => {});
  await runDupes();
  const verb = kind === "remove" ? "removed" : kind === "delete" ? "deleted" : "moved";
  setStatus("#dupes-status", `${ok} ${verb}${errors.length ? `; ${errors.length} failed: ${errors.join("; ")}` : ""}. ` + $("#dupes-status").textContent, errors.length > 0);
}

// ---------- lightbox ----------

function openLightbox(items, index) {
  state.lightbox = { items, index };
  showLightboxItem();
  const d = $("#lightbox");
  if (!d.open) d.showModal();
  $("#lb-close").focus();
}

function closeLightbox() { const d = $("#lightbox"); if (d.open) d.close(); }

async function showLightboxItem() {
  const { items, index } = state.lightbox;
  const c = items[index];
  $("#lb-prev").disabled = index === 0;
  $("#lb-next").disabled = index >= items.length - 1;
  $("#lb-title").textContent = c.name || fileName(c.path) || c.id;
  const img = $("#lb-img");
  img.src = c.thumb;
  img.alt = `${c.name || "image"}${c.label ? `, ${c.label}` : ""}`;
  const field = currentCollection().fields.find((f) => f.name === state.lastFeature);
  const v = c.distance !== undefined ? verdict(field, c.distance) : null;
  $("#lb-verdict").textContent = c.distance !== undefined
    ? `${v ? v.text + " · " : ""}distance ${c.distance.toFixed(3)} by ${state.lastFeature}` : "";
  const meta = $("#lb-meta");
  meta.innerHTML = "";
  const rows = [["Path", c.path || "—"], ["Size", humanSize(c.size)], ["Resolution", resolution(c)],
    ["Format", c.format || "—"], ["Date", humanDate(c.mtime)], ["Label", c.label || "—"]];
  for (const [k, val] of rows) meta.append(el("dt", { textContent: k }), el("dd", { textContent: val, dataset: { key: k.toLowerCase() } }));
  const tags = $("#lb-tags");
  tags.replaceWith(Object.assign(tagChips(c.tags), { id: "lb-tags" }));
  if (!c.tags || !c.tags.length) $("#lb-tags").append(el("span", { class: "muted", textContent: "no tags" }));
  // The original: known for browse and duplicates cards; asked for a search hit.
  const link = $("#lb-original");
  let original = c.original;
  if (original === undefined) {
    const url = `${base()}/records/${c.id}/original`;
    try { original = (await fetch(url, { method: "HEAD" })).ok ? url : null; } catch (_) { original = null; }
    c.original = original;
    if (state.lightbox.items[state.lightbox.index] !== c) return; // moved on meanwhile
  }
  link.hidden = !original;
  if (original) { link.href = original; img.src = original; }
}

function stepLightbox(delta) {
  const { items, index } = state.lightbox;
  const i = index + delta;
  if (i < 0 || i >= items.length) return;
  state.lightbox.index = i;
  showLightboxItem();
}

// ---------- views ----------

function showView(name) {
  for (const v of ["search", "browse", "dupes"]) {
    $(`#${v}-view`).hidden = v !== name;
    $(`#tab-${v}`).setAttribute("aria-selected", String(v === name));
  }
  state.view = name;
  if (name === "browse") runBrowse();
  if (name === "dupes") runDupes();
}

function refreshView() {
  if (state.view === "browse") { state.browse.offset = 0; runBrowse(); } else if (state.view === "dupes") runDupes(); else runSearch();
}

function wire() {
  const drop = $("#drop");
  drop.addEventListener("click", () => $("#file").click());
  drop.addEventListener("keydown", (e) => { if (e.key === "Enter" || e.key === " ") $("#file").click(); });
  $("#file").addEventListener("change", (e) => searchByFile(e.target.files[0]));
  drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (e) => {
    e.preventDefault(); drop.classList.remove("over");
    searchByFile(e.dataTransfer.files[0]);
  });
  $("#tab-search").addEventListener("click", () => showView("search"));
  $("#tab-browse").addEventListener("click", () => showView("browse"));
  $("#tab-dupes").addEventListener("click", () => showView("dupes"));
  $("#collection").addEventListener("change", async () => { await collectionChanged(); refreshView(); });
  $("#feature").addEventListener("change", () => { configureThreshold(); refreshView(); });
  $("#label").addEventListener("change", refreshView);
  $("#tag").addEventListener("keydown", (e) => { if (e.key === "Enter") { e.preventDefault(); searchTag($("#tag").value.trim()); } });
  $("#tag").addEventListener("search", () => searchTag($("#tag").value.trim()));
  $("#k").addEventListener("change", () => runSearch(readK()));
  $("#more").addEventListener("click", () => {
    $("#k").value = String(state.k * 2);
    runSearch(readK());
  });
  $("#use-threshold").addEventListener("change", () => {
    $("#threshold").disabled = !$("#use-threshold").checked;
    runSearch();
  });
  $("#threshold").addEventListener("input", showThreshold);
  $("#threshold").addEventListener("change", () => runSearch());
  $("#verify").addEventListener("change", () => runSearch());
  $("#page-size").addEventListener("change", () => { state.browse.offset = 0; runBrowse(); });
  $("#prev-page").addEventListener("click", () => {
    state.browse.offset = Math.max(0, state.browse.offset - Number($("#page-size").value)); runBrowse();
  });
  $("#next-page").addEventListener("click", () => { state.browse.offset += Number($("#page-size").value); runBrowse(); });
  $("#find-dupes").addEventListener("click", runDupes);
  $("#keep-rule").addEventListener("change", renderGroups);
  $("#dup-remove").addEventListener("click", () => dupAction("remove"));
  $("#dup-delete").addEventListener("click", () => dupAction("delete"));
  $("#dup-move").addEventListener("click", () => dupAction("move"));
  $("#lb-close").addEventListener("click", closeLightbox);
  $("#lb-prev").addEventListener("click", () => stepLightbox(-1));
  $("#lb-next").addEventListener("click", () => stepLightbox(1));
  $("#lb-search").addEventListener("click", () => {
    const c = state.lightbox.items[state.lightbox.index];
    closeLightbox();
    searchById(c);
  });
  $("#lightbox").addEventListener("keydown", (e) => {
    if (e.key === "ArrowLeft") stepLightbox(-1);
    if (e.key === "ArrowRight") stepLightbox(1);
  });
  // A click on the backdrop (outside the box) closes the preview too.
  $("#lightbox").addEventListener("click", (e) => { if (e.target === $("#lightbox")) closeLightbox(); });
}

async function start() {
  wire();
  state.view = "search";
  try { state.server = await api("/api/server"); } catch (_) { /* an older server: no write actions on disk */ }
  if (state.server.roots.length) $("#move-to").value = `${state.server.roots[0]}/duplicates`;
  await loadCollections();
  await collectionChanged();
}

start().catch((e) => setStatus("#status", e.message, true));
