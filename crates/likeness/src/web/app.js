// likeness web page: drop or pick an image, see the most similar stored images.
"use strict";
const $ = (s) => document.querySelector(s);
const state = { collections: [], query: null };

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

function currentCollection() {
  return state.collections.find((c) => c.name === $("#collection").value);
}

function setStatus(text, isError) {
  const s = $("#status");
  s.textContent = text;
  s.classList.toggle("error", !!isError);
}

function configureThreshold() {
  const c = currentCollection();
  if (!c) return;
  const f = c.fields.find((x) => x.name === $("#feature").value) || c.fields[0];
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

async function loadCollections() {
  const j = await api("/api/collections");
  state.collections = j.collections;
  const sel = $("#collection");
  sel.innerHTML = "";
  for (const c of j.collections) {
    const o = document.createElement("option");
    o.value = c.name; o.textContent = `${c.name} (${c.count})`;
    sel.appendChild(o);
  }
  if (j.collections.some((c) => c.name === j.default)) sel.value = j.default;
  if (!j.collections.length) setStatus("The database is empty: index a folder with `likeness index DIR --db DB`.");
  await collectionChanged();
}

async function collectionChanged() {
  const c = currentCollection();
  const fsel = $("#feature");
  fsel.innerHTML = "";
  if (!c) return;
  const preferred = ["cnn", "cnn-lite2", "color", "texture", "phash", "dhash"];
  const names = c.fields.map((f) => f.name);
  for (const n of names) {
    const o = document.createElement("option");
    o.value = n; o.textContent = n;
    fsel.appendChild(o);
  }
  fsel.value = preferred.find((p) => names.includes(p)) || names[0];
  configureThreshold();
  const lsel = $("#label");
  lsel.innerHTML = '<option value="">any</option>';
  try {
    const j = await api(`/api/collections/${encodeURIComponent(c.name)}/labels`);
    for (const l of j.labels) {
      const o = document.createElement("option");
      o.value = l.label; o.textContent = `${l.label} (${l.count})`;
      lsel.appendChild(o);
    }
  } catch (e) { setStatus(e.message, true); }
}

function searchParams() {
  const p = { feature: $("#feature").value, k: Math.max(1, Math.min(200, Number($("#k").value) || 24)) };
  if ($("#use-threshold").checked) p.threshold = Number($("#threshold").value);
  const label = $("#label").value;
  if (label) p.filter = { label };
  return p;
}

async function runSearch() {
  const c = currentCollection();
  if (!c || !state.query) return;
  const p = searchParams();
  const base = `/api/collections/${encodeURIComponent(c.name)}`;
  setStatus("Searching…");
  try {
    let j;
    if (state.query.file) {
      const fd = new FormData();
      fd.append("image", state.query.file, state.query.file.name);
      fd.append("feature", p.feature);
      fd.append("k", String(p.k));
      if (p.threshold !== undefined) fd.append("threshold", String(p.threshold));
      if (p.filter) fd.append("filter", JSON.stringify(p.filter));
      j = await api(`${base}/search/image`, { method: "POST", body: fd });
    } else {
      j = await api(`${base}/search`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ ...p, id: state.query.id }),
      });
    }
    render(j);
    setStatus(`${j.results.length} results by ${j.feature} in ${j.took_ms.toFixed(1)} ms`);
  } catch (e) {
    $("#results").innerHTML = "";
    setStatus(e.message, true);
  }
}

function render(j) {
  const grid = $("#results");
  grid.innerHTML = "";
  for (const r of j.results) {
    const card = document.createElement("figure");
    card.className = "result";
    card.dataset.id = r.id;
    card.title = r.path || "";
    const img = document.createElement("img");
    img.src = r.thumb; img.alt = r.label || ""; img.loading = "lazy";
    const meta = document.createElement("figcaption");
    meta.className = "meta";
    const label = document.createElement("span");
    label.className = "label"; label.textContent = r.label || "—";
    const dist = document.createElement("span");
    dist.className = "distance"; dist.textContent = r.distance.toFixed(j.feature.includes("hash") ? 0 : 3);
    meta.append(label, dist);
    const name = document.createElement("div");
    name.className = "name"; name.textContent = (r.path || "").split("/").pop();
    card.append(img, meta, name);
    card.addEventListener("click", () => searchById(r.id, r.thumb));
    grid.appendChild(card);
  }
}

function showQueryImage(src) {
  const img = $("#query-image");
  img.src = src; img.hidden = false;
  $("#drop-text").textContent = "Drop another image, or click a result to search by it";
}

function searchByFile(file) {
  if (!file) return;
  state.query = { file };
  showQueryImage(URL.createObjectURL(file));
  runSearch();
}

function searchById(id, thumb) {
  state.query = { id };
  showQueryImage(thumb);
  runSearch();
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
  $("#collection").addEventListener("change", async () => { await collectionChanged(); runSearch(); });
  $("#feature").addEventListener("change", () => { configureThreshold(); runSearch(); });
  $("#label").addEventListener("change", runSearch);
  $("#k").addEventListener("change", runSearch);
  $("#use-threshold").addEventListener("change", () => {
    $("#threshold").disabled = !$("#use-threshold").checked;
    runSearch();
  });
  $("#threshold").addEventListener("input", showThreshold);
  $("#threshold").addEventListener("change", runSearch);
}

wire();
loadCollections().catch((e) => setStatus(e.message, true));
