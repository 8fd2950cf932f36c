// The page of `attnkit serve`: one form, the model's output, and the attention maps it returned.
// Plain JavaScript, no build step; everything it shows comes from /api/model and /api/inspect.
"use strict";

const $ = (id) => document.getElementById(id);
const el = (tag, props = {}, ...children) => {
  const node = Object.assign(document.createElement(tag), props);
  node.append(...children);
  return node;
};

const VERBS = { translation: "Translate", tagging: "Tag", classification: "Classify", language_model: "Continue",
                captioning: "Caption" };
const LABELS = { translation: "Sentence to translate", tagging: "Sentence to tag (words separated by spaces)",
                 classification: "Text to classify", language_model: "Prompt to continue" };
const EXAMPLES = { translation: "A dog runs on the beach.", tagging: "The cat sat on the mat .",
                   classification: "a gorgeous , witty film", language_model: "the company said" };
const OPTIONS = {  // the InspectRequest fields a task may take, as form controls
  beam: { label: "beam", type: "number", min: 1 },
  nbest: { label: "n-best", type: "number", min: 1 },
  method: { label: "method", choices: ["", "greedy", "beam", "sample"] },
  max_tokens: { label: "max tokens", type: "number", min: 1 },
  temperature: { label: "temperature", type: "number", min: 0.05, step: 0.05 },
  seed: { label: "seed", type: "number", min: 0 },
};

const COURSE = {  // each view's page in docs/course (served at /course/ from a checkout)
  translation: ["10-training-decoding.md", "training and decoding: greedy and beam search"],
  tagging: ["01-rnn-tasks.md", "RNN task types"], classification: ["01-rnn-tasks.md", "RNN task types"],
  language_model: ["04-language-models.md", "language models"], captioning: ["03-attention.md", "attention"],
  encoder: ["06-self-attention.md", "self-attention"], self: ["09-transformer.md", "the decoder and its mask"],
  cross: ["03-attention.md", "attention and its scores"], pooling: ["03-attention.md", "attention"],
};

let info = null;  // /api/model
let picture = null;  // captioning: the uploaded image, drawn under the attention
const view = { maps: [], map: 0, layer: 0, head: 0 };  // head === -1: the mean of the heads

async function start() {
  try {
    const response = await fetch("/api/model");
    info = await response.json();
  } catch (err) {
    showStatus(`cannot reach the server: ${err}`, true);
    return;
  }
  $("model-info").textContent = `${info.name}: a ${info.task.replace("_", " ")} model (${info.arch}), attnkit ${info.version}`;
  $("text-label").textContent = LABELS[info.task] || "Text";
  $("text").maxLength = info.limits.max_chars;
  $("text").placeholder = EXAMPLES[info.task] || "";
  if (info.input === "image") {  // a captioning model: upload an image instead of typing
    $("text").hidden = true;
    $("text").required = false;
    $("text-label").textContent = "Image to caption";
    $("text-label").htmlFor = "image";
    const upload = el("input", { id: "image", type: "file", accept: "image/*", required: true });
    $("text").after(upload);
  }
  $("submit").textContent = VERBS[info.task] || "Run";
  $("submit").disabled = false;
  for (const name of info.options) {
    const spec = OPTIONS[name];
    if (!spec) continue;
    let control;
    if (spec.choices) {
      control = el("select", { id: `opt-${name}`, name },
                   ...spec.choices.map((c) => el("option", { value: c, textContent: c || "config" })));
    } else {
      control = el("input", { id: `opt-${name}`, name, type: spec.type, min: spec.min, placeholder: "config" });
      if (spec.step) control.step = spec.step;
    }
    $("options").append(el("label", {}, spec.label, control));
  }
  $("input-form").addEventListener("submit", submit);
  $("text").addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey) { event.preventDefault(); $("input-form").requestSubmit(); }
  });
}

function showStatus(message, isError = false) {
  $("status").textContent = message;
  $("status").classList.toggle("error", isError);
}

function readAsDataURL(file) {
  return new Promise((resolve, reject) => {
    const reader = new FileReader();
    reader.onload = () => resolve(reader.result);
    reader.onerror = () => reject(reader.error);
    reader.readAsDataURL(file);
  });
}

async function submit(event) {
  event.preventDefault();
  let body, url = "/api/inspect";
  if (info.input === "image") {
    const file = $("image").files[0];
    if (!file) { showStatus("choose an image first", true); return; }
    body = { image: await readAsDataURL(file) };
    url = "/api/caption";
    picture = new Image();
    picture.src = body.image;
    await picture.decode().catch(() => {});
  } else {
    body = { text: $("text").value.trim() || $("text").placeholder };
    $("text").value = body.text;
  }
  for (const name of info.options) {
    const control = $(`opt-${name}`);
    if (!control || control.value === "") continue;
    body[name] = control.type === "number" ? Number(control.value) : control.value;
  }
  $("submit").disabled = true;
  showStatus("running…");
  try {
    const response = await fetch(url, {
      method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body),
    });
    const answer = await response.json();
    if (!response.ok) {
      showStatus(answer.error || `error ${response.status}`, true);
      return;
    }
    showStatus(`done in ${answer.seconds.toFixed(2)} s`);
    showResult(answer.result);
    showSearch(answer.result.search || []);
    showAttention(answer.attention);
  } catch (err) {
    showStatus(`request failed: ${err}`, true);
  } finally {
    $("submit").disabled = false;
  }
}

// -- the output of each task ------------------------------------------------------------------------
function showResult(result) {
  const box = $("result");
  box.replaceChildren();
  if (result.kind === "translation") {
    box.append(el("ol", { id: "nbest" }, ...result.nbest.map((h) =>
      el("li", {}, el("span", { className: "hyp", textContent: h.text }),
         el("span", { className: "score", textContent: h.score.toFixed(3) })))));
  } else if (result.kind === "tagging") {
    box.append(el("div", { className: "tagged", id: "tags" }, ...result.words.map((w, i) =>
      el("span", {}, w, el("b", { textContent: result.tags[i] })))));
  } else if (result.kind === "classification") {
    box.append(el("p", {}, "label: ", el("strong", { id: "label", textContent: result.label })));
    box.append(...result.probabilities.map((p) => el("div", { className: "bar" },
      el("span", { textContent: p.label }), el("div", { style: `width: ${(100 * p.probability).toFixed(1)}%` }),
      el("span", { className: "score", textContent: p.probability.toFixed(3) }))));
  } else if (result.kind === "language_model") {
    box.append(el("p", { id: "continuation" }, result.prompt, " ",
                  el("span", { className: "continuation", textContent: result.continuation })));
  } else if (result.kind === "captioning") {
    box.append(el("p", {}, el("strong", { id: "caption", textContent: result.caption }),
                  el("span", { className: "score", textContent: result.score.toFixed(3) })));
    if (result.note) box.append(el("p", { className: "muted", textContent: `image ${result.note}` }));
  }
  $("output-link").replaceChildren(courseLink(info.task));
  $("output").hidden = false;
}

function courseLink(key) {  // "the course: ..." for a view, when the server has the course pages
  if (!info.course || !COURSE[key]) return "";
  const [page, title] = COURSE[key];
  return el("a", { className: "course-link", href: `/course/${page}`, target: "_blank", textContent: `course: ${title}` });
}

// -- translation: the search, step by step ------------------------------------------------------------
function showSearch(steps) {
  $("search").hidden = steps.length === 0;
  $("search-link").replaceChildren(courseLink("translation"));
  const order = { kept: 0, finished: 1, pruned: 2 };
  $("steps").replaceChildren(...steps.map((step, t) => el("li", {},
    ...step.slice().sort((a, b) => order[a.fate] - order[b.fate] || b.log_prob - a.log_prob).map((c) => {
      const score = c.fate === "finished" ? `, score ${c.score.toFixed(3)}` : "";
      return el("span", { className: `cand ${c.fate}`, title: `${c.text}  (${c.fate}, log P ${c.log_prob.toFixed(3)}${score})` },
                c.piece.replace(/\u2581/g, "") || c.piece, el("small", { textContent: ` ${c.log_prob.toFixed(2)}` }));
    }))));
}

// -- attention: pick a map, a layer and a head, see a heatmap -----------------------------------------
function showAttention(maps) {
  view.maps = maps;
  view.map = Math.max(0, maps.length - 1);  // the last is the most telling: encoder-decoder, pooling
  view.layer = 0;
  view.head = 0;
  $("attention").hidden = false;
  $("no-attention").hidden = maps.length > 0;
  $("selectors").hidden = maps.length === 0;
  $("heatmap").replaceChildren();
  $("view-title").textContent = "";
  if (!maps.length) {
    $("no-attention").textContent = `This ${info.arch} model computes no attention.`;
    return;
  }
  render();
}

function buttons(container, labels, current, choose) {
  container.replaceChildren(...labels.map(([label, value]) => {
    const b = el("button", { type: "button", textContent: label });
    b.setAttribute("aria-pressed", String(value === current));
    b.addEventListener("click", () => { choose(value); render(); });
    return b;
  }));
}

function weightsOf(map) {
  const layer = map.weights[view.layer];
  if (view.head >= 0) return layer[view.head];
  return map.rows.map((_, i) => map.cols.map((_, j) => layer.reduce((s, h) => s + h[i][j], 0) / layer.length));
}

function render() {
  const map = view.maps[view.map];
  view.layer = Math.min(view.layer, map.layers - 1);
  view.head = Math.min(view.head, map.heads - 1);
  buttons($("maps"), view.maps.map((m, i) => [m.title, i]), view.map, (v) => { view.map = v; });
  buttons($("layers"), [...Array(map.layers).keys()].map((i) => [String(i + 1), i]), view.layer,
          (v) => { view.layer = v; });
  const heads = [...Array(map.heads).keys()].map((i) => [String(i + 1), i]);
  buttons($("heads"), map.heads > 1 ? [...heads, ["mean", -1]] : heads, view.head, (v) => { view.head = v; });
  const which = map.layers * map.heads > 1
    ? `, layer ${view.layer + 1}, ${view.head < 0 ? "mean of the heads" : `head ${view.head + 1}`}` : "";
  $("view-title").replaceChildren(`${map.title}${which}: rows ${map.row_axis}, columns ${map.col_axis} `,
                                  courseLink(map.name));
  const weights = weightsOf(map);
  $("heatmap").replaceChildren(map.grid && picture ? imageViews(map, weights) : heatmap(map, weights));
}

function imageViews(map, weights) {  // one picture per caption word: bright where it looked
  const [h, w] = map.grid;
  const size = 168;
  return el("div", { className: "image-views" }, ...map.rows.map((word, i) => {
    const canvas = el("canvas", { width: size, height: Math.round(size * h / w) });
    const ctx = canvas.getContext("2d");
    ctx.imageSmoothingEnabled = false;
    ctx.drawImage(picture, 0, 0, canvas.width, canvas.height);
    const top = Math.max(...weights[i]) || 1;
    const [cw, ch] = [canvas.width / w, canvas.height / h];
    weights[i].forEach((a, k) => {
      ctx.fillStyle = `rgba(0, 0, 0, ${(0.85 * (1 - a / top)).toFixed(3)})`;
      ctx.fillRect((k % w) * cw, Math.floor(k / w) * ch, cw + 0.5, ch + 0.5);
    });
    return el("figure", {}, canvas, el("figcaption", { textContent: word }));
  }));
}

function heatmap(map, weights) {
  const corner = el("th", { className: "axis", textContent: `${map.row_axis} \\ ${map.col_axis}` });
  const head = el("tr", {}, corner, ...map.cols.map((c) => el("th", { className: "col", scope: "col", textContent: c })));
  const rows = map.rows.map((r, i) => el("tr", {}, el("th", { className: "row", scope: "row", textContent: r }),
    ...map.cols.map((c, j) => {
      const w = weights[i][j];
      const cell = el("td", { title: `${r} → ${c}: ${w.toFixed(3)}` });
      cell.style.background = viridis(w);
      cell.dataset.weight = w;
      cell.addEventListener("mouseenter", () => {
        $("cell-info").textContent = `${map.row_axis} “${r}” → ${map.col_axis} “${c}”: ${w.toFixed(4)}`;
      });
      return cell;
    })));
  return el("table", { className: "heatmap" }, el("thead", {}, head), el("tbody", {}, ...rows));
}

const VIRIDIS = [[68, 1, 84], [59, 82, 139], [33, 145, 140], [94, 201, 98], [253, 231, 37]];

function viridis(w) {  // 0 -> dark purple, 1 -> yellow, as in `attnkit plot attention`
  const x = Math.min(1, Math.max(0, w)) * (VIRIDIS.length - 1);
  const i = Math.min(VIRIDIS.length - 2, Math.floor(x));
  const t = x - i;
  const [a, b] = [VIRIDIS[i], VIRIDIS[i + 1]];
  return `rgb(${a.map((v, k) => Math.round(v + t * (b[k] - v))).join(",")})`;
}

start();
