// imgsearch page: no framework, no build step. State is the query; every change re-runs it.
"use strict";

const MAX_UPLOAD = 20 * 1024 * 1024; // the server refuses larger images (serve.MAX_IMAGE_BYTES)
const K = 24;
const $ = (id) => document.getElementById(id);
const state = { text: "", image: null, imageLabel: "", likes: new Map(), unlikes: new Map(), filters: {} };
const FILTERS = ["taken_after", "taken_before", "place", "camera"]; // --batch keys (imgsearch/filters.py)
let health = null;
let seq = 0; // answers to superseded queries are dropped

function token() {
  const m = location.hash.match(/token=([^&]+)/);
  if (m) {
    sessionStorage.setItem("imgsearch-token", decodeURIComponent(m[1]));
    history.replaceState(null, "", location.pathname);
  }
  const t = sessionStorage.getItem("imgsearch-token");
  // thumbnails are <img> requests, which cannot send a header: they carry a same-site cookie
  if (t) document.cookie = `imgsearch_token=${encodeURIComponent(t)}; path=/; SameSite=Strict`;
  return t;
}
const TOKEN = token();

async function api(path, options = {}) {
  const headers = { ...(options.headers || {}) };
  if (TOKEN) headers.Authorization = `Bearer ${TOKEN}`;
  const response = await fetch(path, { ...options, headers });
  let body = null;
  try { body = await response.json(); } catch { body = { error: `HTTP ${response.status}` }; }
  if (!response.ok) throw new Error(body.error || `HTTP ${response.status}`);
  return body;
}

const thumb = (id) => `/api/items/${encodeURIComponent(id)}/thumbnail`;

function status(message, isError = false) {
  $("status").textContent = message;
  $("status").classList.toggle("error", isError);
}

function queryBody() {
  const body = { k: K };
  if (state.text) body.text = [state.text];
  if (state.image) body.image = [state.image];
  if (state.likes.size) body.like = [...state.likes.keys()];
  if (state.unlikes.size) body.unlike = [...state.unlikes.keys()];
  Object.assign(body, state.filters);
  return body;
}

async function search() {
  renderChips();
  const body = queryBody();
  if (!body.text && !body.image && !body.like && !Object.keys(state.filters).length) {
    $("grid").replaceChildren();
    status(health ? `${health.items} items in ${health.generation}. Type a query, or drop an image.` : "");
    return;
  }
  const mine = ++seq;
  const started = performance.now();
  status("Searching…");
  try {
    const answer = await api("/api/query", {
      method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body),
    });
    if (mine !== seq) return;
    render(answer.results);
    const ms = Math.round(performance.now() - started);
    const noExif = answer.no_exif ? ` · ${answer.no_exif} without EXIF left out` : "";
    status(`${answer.results.length} results in ${ms} ms` + (health ? ` · ${health.items} items` : "") + noExif);
  } catch (err) {
    if (mine === seq) status(err.message, true);
  }
}

function tagsOf(item) {
  const tags = item.tags || {};
  const out = [];
  for (const [name] of (tags.colours || []).slice(0, 2)) out.push(name);
  for (const [name] of (tags.classes || []).slice(0, 2)) out.push(name);
  const exif = item.exif || {};
  if (exif.taken) out.push(exif.taken.slice(0, 10));
  if (exif.place) out.push(exif.place.split(", ").slice(-2).join(", "));
  // the words read off the photo (index --ocr): why a word query found it
  const words = (item.ocr || "").split("\n").join(" ").trim();
  if (words) out.push(`“${words.length > 32 ? words.slice(0, 31) + "…" : words}”`);
  return out;
}

function render(results) {
  const grid = $("grid");
  if (!results.length) {
    const empty = document.createElement("div");
    empty.className = "empty";
    empty.textContent = "No results.";
    grid.replaceChildren(empty);
    return;
  }
  grid.replaceChildren(...results.map(card));
}

function card(hit) {
  const node = $("card").content.firstElementChild.cloneNode(true);
  node.dataset.id = hit.id;
  node.classList.toggle("liked", state.likes.has(hit.id));
  node.classList.toggle("unliked", state.unlikes.has(hit.id));
  const img = node.querySelector("img");
  img.src = thumb(hit.id);
  img.alt = hit.text || hit.path.split("/").pop();
  node.querySelector(".rank").textContent = `#${hit.rank}`;
  node.querySelector(".score").textContent = hit.score.toFixed(2);
  const title = node.querySelector(".title");
  title.textContent = hit.text || hit.path.split("/").pop();
  title.title = hit.path;
  node.querySelector(".tags").replaceChildren(...tagsOf(hit).map((t) => {
    const span = document.createElement("span");
    span.className = "tag";
    span.textContent = t;
    return span;
  }));
  const like = node.querySelector(".like");
  const unlike = node.querySelector(".unlike");
  like.classList.toggle("on", state.likes.has(hit.id));
  unlike.classList.toggle("on", state.unlikes.has(hit.id));
  like.addEventListener("click", () => vote(hit, state.likes, state.unlikes));
  unlike.addEventListener("click", () => vote(hit, state.unlikes, state.likes));
  node.querySelector(".thumb").addEventListener("click", () => moreLike(hit));
  return node;
}

function vote(hit, into, other) {
  other.delete(hit.id);
  if (into.has(hit.id)) into.delete(hit.id);
  else into.set(hit.id, hit.text || hit.path.split("/").pop());
  search();
}

function moreLike(hit) {
  state.text = "";
  $("text").value = "";
  state.image = null;
  state.likes = new Map([[hit.id, hit.text || hit.path.split("/").pop()]]);
  state.unlikes = new Map();
  search();
}

function chip(kind, label, src, onRemove) {
  const node = document.createElement("span");
  node.className = `chip ${kind}`;
  if (src) {
    const img = document.createElement("img");
    img.src = src;
    img.alt = "";
    node.append(img);
  }
  node.append(label);
  const remove = document.createElement("button");
  remove.type = "button";
  remove.textContent = "×";
  remove.title = "Remove";
  remove.addEventListener("click", onRemove);
  node.append(remove);
  return node;
}

function renderChips() {
  const chips = [];
  if (state.image) {
    chips.push(chip("image", state.imageLabel, state.image, () => { state.image = null; search(); }));
  }
  for (const [kind, map, mark] of [["like", state.likes, "👍"], ["unlike", state.unlikes, "👎"]]) {
    for (const [id, label] of map) {
      chips.push(chip(kind, `${mark} ${label.slice(0, 28)}`, thumb(id), () => { map.delete(id); search(); }));
    }
  }
  $("query").replaceChildren(...chips);
}

function useFile(file) {
  if (!file || !file.type.startsWith("image/")) return status("That is not an image file.", true);
  if (file.size > MAX_UPLOAD) return status("Images up to 20 MB, please.", true);
  const reader = new FileReader();
  reader.onload = () => {
    state.image = reader.result; // a data: URL; the server decodes it with the indexer's guards
    state.imageLabel = file.name || "pasted image";
    state.likes.clear();
    state.unlikes.clear();
    search();
  };
  reader.readAsDataURL(file);
}

$("search").addEventListener("submit", (event) => {
  event.preventDefault();
  const text = $("text").value.trim();
  if (text !== state.text) { state.likes.clear(); state.unlikes.clear(); }
  state.text = text;
  search();
});
$("filters").addEventListener("change", () => {
  state.filters = {};
  for (const key of FILTERS) {
    const value = $(key).value.trim();
    if (value) state.filters[key] = value;
  }
  search();
});
$("filters").addEventListener("submit", (event) => event.preventDefault());
$("file").addEventListener("change", (event) => { useFile(event.target.files[0]); event.target.value = ""; });
document.addEventListener("paste", (event) => {
  const file = [...(event.clipboardData?.files || [])].find((f) => f.type.startsWith("image/"));
  if (file) { event.preventDefault(); useFile(file); }
});
let dragDepth = 0;
document.addEventListener("dragenter", (e) => { e.preventDefault(); dragDepth++; $("drop").hidden = false; });
document.addEventListener("dragleave", () => { if (--dragDepth <= 0) { dragDepth = 0; $("drop").hidden = true; } });
document.addEventListener("dragover", (e) => e.preventDefault());
document.addEventListener("drop", (event) => {
  event.preventDefault();
  dragDepth = 0;
  $("drop").hidden = true;
  useFile(event.dataTransfer.files[0]);
});

api("/api/health").then((h) => { health = h; search(); }).catch((err) => status(err.message, true));
