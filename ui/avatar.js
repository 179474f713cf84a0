// Placeholder avatar: a glowing orb with eyes and a mouth, drawn in a 2D canvas from the pose
// the animator (avatar/animator.js) hands it every frame (setPose), with a caption from the
// core's avatar_state (set). The WGSL avatar replaces it.

import { poseOrders } from "./avatar/animator.js";

// A look per emotion: the orb's hue, the mouth's curve (smile), the words under the orb, and
// optionally eye size (eyes), resting eyelid closure (lid) and blushing cheeks (blush). The
// emotions themselves are not listed here: they are the core's (companion/emotion.py), read
// from the bridge schema (schemaEmotions). An emotion without a look here borrows neutral's.
export const LOOKS = {
  neutral: { hue: 258, smile: 0.15, label: "here with you" },
  happy: { hue: 330, smile: 0.7, label: "happy" },
  sad: { hue: 215, smile: -0.5, label: "a little sad" },
  angry: { hue: 2, smile: -0.6, label: "annoyed" },
  surprised: { hue: 190, smile: 0.0, label: "surprised", eyes: 1.25 },
  thinking: { hue: 170, smile: 0.0, label: "thinking" },
  embarrassed: { hue: 300, smile: 0.35, label: "embarrassed", blush: true },
  sleepy: { hue: 235, smile: 0.05, label: "sleepy", lid: 0.5 },
  relaxed: { hue: 150, smile: 0.3, label: "relaxed" },
  excited: { hue: 18, smile: 0.9, label: "excited" },
};

/**
 * The emotions the core may send: the enum of avatar_state.emotion in the bridge schema
 * (generated from companion/emotion.py). Just neutral when the schema has none.
 * @param {any} schema the loaded bridge-schema.json
 * @returns {string[]}
 */
export function schemaEmotions(schema) {
  const emotion = schema?.messages?.avatar_state?.schema?.properties?.emotion;
  return Array.isArray(emotion?.enum) && emotion.enum.length ? emotion.enum : ["neutral"];
}

/**
 * A look for every emotion of the schema (and neutral): its own, else neutral's under its name.
 * @param {string[]} emotions
 * @returns {Object<string, {hue: number, smile: number, label: string, eyes?: number, lid?: number, blush?: boolean}>}
 */
export function moodTable(emotions) {
  /** @type {Object<string, any>} */
  const table = { neutral: LOOKS.neutral };
  for (const e of emotions) table[e] = Object.hasOwn(LOOKS, e) ? LOOKS[e] : { ...LOOKS.neutral, label: e };
  return table;
}

export class OrbAvatar {
  /**
   * @param {HTMLCanvasElement} canvas
   * @param {HTMLElement} moodLabel
   * @param {any} schema the bridge schema, whose avatar_state enum lists the emotions
   */
  constructor(canvas, moodLabel, schema) {
    this.moods = moodTable(schemaEmotions(schema));
    this.canvas = canvas;
    this.ctx = canvas.getContext("2d");
    this.moodLabel = moodLabel;
    const orders = poseOrders(schema);
    this.emotions = orders.emotions; // the order of a pose's emotion weights
    this.visemes = orders.visemes; // ... and of its viseme weights
    this.state = { emotion: "neutral", activity: "idle" };
    /** @type {any} the animator's latest pose (companion/avatar/pose.py's fields) */
    this.pose = null;
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

  /** The animator's pose for this frame (drawn on the next animation frame). */
  setPose(pose) {
    this.pose = pose;
  }

  setConnected(on) {
    this.connected = on;
    this.updateLabel();
  }

  /** The look of the current emotion (neutral's for one the schema does not list). */
  mood() {
    return Object.hasOwn(this.moods, this.state.emotion) ? this.moods[this.state.emotion] : this.moods.neutral;
  }

  /**
   * The look of a blend of emotions (a pose's weights): hues mixed around the colour wheel,
   * the rest weighted.
   * @param {number[]} weights
   */
  blend(weights) {
    let x = 0, y = 0, smile = 0, eyes = 0, lid = 0, blush = 0, total = 0;
    weights.forEach((w, i) => {
      const e = this.emotions[i];
      const look = Object.hasOwn(this.moods, e) ? this.moods[e] : this.moods.neutral;
      x += w * Math.cos((look.hue * Math.PI) / 180);
      y += w * Math.sin((look.hue * Math.PI) / 180);
      smile += w * look.smile;
      eyes += w * (look.eyes || 1);
      lid += w * (look.lid || 0);
      blush += w * (look.blush ? 1 : 0);
      total += w;
    });
    if (total <= 0) return { hue: this.moods.neutral.hue, smile: this.moods.neutral.smile, eyes: 1, lid: 0, blush: 0 };
    const hue = (Math.atan2(y, x) * 180) / Math.PI;
    return { hue, smile: smile / total, eyes: eyes / total, lid: lid / total, blush: blush / total };
  }

  updateLabel() {
    const mood = this.mood();
    const doing = { listening: "listening…", thinking: "thinking…", speaking: "speaking…", resting: "resting" };
    this.moodLabel.textContent = !this.connected ? "waking up…" : doing[this.state.activity] || mood.label;
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
    const pose = this.pose;
    if (!pose) return;
    const look = this.blend(pose.emotion);
    // mouth: how open (aa widest .. closed shut) and how wide (ee spread, ou/oh rounded)
    const v = (/** @type {string} */ name) => pose.viseme[this.visemes.indexOf(name)] || 0;
    const [closedW, aa, ee, ih, oh, ou] = ["closed", "aa", "ee", "ih", "oh", "ou"].map(v);
    this.mouth = pose.talk * (1.0 * aa + 0.45 * ee + 0.35 * ih + 0.8 * oh + 0.45 * ou);
    this.smile = look.smile;
    const lid = Math.max(pose.blink, look.lid);

    const s = Math.min(w, h);
    const cx = w / 2 + pose.sway * s * 0.012;
    const cy = h / 2 - (pose.breath - 0.5) * s * 0.012;
    const r = s * (0.3 + (pose.breath - 0.5) * 0.016);
    const hue = look.hue;
    this.gaze = { x: pose.gaze_x, y: pose.gaze_y };
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
    const eyeH = r * 0.2 * (1 - 0.92 * lid) * look.eyes;
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
    if (this.smile > 0.3 || look.blush > 0.3) {
      ctx.fillStyle = `hsla(${hue + 10}, 90%, 75%, ${0.25 + 0.2 * Math.max(0, this.smile)})`;
      for (const side of [-1, 1]) {
        ctx.beginPath(); ctx.ellipse(cx + side * r * 0.55, cy + r * 0.12, r * 0.11, r * 0.06, 0, 0, Math.PI * 2); ctx.fill();
      }
    }

    // Mouth: a curve (smile) that opens while speaking
    const my = cy + r * 0.28, mw = r * 0.22 * (1 + 0.25 * ee - 0.3 * ou - 0.15 * oh) * (1 - 0.1 * closedW * pose.talk);
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
