// Placeholder avatar: a glowing orb with eyes and a mouth, drawn in a 2D canvas from the
// core's avatar_state (emotion, viseme, gaze, blink, speaking). The WGSL avatar replaces it.

const MOODS = {
  neutral: { hue: 258, smile: 0.15, label: "here with you" },
  happy: { hue: 330, smile: 0.7, label: "happy" },
  excited: { hue: 18, smile: 0.9, label: "excited" },
  sad: { hue: 215, smile: -0.5, label: "a little sad" },
  angry: { hue: 2, smile: -0.6, label: "annoyed" },
  surprised: { hue: 190, smile: 0.0, label: "surprised" },
  thinking: { hue: 170, smile: 0.0, label: "thinking" },
  shy: { hue: 300, smile: 0.35, label: "shy" },
};

export class OrbAvatar {
  /**
   * @param {HTMLCanvasElement} canvas
   * @param {HTMLElement} moodLabel
   */
  constructor(canvas, moodLabel) {
    this.canvas = canvas;
    this.ctx = canvas.getContext("2d");
    this.moodLabel = moodLabel;
    this.state = { emotion: "neutral", viseme: "rest", gaze_x: 0, gaze_y: 0, blink: 0, speaking: false };
    this.hue = MOODS.neutral.hue; // eased towards the mood's hue
    this.smile = MOODS.neutral.smile;
    this.gaze = { x: 0, y: 0 };
    this.mouth = 0;
    this.nextBlink = performance.now() + 2500;
    this.blinkT = -1;
    this.reduced = matchMedia("(prefers-reduced-motion: reduce)").matches;
    this.connected = false;
    new ResizeObserver(() => this.resize()).observe(canvas);
    this.resize();
    requestAnimationFrame((t) => this.frame(t));
  }

  /** @param {Object} s an avatar_state message */
  set(s) {
    Object.assign(this.state, s);
    this.updateLabel();
  }

  setConnected(on) {
    this.connected = on;
    this.updateLabel();
  }

  updateLabel() {
    const mood = MOODS[this.state.emotion] || MOODS.neutral;
    this.moodLabel.textContent = !this.connected ? "waking up…" : this.state.speaking ? "speaking…" : mood.label;
  }

  resize() {
    const dpr = Math.min(window.devicePixelRatio || 1, 2);
    const { width, height } = this.canvas.getBoundingClientRect();
    this.canvas.width = Math.max(1, Math.round(width * dpr));
    this.canvas.height = Math.max(1, Math.round(height * dpr));
  }

  frame(t) {
    requestAnimationFrame((n) => this.frame(n));
    const { ctx, canvas } = this;
    const w = canvas.width, h = canvas.height;
    if (!w || !h) return;
    const mood = MOODS[this.state.emotion] || MOODS.neutral;
    const k = this.reduced ? 1 : 0.06;
    this.hue += angleDelta(this.hue, mood.hue) * k;
    this.smile += (mood.smile - this.smile) * k;
    this.gaze.x += (this.state.gaze_x - this.gaze.x) * 0.1;
    this.gaze.y += (this.state.gaze_y - this.gaze.y) * 0.1;
    const talk = this.state.speaking && !this.reduced
      ? 0.35 + 0.3 * Math.abs(Math.sin(t / 90)) * (0.6 + 0.4 * Math.sin(t / 37))
      : this.state.viseme !== "rest" ? 0.5 : 0;
    this.mouth += (talk - this.mouth) * 0.3;

    // Blink: the core's value, or an idle blink every few seconds.
    let lid = this.state.blink;
    if (!this.reduced) {
      if (t > this.nextBlink && this.blinkT < 0) this.blinkT = t;
      if (this.blinkT >= 0) {
        const p = (t - this.blinkT) / 160;
        lid = Math.max(lid, p < 1 ? Math.sin(p * Math.PI) : 0);
        if (p >= 1) { this.blinkT = -1; this.nextBlink = t + 2200 + Math.random() * 3500; }
      }
    }

    const s = Math.min(w, h);
    const cx = w / 2;
    const breathe = this.reduced ? 0 : Math.sin(t / 1400) * 0.012;
    const cy = h / 2 + (this.reduced ? 0 : Math.sin(t / 1700) * s * 0.01);
    const r = s * (0.3 + breathe + (this.state.speaking ? this.mouth * 0.01 : 0));
    const hue = this.hue;
    ctx.clearRect(0, 0, w, h);

    // Halo
    const halo = ctx.createRadialGradient(cx, cy, r * 0.6, cx, cy, r * 1.65);
    halo.addColorStop(0, `hsla(${hue}, 90%, 65%, 0.35)`);
    halo.addColorStop(1, `hsla(${hue}, 90%, 65%, 0)`);
    ctx.fillStyle = halo;
    ctx.beginPath(); ctx.arc(cx, cy, r * 1.65, 0, Math.PI * 2); ctx.fill();

    // Body
    const body = ctx.createRadialGradient(cx - r * 0.35, cy - r * 0.45, r * 0.1, cx, cy, r);
    body.addColorStop(0, `hsl(${hue + 25}, 95%, 82%)`);
    body.addColorStop(0.55, `hsl(${hue}, 80%, 62%)`);
    body.addColorStop(1, `hsl(${hue - 25}, 70%, 40%)`);
    ctx.fillStyle = body;
    ctx.beginPath(); ctx.arc(cx, cy, r, 0, Math.PI * 2); ctx.fill();

    // Gloss
    const gloss = ctx.createRadialGradient(cx - r * 0.4, cy - r * 0.5, 0, cx - r * 0.4, cy - r * 0.5, r * 0.55);
    gloss.addColorStop(0, "rgba(255,255,255,0.55)");
    gloss.addColorStop(1, "rgba(255,255,255,0)");
    ctx.fillStyle = gloss;
    ctx.beginPath(); ctx.arc(cx, cy, r, 0, Math.PI * 2); ctx.fill();

    // Eyes
    const ex = r * 0.34, ey = cy - r * 0.12 - this.gaze.y * r * 0.06;
    const gx = this.gaze.x * r * 0.08;
    const eyeH = r * 0.2 * (1 - 0.92 * lid) * (this.state.emotion === "surprised" ? 1.25 : 1);
    ctx.fillStyle = `hsla(${hue - 40}, 60%, 14%, 0.9)`;
    for (const side of [-1, 1]) {
      ctx.beginPath();
      ctx.ellipse(cx + side * ex + gx, ey, r * 0.085, Math.max(eyeH / 2, r * 0.012), 0, 0, Math.PI * 2);
      ctx.fill();
      if (lid < 0.5) {
        ctx.fillStyle = "rgba(255,255,255,0.85)";
        ctx.beginPath();
        ctx.arc(cx + side * ex + gx + r * 0.03, ey - eyeH * 0.2, r * 0.025, 0, Math.PI * 2);
        ctx.fill();
        ctx.fillStyle = `hsla(${hue - 40}, 60%, 14%, 0.9)`;
      }
    }

    // Cheeks
    if (this.smile > 0.3 || this.state.emotion === "shy") {
      ctx.fillStyle = `hsla(${hue + 10}, 90%, 75%, ${0.25 + 0.2 * Math.max(0, this.smile)})`;
      for (const side of [-1, 1]) {
        ctx.beginPath(); ctx.ellipse(cx + side * r * 0.55, cy + r * 0.12, r * 0.11, r * 0.06, 0, 0, Math.PI * 2); ctx.fill();
      }
    }

    // Mouth: a curve (smile) that opens while speaking
    const my = cy + r * 0.28, mw = r * 0.22;
    const open = this.mouth * r * 0.16;
    ctx.strokeStyle = `hsla(${hue - 40}, 60%, 14%, 0.9)`;
    ctx.fillStyle = `hsla(${hue - 40}, 60%, 14%, 0.85)`;
    ctx.lineWidth = Math.max(1.5, r * 0.035);
    ctx.lineCap = "round";
    ctx.beginPath();
    ctx.moveTo(cx - mw, my);
    ctx.quadraticCurveTo(cx, my + this.smile * r * 0.22 + open, cx + mw, my);
    if (open > 0.5) {
      ctx.quadraticCurveTo(cx, my + this.smile * r * 0.08 - open * 0.2, cx - mw, my);
      ctx.fill();
    }
    ctx.stroke();
  }
}

function angleDelta(from, to) {
  return ((to - from + 540) % 360) - 180;
}
