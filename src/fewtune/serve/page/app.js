// The page: try a served classifier, label a few examples, train a new model in the background and
// use it. Plain JavaScript against the same JSON API scripts use; nothing is loaded from elsewhere.
"use strict";

const $ = (id) => document.getElementById(id);
const examples = [];  // {text, label}, in the order they were added
let models = {};

async function api(path, body) {
  const options = body === undefined ? {} :
    {method: "POST", headers: {"content-type": "application/json"}, body: JSON.stringify(body)};
  const response = await fetch(path, options);
  const data = await response.json().catch(() => ({error: response.statusText}));
  if (!response.ok) throw new Error(data.error || response.statusText);
  return data;
}

function showError(error) {
  $("error").textContent = error ? String(error.message || error) : "";
}

async function loadModels(select) {
  const info = await api("/info");
  models = Object.fromEntries(Object.entries(info.models).filter(([, m]) => m.kind === "classifier"));
  const menu = $("model");
  const keep = select || menu.value;
  menu.replaceChildren(...Object.keys(models).map((name) => new Option(name, name)));
  if (keep && models[keep]) menu.value = keep;
  describeModel();
  const methods = info.teach ? info.teach.methods : [];
  $("method").replaceChildren(...methods.map((m) => new Option(m, m)));
  $("teach").hidden = !info.teach;
}

function describeModel() {
  const m = models[$("model").value];
  if (!m) { $("model-facts").textContent = "No classifier yet: teach one below."; return; }
  const facts = [`${m.method} on ${m.backbone}`, `${m.runtime}`, `classes: ${(m.classes || []).join(", ")}`];
  if (m.trained && m.trained.n_examples) facts.push(`trained on ${m.trained.n_examples} examples`);
  if (m.evaluation && m.evaluation.accuracy !== undefined) facts.push(`held-out accuracy ${m.evaluation.accuracy}`);
  $("model-facts").textContent = facts.join(" · ");
}

async function classify() {
  showError();
  const text = $("text").value;
  if (!text.trim()) { showError("type a text first"); return; }
  const result = await api("/predict", {model: $("model").value, texts: [text]});
  const row = result.predictions[0];
  const out = $("result");
  const label = document.createElement("div");
  label.className = "label";
  label.textContent = `${row.label ?? row.labels.join(", ")}` +
    (row.probability !== undefined ? ` (${(100 * row.probability).toFixed(1)}%)` : "");
  const bars = Object.entries(row.probabilities).sort((a, b) => b[1] - a[1]).map(([cls, p], i) => {
    const bar = document.createElement("div");
    bar.className = i === 0 ? "bar top" : "bar";
    const name = document.createElement("span");
    name.textContent = cls;
    const track = document.createElement("div");
    track.className = "track";
    const fill = document.createElement("div");
    fill.className = "fill";
    fill.style.width = `${(100 * p).toFixed(1)}%`;
    track.append(fill);
    const value = document.createElement("span");
    value.textContent = `${(100 * p).toFixed(1)}%`;
    bar.append(name, track, value);
    return bar;
  });
  const notes = [];
  if (row.warning) {  // e.g. a static student that knows none of the text's tokens: the class prior, not a reading
    const note = document.createElement("p");
    note.className = "facts";
    note.textContent = row.warning;
    notes.push(note);
  }
  out.replaceChildren(label, ...notes, ...bars);
}

function renderExamples() {
  const rows = examples.map((ex, i) => {
    const tr = document.createElement("tr");
    const text = document.createElement("td");
    text.textContent = ex.text;
    const label = document.createElement("td");
    label.textContent = ex.label;
    const remove = document.createElement("button");
    remove.type = "button";
    remove.textContent = "×";
    remove.title = "remove";
    remove.addEventListener("click", () => { examples.splice(i, 1); renderExamples(); });
    const cell = document.createElement("td");
    cell.append(remove);
    tr.append(text, label, cell);
    return tr;
  });
  $("examples").tBodies[0].replaceChildren(...rows);
  const labels = [...new Set(examples.map((ex) => ex.label))];
  $("known-labels").replaceChildren(...labels.map((l) => new Option(l)));
  $("train").disabled = labels.length < 2;
}

function addExample() {
  const text = $("ex-text").value.trim();
  const label = $("ex-label").value.trim();
  if (!text || !label) { showError("an example needs a text and a label"); return; }
  showError();
  examples.push({text, label});
  $("ex-text").value = "";
  $("ex-text").focus();
  renderExamples();
}

async function train() {
  showError();
  $("train").disabled = true;
  const progress = $("train-progress");
  progress.hidden = false;
  progress.value = 0;
  try {
    let job = await api("/train", {
      texts: examples.map((ex) => ex.text), labels: examples.map((ex) => ex.label), method: $("method").value,
    });
    while (job.status === "queued" || job.status === "running") {
      $("train-status").textContent = `${job.stage}` + (job.total ? ` ${Math.round(job.done)}/${job.total}` : "");
      progress.value = job.fraction;
      await new Promise((resolve) => setTimeout(resolve, 300));
      job = await api(`/train/${job.job}`);
    }
    if (job.status === "failed") throw new Error(job.error);
    progress.value = 1;
    $("train-status").textContent = `${job.model} is ready: trained on ${job.n_examples} examples in ${job.seconds} s`;
    await loadModels(job.model);
  } catch (error) {
    $("train-status").textContent = "training failed";
    showError(error);
  } finally {
    $("train").disabled = new Set(examples.map((ex) => ex.label)).size < 2;
  }
}

document.addEventListener("DOMContentLoaded", () => {
  $("model").addEventListener("change", describeModel);
  $("predict").addEventListener("click", () => classify().catch(showError));
  $("text").addEventListener("keydown", (e) => {
    if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) classify().catch(showError);
  });
  $("add-example").addEventListener("click", addExample);
  $("ex-label").addEventListener("keydown", (e) => { if (e.key === "Enter") addExample(); });
  $("train").addEventListener("click", train);
  loadModels().then(() => document.body.dataset.ready = "1").catch(showError);
});
