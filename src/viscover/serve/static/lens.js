// Lens (/lens): a photo in; what viscover sees in it (its objects drawn over it, annotations, colours, a category)
// and one feed blended from visual, text and object search. An annotation or a colour steers the feed to pins
// carrying it; an object shows the scenes that hold objects like it.

import { $, card, json, showError, span } from "./common.js";

const K = 24; // results in the feed
const SCENES = 12; // scenes shown for an object
// what each source is called on a result's card and in the line that explains the mix
const SOURCES = { visual: "visually similar", text: "text", object: "scene with this object" };

const lens = { file: null, term: null, crop: null, looking: 0, sceneSearch: 0, aborter: null };

export function showLens() {
  $("lens-view").hidden = false;
  $("lens-link").setAttribute("aria-current", "page");
  document.title = "Lens · viscover";
}

const percent = (share) => `${Math.round(100 * share)}%`;

// ---- a photo in, and what Lens answers --------------------------------------------------------------------

function usePhoto(file) {
  Object.assign(lens, { file, term: null, crop: null, sceneSearch: lens.sceneSearch + 1 });
  const img = $("lens-image");
  if (img.src.startsWith("blob:")) URL.revokeObjectURL(img.src);
  img.onerror = () => ($("lens-frame").hidden = true); // a format this browser cannot show: the rest still can
  $("lens-frame").hidden = false;
  img.src = URL.createObjectURL(file);
  for (const id of ["lens-boxes", "lens-annotations", "lens-colours", "lens-scenes"]) $(id).replaceChildren();
  for (const id of ["lens-category", "lens-objects"]) $(id).textContent = "…";
  $("lens-pick").hidden = true;
  $("lens-problem").hidden = true;
  $("lens-understanding").hidden = false;
  $("lens-scenes-panel").hidden = true;
  look();
}

async function look() {
  const token = ++lens.looking;
  lens.aborter?.abort(); // a newer photo or term: the answer in flight is no longer wanted
  lens.aborter = new AbortController();
  const form = new FormData();
  form.set("image", lens.file);
  form.set("k", K);
  if (lens.term) form.set("term", lens.term);
  $("lens-term").hidden = !lens.term;
  $("lens-term-name").textContent = lens.term || "";
  $("lens-feed-panel").hidden = false;
  $("lens-feed").replaceChildren();
  $("lens-mix").replaceChildren();
  $("lens-status").textContent = "Looking…";
  try {
    const answer = await json("/v1/lens", { method: "POST", body: form, signal: lens.aborter.signal });
    if (token !== lens.looking) return;
    showUnderstanding(answer.understanding);
    showFeed(answer);
  } catch (error) {
    if (token !== lens.looking || error.name === "AbortError") return;
    showError(error.message);
    if (lens.term) {
      $("lens-status").textContent = error.message; // the photo's understanding stays; only this feed failed
      return;
    }
    // nothing to show of this photo: back to choosing one, with the server's word on why
    $("lens-problem").textContent = error.message;
    for (const id of ["lens-problem", "lens-pick"]) $(id).hidden = false;
    for (const id of ["lens-understanding", "lens-feed-panel"]) $(id).hidden = true;
  }
}

function steer(term) {
  lens.term = term;
  for (const chip of document.querySelectorAll("#lens-understanding .chip")) {
    chip.classList.toggle("active", chip.dataset.term === term);
  }
  look();
}

// ---- the understanding: objects over the photo, annotations, colours, a category ---------------------------

function showUnderstanding(seen) {
  $("lens-category").textContent = seen.category
    ? `${seen.category} (${percent(seen.conformity)} of the visually similar pins)`
    : "–";
  const shown = seen.objects.filter((dot) => dot.shown);
  const below = seen.objects.length - shown.length;
  $("lens-objects").textContent =
    (shown.length ? shown.map((dot) => dot.label).join(", ") : "none shown") +
    (below ? ` (${below} more below the dot filter)` : "");
  // larger boxes first, so a smaller one inside a larger one stays on top to be clicked
  const area = ({ box: [x0, y0, x1, y1] }) => (x1 - x0) * (y1 - y0);
  $("lens-boxes").replaceChildren(...shown.sort((a, b) => area(b) - area(a)).map((dot) => objectBox(dot, seen)));
  $("lens-annotations").replaceChildren(
    ...seen.annotations.map((a) => steeringChip(a.term, [a.term, span("score", a.score.toFixed(2))], `tf-idf ${a.score.toFixed(2)}`)),
  );
  $("lens-colours").replaceChildren(
    ...seen.colours.map((colour) => {
      const chip = steeringChip(
        colour.name,
        [colour.name, span("score", percent(colour.share))],
        `${colour.rgb}, ${percent(colour.share)} of the photo's foreground`,
      );
      chip.classList.add("swatch");
      chip.style.background = colour.rgb;
      chip.style.color = light(colour.rgb) ? "var(--ink)" : "white";
      return chip;
    }),
  );
}

// An object that passed the dot filter, as a box over the photo: its pixels scaled to the photo as shown.
function objectBox(dot, seen) {
  const [x0, y0, x1, y1] = dot.box;
  const button = document.createElement("button");
  button.type = "button";
  button.className = dot.crop === lens.crop ? "box active" : "box";
  button.dataset.label = dot.label;
  button.dataset.crop = dot.crop;
  button.title = `${dot.label} (detector ${dot.score.toFixed(2)}): scenes with objects like it`;
  Object.assign(button.style, {
    left: `${(100 * x0) / seen.width}%`,
    top: `${(100 * y0) / seen.height}%`,
    width: `${(100 * (x1 - x0)) / seen.width}%`,
    height: `${(100 * (y1 - y0)) / seen.height}%`,
  });
  button.append(span("tag", dot.label));
  button.addEventListener("click", () => scenes(dot));
  return button;
}

// An annotation or a colour: a click steers the feed to pins carrying it; a second click lets go.
function steeringChip(term, content, title) {
  const chip = document.createElement("button");
  chip.type = "button";
  chip.className = term === lens.term ? "chip active" : "chip";
  chip.dataset.term = term;
  chip.title = `${title}: steer the feed to pins carrying “${term}”`;
  chip.append(...content);
  chip.addEventListener("click", () => steer(term === lens.term ? null : term));
  return chip;
}

function light(rgb) {
  const [r, g, b] = [1, 3, 5].map((i) => parseInt(rgb.slice(i, i + 2), 16));
  return 0.299 * r + 0.587 * g + 0.114 * b > 150;
}

// ---- the blended feed, and the scenes holding an object ------------------------------------------------------

function showFeed(answer) {
  $("lens-mix").replaceChildren(
    span("", "Mixed from:"),
    ...answer.mix.map((share) => {
      const name = SOURCES[share.name] || share.name;
      const text = share.fired ? `${name}: ${share.placed} of ${share.offered}` : `${name}: off`;
      const title = `precision ${share.precision.toFixed(2)}, quota ${percent(share.quota)} of the feed`;
      const item = span(share.fired ? "fired" : "off", text, title);
      item.append(span("reason", ` (${share.reason})`));
      return item;
    }),
  );
  $("lens-feed").replaceChildren(
    ...answer.results.map((hit) => {
      const result = card(hit, { notes: (item) => [source(item.source), span("why", item.why)] });
      result.dataset.source = hit.source;
      result.title = hit.why;
      return result;
    }),
  );
  const nothing = lens.term ? `No pin found carries “${lens.term}”.` : "Nothing found.";
  $("lens-status").textContent = answer.results.length ? "" : nothing;
}

function source(name) {
  return span(`source ${name}`, SOURCES[name] || name);
}

async function scenes(dot) {
  const token = ++lens.sceneSearch;
  lens.crop = dot.crop;
  for (const box of $("lens-boxes").children) box.classList.toggle("active", box.dataset.crop === dot.crop);
  $("lens-scenes-panel").hidden = false;
  $("lens-scenes-title").textContent = `Scenes with objects like this ${dot.label}`;
  $("lens-scenes").replaceChildren();
  $("lens-scenes-status").textContent = "Searching…";
  $("lens-scenes-panel").scrollIntoView({ block: "nearest" });
  const form = new FormData();
  form.set("image", lens.file);
  form.set("crop", dot.crop);
  form.set("k", SCENES);
  try {
    const page = await json("/v1/search/objects", { method: "POST", body: form });
    if (token !== lens.sceneSearch) return;
    // a sliding window (label "region") is a part of the scene, not a named object
    const part = (hit) => (hit.object_label === "region" ? "a region of it" : `its ${hit.object_label}`);
    const holds = (hit) => [span("why", `${part(hit)} (similarity ${hit.similarity.toFixed(2)})`)];
    $("lens-scenes").replaceChildren(...page.results.map((hit) => card(hit, { notes: holds })));
    $("lens-scenes-status").textContent = page.results.length ? "" : "No scene holds an object like it.";
  } catch (error) {
    if (token !== lens.sceneSearch) return;
    $("lens-scenes-status").textContent = error.message;
    showError(error.message);
  }
}

$("lens-file").addEventListener("change", (event) => {
  const file = event.target.files[0];
  event.target.value = ""; // choosing the same photo again is a new look
  if (file) usePhoto(file);
});
$("lens-another").addEventListener("click", () => $("lens-file").click());
$("lens-clear").addEventListener("click", () => steer(null));
$("lens-scenes-close").addEventListener("click", () => {
  lens.crop = null;
  lens.sceneSearch++;
  for (const box of $("lens-boxes").children) box.classList.remove("active");
  $("lens-scenes-panel").hidden = true;
});
