// What every view of viscover's page uses: the /v1 API with the key it may want, images fetched with that key,
// error messages, and a result's card.

export const $ = (id) => document.getElementById(id);

// ---- the API ----------------------------------------------------------------------------------------

export function apiKey() {
  return localStorage.getItem("viscover-api-key");
}

export async function api(path, options = {}) {
  const headers = new Headers(options.headers || {});
  if (apiKey()) headers.set("X-API-Key", apiKey());
  const response = await fetch(path, { ...options, headers });
  if (response.status === 401) {
    $("key-button").hidden = false;
    throw new Error("this server wants an API key: use the API key button");
  }
  if (!response.ok) {
    let message = `the server answered ${response.status}`;
    try {
      message = (await response.json()).error.message;
    } catch (_) {}
    const error = new Error(message);
    error.status = response.status;
    throw error;
  }
  return response;
}

export async function json(path, options) {
  return (await api(path, options)).json();
}

// <img> cannot send a header: with a key, images are fetched and shown from blob URLs (let go once shown).
export async function showImage(img, url) {
  if (!apiKey()) {
    img.src = url;
    return;
  }
  const blob = URL.createObjectURL(await (await api(url)).blob());
  img.addEventListener("load", () => URL.revokeObjectURL(blob), { once: true });
  img.src = blob;
}

export function showError(message) {
  const box = $("error");
  box.textContent = message;
  box.hidden = false;
  clearTimeout(showError.timer);
  showError.timer = setTimeout(() => (box.hidden = true), 6000);
}

$("key-button").addEventListener("click", () => {
  const key = prompt("This viscover server wants its API key (kept in this browser):", apiKey() || "");
  if (key !== null) {
    localStorage.setItem("viscover-api-key", key.trim());
    location.reload();
  }
});

// ---- a result's card ------------------------------------------------------------------------------------

// what a related pin's candidate sources are called on its card
const SOURCE_NAMES = {
  cooccurrence: "same boards",
  walk: "nearby boards",
  "neighbour boards": "boards of pins with similar words",
  visual: "looks alike",
  text: "similar words",
};

export function span(className, text, title = "") {
  const element = document.createElement("span");
  element.className = className;
  element.textContent = text;
  if (title) element.title = title;
  return element;
}

// what a card says under its category: a hit's similarity, a related pin's sources
function scores(item) {
  const notes = [];
  if (item.similarity !== undefined) {
    notes.push(span("similarity", item.similarity.toFixed(2), `similarity (${item.metric}, distance ${item.distance})`));
  }
  if (item.sources) {
    const names = item.sources.map((source) => SOURCE_NAMES[source] || source).join(" · ");
    notes.push(span("sources", names, `proposed by ${item.sources.join(", ")}; score ${item.score.toFixed(2)}`));
  }
  return notes;
}

// A result's thumbnail, linked to its closeup; notes(item) gives what its caption says after the category.
export function card(item, { onClick = null, notes = scores } = {}) {
  const link = document.createElement("a");
  link.className = "card result";
  link.href = `/pins/${encodeURIComponent(item.pin_id)}`;
  link.dataset.pinId = item.pin_id;
  link.dataset.category = item.category || "";
  if (item.rank) link.dataset.rank = item.rank;
  const img = document.createElement("img");
  img.alt = item.description || item.category || item.pin_id;
  img.loading = "lazy";
  showImage(img, item.thumbnail_url).catch(() => {});
  const caption = document.createElement("div");
  caption.className = "caption";
  caption.append(span("category", item.category || item.description || item.pin_id), ...notes(item));
  link.append(img, caption);
  if (onClick) {
    link.addEventListener("click", (event) => {
      event.preventDefault();
      onClick(item);
    });
  }
  return link;
}
