// DisPose model-files panel: a status button on every DisPose loader node ("all found" /
// "N missing") and a dialog listing, per model file, the exact name expected, the folder, every
// directory searched and the download page. Data: GET /dispose/models (nodes/model_status.py).
// Only the documented extension API is used: registerExtension, nodeCreated, addWidget, commands,
// menuCommands, api.fetchApi.
import { app } from "../../../scripts/app.js";
import { api } from "../../../scripts/api.js";

const EXTENSION = "DisPose.ModelFiles";
const COMMAND = "DisPose.ShowModelFiles";
const WIDGET = "dispose_model_files";
const loaders = new Map(); // node id -> display name, filled from the node definitions

const MAX_AGE_MS = 5000; // nodes created together (a workflow load) share one request
let pending = null;
let fetchedAt = 0;
const statusNodes = new Set();

function fetchReport(force = false) {
  if (!pending || force || Date.now() - fetchedAt > MAX_AGE_MS) {
    fetchedAt = Date.now();
    pending = api.fetchApi("/dispose/models", { cache: "no-store" })
      .then((r) => (r.ok ? r.json() : Promise.reject(new Error(`HTTP ${r.status}`))))
      .catch((err) => ({ error: String(err?.message ?? err), models: [] }));
  }
  return pending;
}

function modelsFor(report, displayName) {
  const own = report.models.filter((m) => m.used_by === displayName);
  return own.length ? own : report.models;
}

function statusLabel(report, displayName) {
  if (report.error) return "Model files: check failed (open panel)";
  const models = modelsFor(report, displayName);
  const missing = models.filter((m) => !m.found).length;
  return missing === 0
    ? `\u2714 Model files: all ${models.length} found`
    : `\u26A0 Model files: ${missing} of ${models.length} missing \u2013 show`;
}

async function refreshAll(force = false) {
  const report = await fetchReport(force);
  for (const node of statusNodes) {
    const widget = node.widgets?.find((w) => w.name === WIDGET);
    if (widget) widget.label = statusLabel(report, loaders.get(node.comfyClass ?? node.type));
  }
  app.graph?.setDirtyCanvas(true, false);
  return report;
}

function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "style") Object.assign(e.style, v);
    else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v);
  }
  for (const c of children) e.append(c);
  return e;
}

function modelRow(m) {
  const where = m.found
    ? el("div", {}, "found: ", el("code", {}, m.path))
    : el("div", {}, "put it into ", el("code", {}, `models/${m.folder}/`),
        " (searched: ", el("code", {}, m.searched.length ? m.searched.join(", ") : "no folder registered"), ")");
  const lacks = m.missing_parts?.length
    ? el("div", { style: { color: "#e0a030" } }, `folder exists but lacks: ${m.missing_parts.join(", ")}`)
    : "";
  const alternative = !m.found && m.alternative ? el("div", { style: { opacity: "0.8" } }, m.alternative) : "";
  const source = m.source.split(" ")[0];
  return el("tr", { class: m.found ? "dispose-found" : "dispose-missing", "data-name": m.name },
    el("td", { style: { color: m.found ? "#5c5" : "#e55", fontWeight: "bold" } }, m.found ? "found" : "MISSING"),
    el("td", {}, el("code", {}, m.name), m.is_dir ? " (folder)" : "", lacks),
    el("td", {}, m.folder),
    el("td", {}, m.size),
    el("td", {}, m.used_by),
    el("td", {}, where, alternative, el("a", { href: source, target: "_blank", rel: "noopener noreferrer" }, m.source)));
}

// The dialog is a native <dialog>; `focus` restricts it to the models one loader node needs.
async function showDialog(focus = null) {
  document.getElementById("dispose-model-files")?.remove();
  const report = await refreshAll(true);
  const models = focus ? modelsFor(report, focus) : report.models;
  const missing = models.filter((m) => !m.found);
  const summary = report.error
    ? `Could not ask the server for the model files: ${report.error}`
    : missing.length
      ? `${missing.length} of ${models.length} model files missing: ${missing.map((m) => m.name).join(", ")}`
      : `All ${models.length} model files found.`;
  const dialog = el("dialog", {
    id: "dispose-model-files",
    style: { maxWidth: "90vw", maxHeight: "85vh", overflow: "auto", padding: "16px",
      background: "var(--comfy-menu-bg, #222)", color: "var(--fg-color, #ddd)",
      border: "1px solid var(--border-color, #555)", borderRadius: "8px", fontSize: "13px" },
  },
  el("h3", { style: { marginTop: "0" } }, focus ? `DisPose model files \u2013 ${focus}` : "DisPose model files"),
  el("p", { class: "dispose-summary" }, summary),
  el("table", { style: { borderCollapse: "collapse", width: "100%" } },
    el("thead", {}, el("tr", {}, ...["", "exact name", "folder", "size", "needed by", "where / download"]
      .map((h) => el("th", { style: { textAlign: "left", paddingRight: "12px" } }, h)))),
    el("tbody", {}, ...models.map(modelRow))),
  el("p", {}, "Copy the files, then press Refresh (no restart needed). Extra folders from ",
    el("code", {}, "extra_model_paths.yaml"), " are searched too."),
  el("div", { style: { display: "flex", gap: "8px", justifyContent: "flex-end" } },
    el("button", { class: "dispose-refresh", onclick: () => showDialog(focus) }, "Refresh"),
    el("button", { class: "dispose-close", autofocus: "", onclick: () => dialog.close() }, "Close")));
  for (const td of dialog.querySelectorAll("td, th")) td.style.padding = "4px 12px 4px 0";
  dialog.addEventListener("close", () => dialog.remove());
  document.body.append(dialog);
  dialog.showModal();
  return dialog;
}

app.registerExtension({
  name: EXTENSION,
  commands: [{ id: COMMAND, label: "DisPose: show model files", menubarLabel: "Model files", icon: "pi pi-box",
    function: () => showDialog() }],
  menuCommands: [{ path: ["Extensions", "DisPose"], commands: [COMMAND] }],

  async beforeRegisterNodeDef(nodeType, nodeData) {
    if (!/^DisPose.*Loader$/.test(nodeData?.name ?? "")) return;
    loaders.set(nodeData.name, nodeData.display_name ?? nodeData.name);
    const onRemoved = nodeType.prototype.onRemoved;
    nodeType.prototype.onRemoved = function () {
      statusNodes.delete(this);
      return onRemoved?.apply(this, arguments);
    };
  },

  nodeCreated(node) {
    const displayName = loaders.get(node.comfyClass ?? node.type);
    if (!displayName) return;
    const widget = node.addWidget("button", WIDGET, null, () => showDialog(displayName), { serialize: false });
    widget.serialize = false; // not part of widgets_values: saved workflows stay positional
    widget.label = "Model files: checking\u2026";
    statusNodes.add(node);
    refreshAll();
  },
});
