"""Browser side of tests/test_browser_ui.py: drives ComfyUI's frontend in headless Chromium.

Run by that test with ComfyUI's own Python (which has playwright but need not have pytest):

    python tests/test_browser_driver.py --port P --out DIR --instance SERVER_BASE_DIR \
        --inputs DIR [--late-file MISSING_MODEL] WF.json...

It loads each UI workflow through the frontend (app.loadGraphData), reads our loader nodes' status
buttons, opens the model-files dialog (command and node button; with --late-file it then creates
that file and presses Refresh), feeds the frame player (directly
and through a real run from the frontend) and writes report.json plus screenshots into DIR.
Contains no tests; the assertions are in test_browser_ui.py.
"""
from __future__ import annotations

import json
import os
import shutil
import sys
import urllib.request
from pathlib import Path

from resources import CHROMIUM

PACK_DIR_NAME = "comfyui-dispose"
MAIN_WORKFLOW = "dispose_mimicmotion"
MAIN_SHOT = f"workflow_{MAIN_WORKFLOW}.png"  # the README's name for it in docs/images

SETTINGS = {"Comfy.TutorialCompleted": True, "Comfy.Workflow.ShowMissingNodesWarning": True,
            "Comfy.Validation.Workflows": True, "Comfy.Canvas.NavigationMode": "legacy",
            # screenshots: no minimap, canvas menu or info overlay; text kept at the fit-to-view zoom
            "Comfy.Minimap.Visible": False, "Comfy.Graph.CanvasMenu": False, "Comfy.Graph.CanvasInfo": False,
            "LiteGraph.Canvas.MinFontSizeForLOD": 4,
            # frontend 1.27.10 throws on first load unless these two already hold these values
            "Comfy.Canvas.LeftMouseClickBehavior": "panning", "Comfy.Canvas.MouseWheelScroll": "zoom"}
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage", "--mute-audio"]

READY_JS = """() => !!(window.app && window.app.graph && window.LiteGraph &&
    Object.keys(window.LiteGraph.registered_node_types || {}).length > 0)"""

CAPTURE_JS = """() => window.app.registerExtension({
  name: "DisPose.test.capture",
  afterConfigureGraph(missing) {
    window.__missing = (missing || []).map(m => typeof m === "string" ? m : m.type); },
})"""

LOAD_JS = """async ([wf, name]) => {
  const wait = ms => new Promise(r => setTimeout(r, ms));
  window.__missing = [];
  await window.app.loadGraphData(wf, true, true, name, {showMissingNodesDialog: true});
  await new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)));
  const known = window.LiteGraph.registered_node_types;
  const g = window.app.graph;
  // media loaders grow when their preview has loaded: wait for that, then for sizes to hold still
  const video = n => { const el = (n.widgets || []).find(w => w.name === "video-preview")?.element;
                       return el?.tagName === "VIDEO" ? el : el?.querySelector?.("video"); };
  const loaded = n => n.type === "LoadImage" ? !!n.imgs?.[0]?.naturalWidth :
                      n.type === "LoadVideo" ? (video(n)?.readyState ?? 0) >= 1 : true;
  let settled = false, last = "";
  for (let i = 0, still = 0; i < 80 && !settled; i++) {
    await wait(150);
    const now = JSON.stringify(g.nodes.map(n => [n.pos, n.size]));
    still = g.nodes.every(loaded) && now === last ? still + 1 : 0;
    settled = still >= 3;
    last = now;
  }
  const saved = JSON.parse(JSON.stringify(g.serialize()));
  const prompt = (await window.app.graphToPrompt()).output;
  const th = window.LiteGraph.NODE_TITLE_HEIGHT;
  return {
    missing: [...new Set(window.__missing)],
    invalid: g.nodes.filter(n => !(n.type in known) || n.has_errors).map(n => `${n.id}:${n.type}`),
    nodes: g.nodes.map(n => ({id: n.id, type: n.type})),
    toasts: [...document.querySelectorAll(".p-toast-message")].map(e => e.innerText.trim()),
    // what Save and Run would write now that our widgets are on the nodes
    widgets_values: Object.fromEntries(saved.nodes.map(n => [n.id, n.widgets_values ?? null])),
    // name of the widget behind each saved value (null where a widget is not saved)
    widget_names: Object.fromEntries(g.nodes.map(n => [n.id,
        (n.widgets || []).map(w => w.serialize === false ? null : w.name)])),
    prompt_inputs: Object.fromEntries(Object.entries(prompt).map(([id, n]) => [id, Object.keys(n.inputs)])),
    // canvas boxes [x, y, w, h], a node's with its title bar (drawn above node.pos)
    settled,
    boxes: g.nodes.map(n => ({label: `${n.id}:${n.title}`, box: [n.pos[0], n.pos[1] - th, n.size[0], n.size[1] + th]})),
    groups: (g.groups ?? g._groups ?? []).map(gr => ({title: gr.title, box: Array.from(gr.bounding ?? gr._bounding)})),
  };
}"""

STATUS_JS = """async () => {
  await new Promise(r => setTimeout(r, 300));
  const out = {};
  for (const n of window.app.graph.nodes) {
    const w = (n.widgets || []).find(w => w.name === "dispose_model_files");
    if (w) out[n.type] = w.label;
  }
  return out;
}"""

FRAME_JS = """() => {  // zoom so that the whole graph (nodes and groups) fills the canvas; return its screen box
  const c = window.app.canvas, g = window.app.graph, pad = 24, th = window.LiteGraph.NODE_TITLE_HEIGHT;
  const boxes = g.nodes.map(n => [n.pos[0], n.pos[1] - th, n.size[0], n.size[1] + th])
      .concat((g.groups ?? g._groups ?? []).map(gr => Array.from(gr.bounding ?? gr._bounding)));
  const x0 = Math.min(...boxes.map(b => b[0])), y0 = Math.min(...boxes.map(b => b[1]));
  const x1 = Math.max(...boxes.map(b => b[0] + b[2])), y1 = Math.max(...boxes.map(b => b[1] + b[3]));
  const r = c.canvas.getBoundingClientRect();
  const scale = Math.min((r.width - 2 * pad) / (x1 - x0), (r.height - 2 * pad) / (y1 - y0), 1);
  c.ds.scale = scale;
  c.ds.offset = [pad / scale - x0, pad / scale - y0];
  c.setDirty(true, true);
  return {x: r.left, y: r.top, width: Math.min(r.width, (x1 - x0) * scale + 2 * pad),
          height: Math.min(r.height, (y1 - y0) * scale + 2 * pad)};
}"""

# hides the side bar, tabs and menus (the newer frontend draws them over the canvas); run again to undo
FOCUS_MODE_JS = "() => window.app.extensionManager.command.execute('Workspace.ToggleFocusMode')"

PANEL_JS = """async () => {
  const d = await new Promise(async (resolve) => {
    for (let i = 0; i < 100; i++) {
      const d = document.getElementById("dispose-model-files");
      if (d && d.open) return resolve(d);
      await new Promise(r => setTimeout(r, 100));
    }
    resolve(null);
  });
  if (!d) return null;
  return {
    title: d.querySelector("h3").innerText,
    summary: d.querySelector(".dispose-summary").innerText,
    text: d.innerText,
    rows: [...d.querySelectorAll("tbody tr")].map(r => ({name: r.dataset.name,
        found: r.classList.contains("dispose-found")})),
    links: [...d.querySelectorAll("a")].map(a => a.href),
  };
}"""

OPEN_FOCUSED_JS = """() => {
  const n = window.app.graph.nodes.find(n => n.type === "DisPoseCMPLoader") ||
            window.app.graph.add(window.LiteGraph.createNode("DisPoseCMPLoader"));
  const w = n.widgets.find(w => w.name === "dispose_model_files");
  w.callback(w, window.app.canvas, n);
}"""

PLAYER_JS = """async (images) => {
  const wait = ms => new Promise(r => setTimeout(r, ms));
  const add = (type) => { const n = window.LiteGraph.createNode(type); window.app.graph.add(n); return n; };
  const field = add("DisPoseGuidancePreview"), viewer = add("PreviewImage"), other = add("PreviewImage");
  field.connect(0, viewer, 0);  // the guidance preview's IMAGE output into a core Preview Image node
  viewer.onExecuted({images});
  other.onExecuted({images});   // not fed by a DisPose node: no player
  const player = (n) => (n.widgets || []).find(w => w.name === "dispose_frame_player");
  const el = player(viewer)?.element;
  if (!el) return {present: false};
  const seen = [];
  for (let i = 0; i < 10; i++) { await wait(130); seen.push(el.querySelector(".dispose-frame-label").textContent); }
  const img = el.querySelector("img");
  const res = {present: true, frames: Number(el.querySelector(".dispose-frame-slider").max) + 1,
               loaded: img.complete && img.naturalWidth > 0, labels_seen: seen,
               on_unrelated_viewer: !!player(other)};
  el.querySelector(".dispose-play").click();
  res.after_pause = el.querySelector(".dispose-frame-label").textContent;
  await wait(400);
  res.after_pause_later = el.querySelector(".dispose-frame-label").textContent;
  const s = el.querySelector(".dispose-frame-slider");
  s.value = "1"; s.dispatchEvent(new Event("input"));
  res.slider_label = el.querySelector(".dispose-frame-label").textContent;
  viewer.disconnectInput(0);    // re-run fed by something else: the player hides
  viewer.onExecuted({images});
  res.hidden_when_unfed = el.style.display === "none";
  window.app.canvas.centerOnNode?.(viewer);
  return res;
}"""


RUN_PROMPT = {  # API format: DWPose skeletons of the test inputs, drawn by DisPose Guidance Preview, into Preview Image
    "1": {"class_type": "LoadImage", "inputs": {"image": "reference.png"}},
    "2": {"class_type": "LoadVideo", "inputs": {"file": "driving.mp4"}},
    "3": {"class_type": "GetVideoComponents", "inputs": {"video": ["2", 0]}},
    "4": {"class_type": "DisPoseDWPoseLoader", "inputs": {"detector": "yolox_l.onnx",
                                                          "pose_model": "dw-ll_ucoco_384.onnx"}},
    "5": {"class_type": "DisPoseDWPoseExtractV2", "inputs": {"reference_image": ["1", 0], "resolution": 64,
          "align": True, "driving_frames": ["3", 0], "dwpose_model": ["4", 0]}},
    "7": {"class_type": "DisPoseGuidancePreview", "inputs": {"poses": ["5", 0], "long_side": 256}},
    "6": {"class_type": "PreviewImage", "inputs": {"images": ["7", 0]}},
}

REAL_RUN_JS = """async (prompt) => {
  const wait = ms => new Promise(r => setTimeout(r, ms));
  await window.app.loadApiJson(prompt, "player_run");
  await wait(300);
  const viewer = window.app.graph.nodes.find(n => n.type === "PreviewImage");
  let executed = null;
  window.app.api.addEventListener("executed", (e) => { if (String(e.detail.node) === String(viewer.id)) executed = e.detail; });
  let status = null;
  window.app.api.addEventListener("execution_success", () => { status = "success"; });
  window.app.api.addEventListener("execution_error", (e) => { status = "error: " + e.detail.exception_message; });
  await window.app.queuePrompt(0, 1);
  for (let i = 0; i < 600 && !status; i++) await wait(100);
  await wait(500);
  const el = (viewer.widgets || []).find(w => w.name === "dispose_frame_player")?.element;
  const img = el?.querySelector("img");
  for (let i = 0; i < 50 && img && !(img.complete && img.naturalWidth); i++) await wait(100);
  const c = window.app.canvas;
  c.centerOnNode?.(viewer);
  c.setDirty(true, true);
  await wait(300);
  const r = c.canvas.getBoundingClientRect(), s = c.ds.scale, [ox, oy] = c.ds.offset;
  const box = {x: r.left + (viewer.pos[0] + ox) * s - 10, y: r.top + (viewer.pos[1] - 30 + oy) * s - 10,
               width: viewer.size[0] * s + 20, height: (viewer.size[1] + 30) * s + 20};
  return {status, box, images: executed?.output?.images?.length ?? 0,
          frames: el ? Number(el.querySelector(".dispose-frame-slider").max) + 1 : 0,
          loaded: !!(img && img.complete && img.naturalWidth > 0)};
}"""


def _http_json(url: str, data=None):
    req = urllib.request.Request(url, data=None if data is None else json.dumps(data).encode(),
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=15) as r:
        body = r.read()
    return json.loads(body) if body else None


def _write_frames(temp_dir: Path) -> list[dict]:
    """Three small distinct PNG frames in the server's temp dir, as a node's ui output lists them."""
    from PIL import Image

    frames = []
    for i, color in enumerate([(220, 40, 40), (40, 200, 40), (40, 40, 220)]):
        name = f"dispose_player_test_{i}.png"
        Image.new("RGB", (64, 48), color).save(temp_dir / name)
        frames.append({"filename": name, "subfolder": "", "type": "temp"})
    return frames


def drive(port: int, out: Path, instance: Path, inputs: Path, workflows: list[str],
          late_file: Path | None = None) -> dict:
    """``inputs`` (reference.png, driving.mp4: the files the workflows name) go into the server's
    input/ before anything loads: frontend 1.49.6 marks a LoadImage/LoadVideo whose file is not on
    the server as an error (its missing-media check), and with them the layout is measured with
    the previews that a user sees."""
    from urllib.parse import urlparse

    from playwright.sync_api import sync_playwright

    base = f"http://127.0.0.1:{port}"
    _http_json(base + "/settings", SETTINGS)
    for f in inputs.iterdir():
        shutil.copy(f, instance / "input" / f.name)
    rep = {"server_extensions": _http_json(base + "/extensions"),
           "comfyui_version": _http_json(base + "/system_stats")["system"]["comfyui_version"],
           "models_route": _http_json(base + "/api/dispose/models"),
           "console_errors": [], "page_errors": [], "blocked": [], "workflows": []}
    frames = _write_frames(instance / "temp")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 3000, "height": 1200})

        def route(r):
            if urlparse(r.request.url).hostname in ("127.0.0.1", "localhost") or \
                    r.request.url.startswith(("data:", "blob:")):
                r.continue_()
            else:  # the frontend asks api.comfy.org for node badges; nothing may leave the machine
                rep["blocked"].append(r.request.url)
                r.abort()

        page.route("**/*", route)
        page.on("console", lambda m: rep["console_errors"].append(
            {"text": m.text, "url": (m.location or {}).get("url", "")}) if m.type == "error" else None)
        page.on("pageerror", lambda e: rep["page_errors"].append(str(e)))
        page.goto(base + "/", wait_until="domcontentloaded")
        page.wait_for_function(READY_JS, timeout=120_000)
        page.wait_for_timeout(500)
        rep["extensions"] = page.evaluate("() => window.app.extensions.map(e => e.name)")
        page.evaluate(CAPTURE_JS)
        for path in workflows:
            page.keyboard.press("Escape")
            page.evaluate("() => document.querySelectorAll('.p-toast-message').forEach(e => e.remove())")
            res = page.evaluate(LOAD_JS, [json.loads(Path(path).read_text()), Path(path).name])
            res["file"] = path
            rep["workflows"].append(res)
            if Path(path).stem == MAIN_WORKFLOW:
                rep["status_labels"] = page.evaluate(STATUS_JS)
                page.evaluate(FOCUS_MODE_JS)
                page.wait_for_timeout(300)
                clip = page.evaluate(FRAME_JS)
                page.wait_for_timeout(800)
                page.screenshot(path=str(out / MAIN_SHOT), clip=clip)
                page.evaluate(FOCUS_MODE_JS)
        # all models, through the command the menu entry runs
        page.evaluate("() => window.app.extensionManager.command.execute('DisPose.ShowModelFiles')")
        rep["panel"] = page.evaluate(PANEL_JS)
        page.locator("#dispose-model-files").screenshot(path=str(out / "model_files_panel.png"))
        page.click("#dispose-model-files .dispose-close")
        # one loader's models, through its status button
        page.evaluate(OPEN_FOCUSED_JS)
        rep["focused_panel"] = page.evaluate(PANEL_JS)
        if late_file:  # copy the missing file in while ComfyUI runs, then press Refresh
            late_file.write_bytes(b"placeholder")
            page.click("#dispose-model-files .dispose-refresh")
            rep["refreshed_panel"] = page.evaluate(PANEL_JS)
        page.click("#dispose-model-files .dispose-close")
        rep["player"] = page.evaluate(PLAYER_JS, frames)
        rep["real_run"] = page.evaluate(REAL_RUN_JS, RUN_PROMPT)
        page.screenshot(path=str(out / "frame_player.png"), clip=rep["real_run"]["box"])
        browser.close()
    rep["extension_errors"] = [c for c in rep["console_errors"]
                               if PACK_DIR_NAME in c["text"] + c["url"]]
    return rep


def _main(argv: list[str]) -> int:
    import argparse

    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--instance", type=Path, required=True, help="the server's --base-directory")
    ap.add_argument("--inputs", type=Path, required=True, help="files for the server's input/")
    ap.add_argument("--late-file", type=Path, help="model file to create while the dialog is open")
    ap.add_argument("workflows", nargs="*")
    a = ap.parse_args(argv)
    a.out.mkdir(parents=True, exist_ok=True)
    rep = drive(a.port, a.out, a.instance, a.inputs, a.workflows, a.late_file)
    (a.out / "report.json").write_text(json.dumps(rep, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
