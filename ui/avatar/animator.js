// The avatar's animator: turns the core's avatar changes (avatar_state, avatar_visemes; the
// core never sends frames) into a Pose every frame and hands it to the view's setPose(pose).
// The Pose is companion/avatar/pose.py's: the per-frame values the renderer draws, emotion and
// viseme weights in the orders of the bridge schema's enums. What is the page's own lives here:
// easing between emotions, the blink scheduler, saccades and the cursor, breathing and sway,
// and playing the mouth's shapes on the reply's clock while its text appears.
//
// Every method takes the time (ms, performance.now()'s clock) and the random source is
// injectable, so tests drive it frame by frame.

/**
 * @typedef {Object} Pose
 * @property {number} time seconds since the animator started
 * @property {number} blink 0 open .. 1 closed
 * @property {number} gaze_x -1 (avatar's right) .. 1 (its left, the viewer's right)
 * @property {number} gaze_y -1 down .. 1 up
 * @property {number} head_yaw radians
 * @property {number} head_pitch radians
 * @property {number} head_roll radians
 * @property {number} breath 0..1
 * @property {number} sway -1..1
 * @property {number} blush 0..1
 * @property {number} talk 0..1
 * @property {number} activity index into the activities
 * @property {number[]} emotion weight per emotion, summing to <= 1
 * @property {number[]} viseme weight per viseme, summing to <= 1
 */

// Blinks: a natural interval of 2-6 s, sometimes two in a row; a blink closes fast, opens slower.
export const BLINK = { minMs: 2000, maxMs: 6000, doubleChance: 0.15, doubleGapMs: 230, closeMs: 70, openMs: 110 };
// Saccades: a new fixation every 0.6-2.8 s while idle; eyes get there in ~30 ms.
export const SACCADE = { minMs: 600, maxMs: 2800, tauMs: 22, headTauMs: 420 };
const BREATH_PERIOD_S = { idle: 4.2, listening: 4.0, thinking: 4.6, speaking: 3.3, resting: 6.0 };
const READ_MS = 1400; // thinking: eyes read the message this long, then look up and away
const POINTER_FRESH_MS = 8000; // a cursor that has not moved for this long stops drawing the eyes
const VISEME_BLEND_MS = 45; // coarticulation: each shape blends in from the one before

/**
 * The orders the Pose uses, from the bridge schema (generated from companion/avatar/pose.py and
 * companion/emotion.py), so the page never re-types them.
 * @param {any} schema
 * @returns {{emotions: string[], activities: string[], visemes: string[]}}
 */
export function poseOrders(schema) {
  const state = schema?.messages?.avatar_state?.schema?.properties || {};
  const spans = schema?.messages?.avatar_visemes?.schema?.$defs?.VisemeSpan?.properties || {};
  return {
    emotions: state.emotion?.enum || ["neutral"],
    activities: state.activity?.enum || ["idle"],
    visemes: spans.viseme?.enum || ["closed"],
  };
}

const clamp = (x, lo, hi) => Math.min(hi, Math.max(lo, x));
const smooth = (x) => { const t = clamp(x, 0, 1); return t * t * (3 - 2 * t); };
const approach = (from, to, dtMs, tauMs) => to + (from - to) * Math.exp(-dtMs / Math.max(1, tauMs));

export class Animator {
  /**
   * @param {{setPose: (pose: Pose) => void} | null} view the renderer (or the orb) drawing each pose
   * @param {any} schema the bridge schema
   * @param {{random?: () => number, reducedMotion?: boolean, now?: number}} [options]
   */
  constructor(view, schema, options = {}) {
    this.view = view;
    this.orders = poseOrders(schema);
    this.random = options.random || Math.random;
    this.reduced = !!options.reducedMotion;
    const now = options.now ?? performance.now();
    this.t0 = now;
    this.last = now;
    /** the core's latest avatar_state */
    this.target = { emotion: "neutral", intensity: 0, transition_ms: 0, activity: "idle", gaze: "wander" };
    this.activitySince = now;
    const neutral = this.emotionVector("neutral", 0);
    this.emo = { from: neutral, to: neutral, start: now, ms: 0 };
    this.nextBlink = now + this.blinkInterval();
    /** @type {number[]} start times of the blinks under way or queued */
    this.blinks = [];
    this.gaze = { x: 0, y: 0, tx: 0, ty: 0, next: now };
    this.head = { yaw: 0, pitch: 0 };
    /** @type {{x: number, y: number, at: number} | null} */
    this.cursor = null;
    this.breathPhase = 0;
    /** @type {Map<number, number>} reply clock zero per turn */
    this.replyZero = new Map();
    /** @type {{start: number, end: number, viseme: string}[]} the mouth's schedule, page time */
    this.mouth = [];
    this.talk = 0;
    /** @type {Pose | null} */
    this.pose = null;
  }

  // --- what the core says -------------------------------------------------------------------

  /** An avatar_state message: ease to its emotion, switch activity and gaze. */
  state(m, now = performance.now()) {
    const prev = this.target;
    this.target = { ...prev, ...m };
    if (m.emotion !== prev.emotion || m.intensity !== prev.intensity) {
      this.emo = {
        from: this.emotionAt(now),
        to: this.emotionVector(this.target.emotion, this.target.intensity),
        start: now,
        ms: this.reduced ? 0 : Math.max(0, this.target.transition_ms || 0),
      };
    }
    if (m.activity !== prev.activity) this.activitySince = now;
    if (m.gaze !== prev.gaze || m.activity !== prev.activity) this.gaze.next = now; // look anew
  }

  /** reply_started: this turn's reply clock starts now (avatar_visemes count from here). */
  replyStarted(turn, now = performance.now()) {
    this.replyZero.set(turn, now);
    for (const t of this.replyZero.keys()) if (t < turn - 4) this.replyZero.delete(t);
  }

  /** An avatar_visemes message: replace the mouth's schedule from its start on. */
  visemes(m, now = performance.now()) {
    if (!this.replyZero.has(m.turn)) this.replyZero.set(m.turn, now - m.start_ms); // joined mid-reply
    let at = this.replyZero.get(m.turn) + m.start_ms;
    this.mouth = this.mouth.filter((s) => s.start < at);
    const cut = this.mouth[this.mouth.length - 1];
    if (cut && cut.end > at) cut.end = at;
    for (const { viseme, ms } of m.visemes) {
      this.mouth.push({ start: at, end: at + ms, viseme });
      at += ms;
    }
  }

  /**
   * Where the cursor is, relative to the avatar: x -1 (viewer's left) .. 1, y -1 (below) .. 1;
   * null when the window lost it.
   */
  pointer(x, y, now = performance.now()) {
    this.cursor = x === null || x === undefined ? null : { x: clamp(x, -1, 1), y: clamp(y, -1, 1), at: now };
  }

  // --- a frame ------------------------------------------------------------------------------

  /** The pose at `now`; also handed to the view. @returns {Pose} */
  frame(now = performance.now()) {
    const dt = clamp(now - this.last, 0, 250);
    this.last = now;
    const activity = this.target.activity;
    const blink = this.blinkAt(now);
    this.moveEyes(now, dt);
    const period = BREATH_PERIOD_S[activity] || 4.2;
    this.breathPhase = (this.breathPhase + dt / 1000 / period) % 1;
    const t = (now - this.t0) / 1000;
    const motion = this.reduced ? 0 : 1;
    const sway = motion * clamp(0.7 * Math.sin((2 * Math.PI * t) / 7.3) + 0.3 * Math.sin((2 * Math.PI * t) / 3.1 + 1.3), -1, 1);
    const { viseme, playing } = this.mouthAt(now);
    this.talk = approach(this.talk, playing ? 1 : 0, dt, 70);
    const pose = {
      time: t,
      blink,
      gaze_x: clamp(this.gaze.x, -1, 1),
      gaze_y: clamp(this.gaze.y, -1, 1),
      head_yaw: clamp(this.head.yaw, -0.3, 0.3),
      head_pitch: clamp(this.head.pitch, -0.3, 0.3),
      head_roll: motion * 0.035 * sway,
      breath: this.reduced ? 0.5 : 0.5 - 0.5 * Math.cos(2 * Math.PI * this.breathPhase),
      sway: sway * (activity === "resting" ? 0.4 : 1),
      blush: 0,
      talk: clamp(this.talk, 0, 1),
      activity: Math.max(0, this.orders.activities.indexOf(activity)),
      emotion: this.emotionAt(now),
      viseme,
    };
    this.pose = pose;
    if (this.view) this.view.setPose(pose);
    return pose;
  }

  /** Call view.setPose on every animation frame. */
  start() {
    const tick = (/** @type {number} */ t) => { this.frame(t); requestAnimationFrame(tick); };
    requestAnimationFrame(tick);
  }

  // --- emotion ------------------------------------------------------------------------------

  /** One emotion at an intensity, the rest neutral: a weight vector summing to 1. */
  emotionVector(emotion, intensity) {
    const v = this.orders.emotions.map(() => 0);
    const i = this.orders.emotions.indexOf(emotion);
    const k = i > 0 ? clamp(intensity, 0, 1) : 0;
    v[0] = 1 - k;
    if (i > 0) v[i] += k;
    return v;
  }

  /** The eased emotion weights at `now`. */
  emotionAt(now) {
    const { from, to, start, ms } = this.emo;
    const k = ms > 0 ? smooth((now - start) / ms) : 1;
    return from.map((f, i) => f + (to[i] - f) * k);
  }

  // --- blinks -------------------------------------------------------------------------------

  blinkInterval() {
    const scale = this.target?.activity === "resting" ? 1.6 : 1;
    return scale * (BLINK.minMs + this.random() * (BLINK.maxMs - BLINK.minMs));
  }

  /** Eyelid closure at `now`: scheduled blinks over a resting droop. */
  blinkAt(now) {
    if (now >= this.nextBlink) {
      this.blinks.push(now);
      if (this.random() < BLINK.doubleChance) this.blinks.push(now + BLINK.doubleGapMs);
      this.nextBlink = now + this.blinkInterval();
    }
    const len = BLINK.closeMs + BLINK.openMs;
    this.blinks = this.blinks.filter((b) => now - b < len);
    let lid = this.target.activity === "resting" ? 0.45 : 0;
    for (const b of this.blinks) {
      const p = now - b;
      if (p < 0) continue;
      lid = Math.max(lid, p < BLINK.closeMs ? smooth(p / BLINK.closeMs) : 1 - smooth((p - BLINK.closeMs) / BLINK.openMs));
    }
    return clamp(lid, 0, 1);
  }

  // --- gaze ---------------------------------------------------------------------------------

  /** Pick fixations by the gaze hint (and the cursor), then move eyes fast and the head slowly. */
  moveEyes(now, dt) {
    const g = this.gaze;
    if (now >= g.next) {
      const [tx, ty, holdMs] = this.fixation(now);
      g.tx = tx; g.ty = ty;
      g.next = now + holdMs;
    }
    if (this.reduced) { g.x = g.tx; g.y = g.ty; }
    else { g.x = approach(g.x, g.tx, dt, SACCADE.tauMs); g.y = approach(g.y, g.ty, dt, SACCADE.tauMs); }
    this.head.yaw = approach(this.head.yaw, 0.22 * g.tx, dt, SACCADE.headTauMs);
    this.head.pitch = approach(this.head.pitch, 0.14 * g.ty, dt, SACCADE.headTauMs);
  }

  /** The next fixation [x, y, how long it holds in ms]. */
  fixation(now) {
    const r = this.random;
    const jitter = (a) => (this.reduced ? 0 : (r() * 2 - 1) * a);
    const hold = (lo, hi) => lo + r() * (hi - lo);
    const { gaze, activity } = this.target;
    const cursor = this.cursor && now - this.cursor.at < POINTER_FRESH_MS ? this.cursor : null;
    if (activity === "thinking" && now - this.activitySince > READ_MS) {
      return [-0.4 + jitter(0.08), 0.45 + jitter(0.08), hold(700, 1500)]; // up and away: pondering
    }
    if (gaze === "text") {
      // reading the chat, which sits on the avatar's left: short hops along a line, then back
      const step = Math.floor((now - this.activitySince) / 260) % 5;
      return [0.22 + 0.09 * step + jitter(0.02), -0.5 + jitter(0.03), 260];
    }
    if (gaze === "down") return [jitter(0.1), -0.65 + jitter(0.05), hold(2000, 5000)];
    if (cursor) return [cursor.x * 0.9 + jitter(0.04), cursor.y * 0.9 + jitter(0.04), hold(300, 900)];
    if (gaze === "user") return [jitter(0.06), jitter(0.05), hold(500, 1600)]; // at the person, micro-saccades
    // wander: mostly back at the person, sometimes a glance around
    if (r() < 0.45) return [jitter(0.08), jitter(0.06), hold(SACCADE.minMs, SACCADE.maxMs)];
    return [jitter(0.5), -0.1 + jitter(0.35), hold(SACCADE.minMs, SACCADE.maxMs)];
  }

  // --- the mouth ----------------------------------------------------------------------------

  /** Viseme weights at `now` (the current shape blending in from the one before). */
  mouthAt(now) {
    const n = this.orders.visemes.length;
    const weights = new Array(n).fill(0);
    while (this.mouth.length && this.mouth[0].end <= now - 1000) this.mouth.shift();
    const i = this.mouth.findIndex((s) => s.start <= now && now < s.end);
    if (i < 0) {
      // between tracks, or after the last: the mouth closes from the shape it ended on
      const before = [...this.mouth].reverse().find((s) => s.end <= now);
      const k = before ? smooth((now - before.end) / VISEME_BLEND_MS) : 1;
      weights[0] = k;
      if (before && k < 1) weights[Math.max(0, this.orders.visemes.indexOf(before.viseme))] += 1 - k;
      return { viseme: weights, playing: false };
    }
    const cur = this.mouth[i];
    const prev = i > 0 && this.mouth[i - 1].end >= cur.start - 1 ? this.mouth[i - 1].viseme : "closed";
    const k = smooth((now - cur.start) / Math.min(VISEME_BLEND_MS, 0.6 * (cur.end - cur.start)));
    weights[Math.max(0, this.orders.visemes.indexOf(cur.viseme))] += k;
    weights[Math.max(0, this.orders.visemes.indexOf(prev))] += 1 - k;
    return { viseme: weights, playing: true };
  }
}

/**
 * Feed the cursor's position, relative to `element` (the avatar), to the animator; null when it
 * leaves the window.
 * @param {Animator} animator
 * @param {HTMLElement} element
 */
export function trackPointer(animator, element) {
  document.addEventListener("pointermove", (e) => {
    const r = element.getBoundingClientRect();
    const cx = r.left + r.width / 2, cy = r.top + r.height / 2;
    animator.pointer((e.clientX - cx) / Math.max(1, window.innerWidth / 2), -(e.clientY - cy) / Math.max(1, window.innerHeight / 2));
  });
  document.documentElement.addEventListener("pointerleave", () => animator.pointer(null));
  window.addEventListener("blur", () => animator.pointer(null));
}

/**
 * Tell the core while the user types (the avatar listens): user_typing true on the first
 * keystroke and every 3 s of typing, false after 4 s without one or when the box is emptied.
 * @param {{send: (m: any) => boolean}} bridge
 * @param {HTMLTextAreaElement} input
 */
export function reportTyping(bridge, input) {
  let typing = false, sentAt = 0, timer = 0;
  const send = (/** @type {boolean} */ on) => {
    typing = on;
    sentAt = performance.now();
    bridge.send({ type: "user_typing", typing: on });
  };
  input.addEventListener("input", () => {
    clearTimeout(timer);
    if (!input.value.trim()) { if (typing) send(false); return; }
    if (!typing || performance.now() - sentAt > 3000) send(true);
    timer = setTimeout(() => { if (typing) send(false); }, 4000);
  });
}
