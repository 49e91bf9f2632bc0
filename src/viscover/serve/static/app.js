// viscover's page: the search view (a photo or a pin in, a crop box over it, results that load on scroll),
// a pin's closeup (its image and text, its related pins and "more like this" under it), and Lens (lens.js).
// Everything comes from the /v1 API.

import { $, card, json, showError, showImage } from "./common.js";
import { showLens } from "./lens.js";

const PAGE = 24;
const DEBOUNCE_MS = 250; // a moving crop box searches when it rests this long, and once more when let go
const MIN_BOX = 8; // smaller boxes (in screen pixels) are taken as a click, not a crop

// ---- result grids that load more on scroll ----------------------------------------------------------------

class Feed {
  // fetchPage(cursor, signal) → {results, next_cursor, annotations?}; pages of a newer reset() make older
  // answers stale; onPage(page) sees every page that is shown (annotations come with first pages).
  constructor(grid, sentinel, status, { skip = () => false, onPage = () => {} } = {}) {
    Object.assign(this, { grid, sentinel, status, skip, onPage, token: 0, fetchPage: null });
    new IntersectionObserver((entries) => entries.some((e) => e.isIntersecting) && this.more()).observe(sentinel);
  }

  reset(fetchPage) {
    this.aborter?.abort(); // the previous query's page in flight is no longer wanted
    this.aborter = new AbortController();
    Object.assign(this, { fetchPage, cursor: null, done: false, loading: false, token: this.token + 1 });
    this.grid.replaceChildren();
    this.status.textContent = "";
    return this.more();
  }

  async more() {
    if (!this.fetchPage || this.loading || this.done) return;
    const token = this.token;
    this.loading = true;
    this.status.textContent = "Searching…";
    try {
      const page = await this.fetchPage(this.cursor, this.aborter.signal);
      if (token !== this.token) return;
      this.onPage(page);
      this.grid.append(...page.results.filter((hit) => !this.skip(hit)).map((hit) => card(hit)));
      this.cursor = page.next_cursor;
      this.done = !page.next_cursor;
      this.status.textContent = this.done ? (this.grid.children.length ? "That is all." : "Nothing found.") : "";
    } catch (error) {
      if (token === this.token && error.name !== "AbortError") {
        this.status.textContent = "";
        this.done = true;
        showError(error.message);
      }
    } finally {
      if (token === this.token) this.loading = false;
    }
    const box = this.sentinel.getBoundingClientRect();
    if (token === this.token && !this.done && box.top < window.innerHeight) this.more();
  }
}

// ---- annotations and dots ------------------------------------------------------------------------------

// Annotation chips: a click narrows the results to pins carrying the term; a second click clears it.
function showChips(element, annotations, active, choose) {
  if (!annotations) return; // pages after the first keep the chips they have
  element.replaceChildren(
    ...annotations.map((annotation) => {
      const chip = document.createElement("button");
      chip.type = "button";
      chip.className = annotation.term === active ? "chip active" : "chip";
      chip.dataset.term = annotation.term;
      chip.textContent = annotation.term;
      chip.title = `tf-idf ${annotation.score.toFixed(2)}: ${annotation.term === active ? "show all again" : "narrow to it"}`;
      chip.addEventListener("click", () => choose(annotation.term === active ? null : annotation.term));
      return chip;
    }),
  );
}

// Object dots over an image: where the detector found an object visual search is confident about.
function showDots(layer, img, dots, open) {
  layer.replaceChildren(
    ...(dots || [])
      .filter((dot) => dot.shown)
      .map((dot) => {
        const [x0, y0, x1, y1] = dot.box;
        const button = document.createElement("button");
        button.type = "button";
        button.className = "dot";
        button.dataset.label = dot.label;
        button.dataset.crop = dot.crop;
        button.title = `${dot.label}: search this object`;
        button.style.left = `${(100 * (x0 + x1)) / 2 / img.naturalWidth}%`;
        button.style.top = `${(100 * (y0 + y1)) / 2 / img.naturalHeight}%`;
        button.addEventListener("pointerdown", (event) => event.stopPropagation()); // not a new crop box
        button.addEventListener("click", () => open(dot));
        return button;
      }),
  );
}

// ---- the search view ------------------------------------------------------------------------------------

const query = { file: null, pinId: null, crop: null, term: null };
let box = null; // the crop box in screen pixels over the query image: {x, y, w, h}
let drag = null;
let timer = null;
const results = new Feed($("results"), $("results-sentinel"), $("results-status"), {
  onPage: (page) => showChips($("annotations"), page.annotations, query.term, narrow),
});

async function searchPage(cursor, signal) {
  const form = new FormData();
  form.set("k", PAGE);
  if (cursor) {
    form.set("cursor", cursor); // the server keeps the query's vector (and term): nothing is sent again
    return json("/v1/search", { method: "POST", body: form, signal });
  }
  if (query.file) form.set("image", query.file);
  else form.set("pin_id", query.pinId);
  if (query.crop) form.set("crop", query.crop);
  if (query.term) {
    form.set("term", query.term);
    return json("/v1/search", { method: "POST", body: form, signal });
  }
  const answer = await json("/v1/flashlight", { method: "POST", body: form, signal }); // results and dots
  if (answer.dots) showDots($("query-dots"), $("query-image"), answer.dots, searchDot);
  return answer.page;
}

function search() {
  $("results-panel").hidden = false;
  $("annotations").hidden = false;
  const what = query.crop ? `Results for the box ${query.crop}` : "Results";
  $("results-title").textContent = query.term ? `${what}, narrowed to “${query.term}”` : what;
  if (!query.term) $("annotations").replaceChildren(); // a new query's chips come with its first page
  results.reset(searchPage);
}

function narrow(term) {
  query.term = term;
  for (const chip of $("annotations").children) chip.classList.toggle("active", chip.dataset.term === term);
  search();
}

function searchDot(dot) {
  showCrop(dot.crop);
  Object.assign(query, { crop: dot.crop, term: null });
  search();
}

function showCrop(crop) {
  // a box given in the image's pixels (a dot's), drawn over it; it keeps its exact text
  const img = $("query-image");
  const [x, y, w, h] = crop.split(",").map(Number);
  const scale = img.clientWidth / img.naturalWidth;
  setBox({ x: x * scale, y: y * scale, w: w * scale, h: h * scale, crop });
}

async function useFile(file) {
  if (!file || !file.type.startsWith("image/")) {
    showError("that is not an image file");
    return;
  }
  Object.assign(query, { file, pinId: null, crop: null, term: null });
  history.replaceState(null, "", "/");
  if (await showQuery(URL.createObjectURL(file))) search();
}

async function usePin(pinId, crop = null) {
  Object.assign(query, { file: null, pinId, crop: null, term: null });
  history.replaceState(null, "", `/?pin=${encodeURIComponent(pinId)}`);
  if (!(await showQuery(null, `/v1/pins/${encodeURIComponent(pinId)}/image`))) return;
  if (crop) {
    showCrop(crop); // a dot clicked on a closeup: its box, over this image
    query.crop = crop;
  }
  search();
}

let shownQuery = 0;
async function showQuery(objectUrl, apiUrl) {
  // resolves true once this image shows, false if a newer query replaced it or the browser cannot show it
  const token = ++shownQuery;
  const img = $("query-image");
  const shown = new Promise((resolve) => {
    img.onload = () => resolve(true);
    img.onerror = () => {
      showError("this browser cannot show that image: try a JPEG, PNG or WebP file");
      resolve(false);
    };
  });
  if (objectUrl) img.src = objectUrl;
  else await showImage(img, apiUrl);
  if (!(await shown) || token !== shownQuery) return false;
  setBox(null);
  $("query-dots").replaceChildren();
  $("drop-zone").hidden = true;
  $("cropper").hidden = false;
  $("query-actions").hidden = false;
  return true;
}

function setBox(next) {
  box = next;
  const element = $("crop-box");
  element.hidden = !box;
  if (box) Object.assign(element.style, { left: `${box.x}px`, top: `${box.y}px`, width: `${box.w}px`, height: `${box.h}px` });
  $("crop-label").textContent = box ? `box ${cropText()} (x,y,w,h in the image's pixels)` : "the whole image";
}

function cropText() {
  // screen pixels → the original image's pixels, clamped inside it (a box from a dot keeps its own)
  if (box.crop) return box.crop;
  const img = $("query-image");
  const scale = img.naturalWidth / img.clientWidth;
  const x = Math.max(0, Math.round(box.x * scale));
  const y = Math.max(0, Math.round(box.y * scale));
  const w = Math.max(1, Math.min(img.naturalWidth - x, Math.round(box.w * scale)));
  const h = Math.max(1, Math.min(img.naturalHeight - y, Math.round(box.h * scale)));
  return `${x},${y},${w},${h}`;
}

function pointer(event) {
  const area = $("query-image").getBoundingClientRect();
  return {
    x: Math.min(Math.max(event.clientX - area.left, 0), area.width),
    y: Math.min(Math.max(event.clientY - area.top, 0), area.height),
    width: area.width,
    height: area.height,
  };
}

function clamp(next, p) {
  const w = Math.min(next.w, p.width);
  const h = Math.min(next.h, p.height);
  return { x: Math.min(Math.max(next.x, 0), p.width - w), y: Math.min(Math.max(next.y, 0), p.height - h), w, h };
}

$("cropper").addEventListener("pointerdown", (event) => {
  const p = pointer(event);
  const corner = event.target.dataset.corner;
  const mode = corner ? "resize" : event.target.id === "crop-box" ? "move" : "draw";
  drag = { mode, corner, start: p, from: box };
  $("cropper").setPointerCapture(event.pointerId);
  event.preventDefault();
});

$("cropper").addEventListener("pointermove", (event) => {
  if (!drag) return;
  const p = pointer(event);
  const dx = p.x - drag.start.x;
  const dy = p.y - drag.start.y;
  if (drag.mode === "move") {
    setBox(clamp({ ...drag.from, x: drag.from.x + dx, y: drag.from.y + dy }, p));
  } else {
    // draw from the press point, or resize from the corner opposite the handle held
    let anchor = drag.start;
    if (drag.mode === "resize") {
      const { x, y, w, h } = drag.from;
      anchor = { x: drag.corner.includes("w") ? x + w : x, y: drag.corner.includes("n") ? y + h : y };
    }
    const x0 = Math.min(anchor.x, p.x);
    const y0 = Math.min(anchor.y, p.y);
    setBox({ x: x0, y: y0, w: Math.abs(p.x - anchor.x), h: Math.abs(p.y - anchor.y) });
  }
  clearTimeout(timer);
  if (box && box.w >= MIN_BOX && box.h >= MIN_BOX) timer = setTimeout(searchBox, DEBOUNCE_MS);
});

$("cropper").addEventListener("pointerup", () => {
  if (!drag) return;
  drag = null;
  clearTimeout(timer);
  if (box && (box.w < MIN_BOX || box.h < MIN_BOX)) setBox(null);
  searchBox();
});

function searchBox() {
  const crop = box ? cropText() : null;
  if (crop === query.crop) return; // already showing results for this box
  Object.assign(query, { crop, term: null });
  search();
}

$("whole-image").addEventListener("click", () => {
  setBox(null);
  searchBox();
});

$("new-query").addEventListener("click", () => $("file-input").click());
$("file-input").addEventListener("change", (event) => useFile(event.target.files[0]));

for (const zone of [$("drop-zone"), $("cropper")]) {
  zone.addEventListener("dragover", (event) => {
    event.preventDefault();
    $("drop-zone").classList.add("over");
  });
  zone.addEventListener("dragleave", () => $("drop-zone").classList.remove("over"));
  zone.addEventListener("drop", (event) => {
    event.preventDefault();
    $("drop-zone").classList.remove("over");
    useFile(event.dataTransfer.files[0]);
  });
}

document.addEventListener("paste", (event) => {
  if ($("search-view").hidden) return; // a paste on another view is not a query
  const item = [...event.clipboardData.items].find((i) => i.type.startsWith("image/"));
  if (item) useFile(item.getAsFile());
});

$("keyword-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const words = $("keywords").value.trim();
  if (!words) return;
  if (location.pathname !== "/") {
    location.href = `/?q=${encodeURIComponent(words)}`;
    return;
  }
  searchWords(words);
});

function searchWords(words) {
  history.replaceState(null, "", `/?q=${encodeURIComponent(words)}`);
  $("results-panel").hidden = false;
  $("annotations").hidden = true;
  $("results-title").textContent = `Pins matching “${words}”`;
  results.reset(async (cursor, signal) => {
    const offset = cursor || 0;
    const page = await json(`/v1/search/text?q=${encodeURIComponent(words)}&k=${PAGE}&offset=${offset}`, { signal });
    return { results: page.results, next_cursor: page.next_offset };
  });
}

let catalogAfter = 0;
async function moreCatalog() {
  try {
    const page = await json(`/v1/pins?limit=${PAGE}&after=${catalogAfter}`);
    $("catalog").append(...page.pins.map((pin) => card(pin, { onClick: (p) => usePin(p.pin_id) })));
    catalogAfter = page.next_after;
    $("catalog-more").hidden = page.next_after === null;
  } catch (error) {
    showError(error.message);
  }
}
$("catalog-more").addEventListener("click", moreCatalog);

// ---- a pin's closeup -------------------------------------------------------------------------------------

async function showCloseup(pinId) {
  $("closeup-view").hidden = false;
  const path = `/v1/pins/${encodeURIComponent(pinId)}`;
  let pin;
  try {
    pin = await json(path);
  } catch (error) {
    $("closeup-title").textContent = error.status === 404 ? `No pin ${pinId} in this catalog` : error.message;
    return;
  }
  document.title = `${pin.description || pin.pin_id} · viscover`;
  $("closeup-title").textContent = pin.description || pin.pin_id;
  $("closeup-description").textContent = `Pin ${pin.pin_id}`;
  $("closeup-category").textContent = pin.category || "–";
  $("closeup-boards").textContent = pin.boards.length ? pin.boards.join(", ") : "–";
  $("closeup-size").textContent = `${pin.width} × ${pin.height} pixels`;
  $("closeup-image").alt = pin.description || pin.category || pin.pin_id;
  $("closeup-crop").href = `/?pin=${encodeURIComponent(pin.pin_id)}`;
  const img = $("closeup-image");
  const shown = new Promise((resolve) => (img.onload = resolve));
  showImage(img, pin.image_url).catch((error) => showError(error.message));
  let term = null;
  const similar = new Feed($("similar"), $("similar-sentinel"), $("similar-status"), {
    skip: (hit) => hit.pin_id === pin.pin_id,
    onPage: (page) => showChips($("similar-annotations"), page.annotations, term, (chosen) => {
      term = chosen;
      similar.reset(similarPage);
    }),
  });
  const similarPage = (cursor, signal) => {
    const narrowed = term && !cursor ? `&term=${encodeURIComponent(term)}` : "";
    return json(`${path}/similar?k=${PAGE}${narrowed}${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ""}`, {
      signal,
    });
  };
  similar.reset(similarPage);
  // the related feed (the paper's Figure 8): pages by offset; each card opens its own closeup
  const related = new Feed($("related"), $("related-sentinel"), $("related-status"));
  related.reset(async (offset, signal) => {
    const page = await json(`${path}/related?k=${PAGE}&offset=${offset || 0}`, { signal });
    return { results: page.results, next_cursor: page.next_offset };
  });
  // the closeup's dots (none when the server has dots off): each opens a search of that object's box;
  // a pin's one result comes from its stored vector, so asking costs no embedding
  const form = new FormData();
  form.set("pin_id", pin.pin_id);
  form.set("k", 1);
  try {
    const [answer] = await Promise.all([json("/v1/flashlight", { method: "POST", body: form }), shown]);
    showDots($("closeup-dots"), img, answer.dots, (dot) => {
      location.href = `/?pin=${encodeURIComponent(pin.pin_id)}&crop=${dot.crop}`;
    });
  } catch (error) {
    showError(error.message);
  }
}

// ---- which view ------------------------------------------------------------------------------------------

if (location.pathname.startsWith("/pins/")) {
  showCloseup(decodeURIComponent(location.pathname.slice("/pins/".length)));
} else if (location.pathname === "/lens") {
  showLens();
} else {
  $("search-view").hidden = false;
  moreCatalog();
  const params = new URLSearchParams(location.search);
  if (params.get("pin")) usePin(params.get("pin"), params.get("crop"));
  else if (params.get("q")) {
    $("keywords").value = params.get("q");
    searchWords(params.get("q"));
  }
}
