// Plays the preview frames of DisPose stages (skeletons, motion fields, dense flow,
// correspondences) as an animation: when a DisPose node's executed output carries several
// images, or a Preview Image / Save Image node shows several images coming from a DisPose
// node's preview output, a player widget appears with play/pause, a frame slider and the frame
// number. Only documented hooks are used: beforeRegisterNodeDef (chaining onExecuted/onRemoved),
// addDOMWidget, getInputNode, api.apiURL.
import { app } from "../../../scripts/app.js";
import { api } from "../../../scripts/api.js";

const EXTENSION = "DisPose.FramePlayer";
const WIDGET = "dispose_frame_player";
const FPS = 8;
const MIN_WIDTH = 320;
const GRID_ROOM = 220; // the frontend's thumbnail grid (its image preview widget) asks for at least 220 px
const VIEWERS = new Set(["PreviewImage", "SaveImage"]); // core nodes that display IMAGE batches
const isOurs = (type) => (type ?? "").startsWith("DisPose");

function frameURL(image) {
  const q = new URLSearchParams({ filename: image.filename, type: image.type ?? "temp",
    subfolder: image.subfolder ?? "" });
  return api.apiURL(`/view?${q}`);
}

// One player per node: owns its <img>, controls and timer; nothing global.
class FramePlayer {
  constructor(node) {
    this.frames = [];
    this.index = 0;
    this.timer = null;
    this.root = document.createElement("div");
    this.root.className = "dispose-frame-player";
    Object.assign(this.root.style, { display: "flex", flexDirection: "column", gap: "4px", width: "100%" });
    this.img = document.createElement("img");
    Object.assign(this.img.style, { width: "100%", height: "180px", objectFit: "contain", background: "#000" });
    const bar = document.createElement("div");
    Object.assign(bar.style, { display: "flex", gap: "6px", alignItems: "center", fontSize: "12px" });
    this.button = document.createElement("button");
    this.button.className = "dispose-play";
    Object.assign(this.button.style, { minWidth: "64px", whiteSpace: "nowrap" });
    this.button.addEventListener("click", () => (this.timer ? this.pause() : this.play()));
    this.slider = document.createElement("input");
    Object.assign(this.slider, { type: "range", min: "0", value: "0", step: "1" });
    this.slider.className = "dispose-frame-slider";
    this.slider.style.flex = "1";
    this.slider.addEventListener("input", () => { this.pause(); this.show(Number(this.slider.value)); });
    this.label = document.createElement("span");
    this.label.className = "dispose-frame-label";
    Object.assign(this.label.style, { whiteSpace: "nowrap", minWidth: "44px", textAlign: "right" });
    bar.append(this.button, this.slider, this.label);
    this.root.append(this.img, bar);
    this.widget = node.addDOMWidget(WIDGET, "dispose_frame_player", this.root, {
      serialize: false, hideOnZoom: true, getMinHeight: () => (this.frames.length > 1 ? 220 : 0),
    });
    this.widget.serialize = false; // not part of widgets_values
  }

  setFrames(images) {
    this.frames = images.map(frameURL);
    for (const url of this.frames) new Image().src = url; // preload for smooth playback
    this.root.style.display = this.frames.length > 1 ? "flex" : "none";
    this.slider.max = String(Math.max(this.frames.length - 1, 0));
    this.show(0);
    if (this.frames.length > 1) this.play(); else this.pause();
  }

  show(i) {
    if (!this.frames.length) return;
    this.index = ((i % this.frames.length) + this.frames.length) % this.frames.length;
    this.img.src = this.frames[this.index];
    this.slider.value = String(this.index);
    this.label.textContent = `${this.index + 1}/${this.frames.length}`;
  }

  play() {
    this.pause();
    this.timer = setInterval(() => this.show(this.index + 1), 1000 / FPS);
    this.button.textContent = "|| pause";
  }

  pause() {
    clearInterval(this.timer);
    this.timer = null;
    this.button.textContent = "\u25B6 play";
  }
}

const players = new WeakMap();

app.registerExtension({
  name: EXTENSION,
  async beforeRegisterNodeDef(nodeType, nodeData) {
    const viewer = VIEWERS.has(nodeData?.name);
    if (!viewer && !isOurs(nodeData?.name)) return;
    const onExecuted = nodeType.prototype.onExecuted;
    nodeType.prototype.onExecuted = function (message) {
      const result = onExecuted?.apply(this, arguments);
      // a Preview/Save Image node plays only frames that come from a DisPose node
      const fed = !viewer || isOurs(this.getInputNode?.(0)?.type);
      const images = fed ? message?.images ?? [] : [];
      let player = players.get(this);
      if (images.length > 1 && !player) {
        player = new FramePlayer(this);
        players.set(this, player);
      }
      player?.setFrames(images); // fewer than two frames hide it
      if (images.length > 1) { // room for the controls, and below them for the frontend's image grid
        const [, height] = this.computeSize?.() ?? [0, 0];
        this.setSize?.([Math.max(this.size[0], MIN_WIDTH), Math.max(this.size[1], height + GRID_ROOM)]);
      }
      return result;
    };
    const onRemoved = nodeType.prototype.onRemoved;
    nodeType.prototype.onRemoved = function () {
      players.get(this)?.pause();
      return onRemoved?.apply(this, arguments);
    };
  },
});
