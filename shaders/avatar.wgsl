// The built-in avatar: an anime-style girl modelled in code as a 2D signed-distance scene. All
// it shows comes from the Pose (companion/avatar/pose.py): blink, gaze, head motion, breath and
// sway, and the emotion and viseme weights, which blend per-emotion face parameters
// (emotion_face) and per-viseme mouth shapes (viseme_mouth). The background is transparent and
// the output premultiplied RGBA, blended "over" (src one, dst one-minus-src-alpha), so a later
// pet window can composite it as is.
//
// Scene units: the short side of the target spans [-1, 1] / ZOOM, y up, so the drawing is
// resolution-independent; View.px is the size of one pixel in screen units (2 / short side).
//
// Layers. CPU rasterizers (Mesa lavapipe 22, SwiftShader) run every branch of a fragment shader
// for every pixel, so bounding tests inside one big shader save nothing (measured on lavapipe:
// the eyes cost the same behind an `if` that is never taken). Instead each group of features is
// its own draw over a quad that bounds it (rasterization does skip pixels), and the vertex
// shader computes what is the same for every pixel of a frame (the rig, the blended face, the
// mouth shape) once per vertex, passed on as flat varyings (lavapipe, 256 px: ~33 ms of CPU a
// frame as one full-screen shader, ~8.5 ms as these layers). A renderer draws, in this order,
// for each `// layer <fragment entry> <quads>` line: draw(6, quads, 0, 8 * index), with vs as
// the vertex entry and premultiplied-over blending. A quad of an absent feature collapses.
// layer fs_back_hair 1
// layer fs_body 1
// layer fs_face 1
// layer fs_eyes 2
// layer fs_mouth 1
// layer fs_locks 2
// layer fs_bangs 1
// layer fs_brows 2
// layer fs_cues 8
//
// binding  name  type            shape
// 0        pose  uniform Pose    POSE_LAYOUT of companion/avatar/pose.py: 12 f32 + 16 weights
//                                (10 emotions in EMOTIONS order, then 6 visemes in VISEMES order)
// 1        view  uniform View    size (px), px (screen units per pixel), flags (unused, 0)

struct Pose {
  time: f32,        // seconds since the avatar started
  blink: f32,       // 0 open .. 1 closed
  gaze_x: f32,      // -1 avatar's right (screen left) .. 1
  gaze_y: f32,      // -1 down .. 1 up
  head_yaw: f32,    // radians
  head_pitch: f32,  // radians
  head_roll: f32,   // radians
  breath: f32,      // 0..1
  sway: f32,        // -1..1
  blush: f32,       // 0..1 extra blush
  talk: f32,        // 0..1 how much the visemes shape the mouth
  activity: f32,    // index into ACTIVITIES: idle, listening, thinking, speaking, resting
  weights: array<vec4f, 4>,  // [0, 10): emotions, [10, 16): visemes
}

struct View {
  size: vec2f,  // target size in pixels
  px: f32,      // screen units per pixel
  flags: f32,   // reserved
}

@group(0) @binding(0) var<uniform> pose: Pose;
@group(0) @binding(1) var<uniform> view: View;

const N_EMOTIONS: u32 = 10u;
const N_VISEMES: u32 = 6u;
const ACT_THINKING: f32 = 2.0;
const ACT_RESTING: f32 = 4.0;
const PI: f32 = 3.14159265;

// The drawing is framed as a bust: scene = screen / ZOOM + CENTER.
const ZOOM: f32 = 1.22;
const CENTER = vec2f(0.0, -0.03);
const NECK_PIVOT = vec2f(0.0, -0.42);  // the head rolls about the neck
const HAIR_C = vec2f(0.0, 0.13);       // centre of the crown

fn weight(k: u32) -> f32 {
  return pose.weights[k / 4u][k % 4u];
}

// --- palette (sRGB values, drawn as an illustration) ----------------------------------------

const SKIN = vec3f(1.0, 0.9, 0.84);
const SKIN_SHADE = vec3f(0.96, 0.77, 0.75);
const SKIN_LINE = vec3f(0.55, 0.3, 0.33);
const HAIR = vec3f(0.42, 0.35, 0.68);
const HAIR_TIP = vec3f(0.76, 0.48, 0.8);
const HAIR_SHADE = vec3f(0.27, 0.22, 0.48);
const HAIR_SHINE = vec3f(0.74, 0.7, 0.96);
const HAIR_LINE = vec3f(0.17, 0.11, 0.3);
const BROW = vec3f(0.25, 0.16, 0.36);
const INK = vec3f(0.18, 0.1, 0.2);
const IRIS_TOP = vec3f(0.08, 0.2, 0.38);
const IRIS_MID = vec3f(0.1, 0.5, 0.62);
const IRIS_LOW = vec3f(0.55, 0.93, 0.86);
const CLOTH = vec3f(0.97, 0.96, 0.99);
const CLOTH_SHADE = vec3f(0.8, 0.8, 0.9);
const COLLAR = vec3f(0.27, 0.28, 0.55);
const RIBBON = vec3f(0.95, 0.38, 0.52);
const MOUTH_IN = vec3f(0.5, 0.14, 0.2);
const TONGUE = vec3f(0.96, 0.5, 0.55);
const BLUSH = vec3f(1.0, 0.42, 0.52);

// --- the face of one emotion ----------------------------------------------------------------

// Parameters blended linearly by the emotion weights (neutral takes what the others leave):
// mouth  (smile: corners up + / down -, open 0..1, wide (width factor), round 0 flat .. 1 'o')
// mouth2 (teeth, wavy (a flustered line), shift_x, tilt)
// brow   (raise, tilt (inner ends up + / down -), asym (one brow up), -)
// eye    (lid (upper lid closure), lid_tilt (+ droops outward, - glares inward), cheek (lower
//         lid pushed up by a smile), scale)
// eye2   (iris scale, gaze_x, gaze_y, tear)
// cue    (blush, sparkle, sweat drop, anger mark)
// cue2   (thought bubble, z's, head roll, -)
struct Face {
  mouth: vec4f,
  mouth2: vec4f,
  brow: vec4f,
  eye: vec4f,
  eye2: vec4f,
  cue: vec4f,
  cue2: vec4f,
}

// One Face per emotion, in EMOTIONS order: 7 vec4 each, the Face fields in order. A table, not
// a switch: the vertex shader is compiled once per layer, and a switch unrolled in the blending
// loop made that slow on lavapipe (in fragment code the opposite holds: see bang()).
var<private> FACES: array<vec4f, 70> = array<vec4f, 70>(
  // neutral
  vec4f(0.25, 0.0, 1.0, 0.0), vec4f(0.0, 0.0, 0.0, 0.0), vec4f(0.0, 0.0, 0.0, 0.0), vec4f(0.05, 0.0, 0.0, 1.0),
  vec4f(1.0, 0.0, 0.0, 0.0), vec4f(0.0, 0.0, 0.0, 0.0), vec4f(0.0, 0.0, 0.0, 0.0),
  // happy
  vec4f(1.0, 0.45, 1.3, 0.0), vec4f(0.25, 0.0, 0.0, 0.0), vec4f(0.04, 0.15, 0.0, 0.0), vec4f(0.0, 0.0, 0.85, 1.0),
  vec4f(1.05, 0.0, 0.0, 0.0), vec4f(0.5, 0.0, 0.0, 0.0), vec4f(0.0, 0.0, 0.05, 0.0),
  // sad
  vec4f(-0.7, 0.05, 0.85, 0.0), vec4f(0.0, 0.0, 0.0, 0.0), vec4f(0.02, 0.9, 0.0, 0.0), vec4f(0.3, 0.6, 0.0, 1.0),
  vec4f(1.05, 0.0, -0.35, 0.8), vec4f(0.1, 0.0, 0.0, 0.0), vec4f(0.0, 0.0, -0.03, 0.0),
  // angry
  vec4f(-0.75, 0.22, 1.05, 0.0), vec4f(0.9, 0.0, 0.0, 0.0), vec4f(-0.04, -1.0, 0.0, 0.0), vec4f(0.25, -0.8, 0.0, 1.0),
  vec4f(0.85, 0.0, 0.0, 0.0), vec4f(0.0, 0.0, 0.0, 1.0), vec4f(0.0, 0.0, 0.0, 0.0),
  // surprised
  vec4f(0.0, 0.75, 0.5, 1.0), vec4f(0.0, 0.0, 0.0, 0.0), vec4f(0.09, 0.15, 0.0, 0.0), vec4f(0.0, 0.0, 0.0, 1.15),
  vec4f(0.7, 0.0, 0.0, 0.0), vec4f(0.0, 0.0, 0.0, 0.0), vec4f(0.0, 0.0, 0.0, 0.0),
  // thinking
  vec4f(-0.1, 0.0, 0.7, 0.0), vec4f(0.0, 0.0, 0.05, 0.12), vec4f(0.02, 0.0, 1.0, 0.0), vec4f(0.15, 0.0, 0.0, 1.0),
  vec4f(1.0, 0.55, 0.6, 0.0), vec4f(0.0, 0.0, 0.0, 0.0), vec4f(1.0, 0.0, 0.06, 0.0),
  // embarrassed
  vec4f(0.25, 0.1, 0.8, 0.0), vec4f(0.0, 1.0, 0.0, 0.0), vec4f(0.02, 0.6, 0.0, 0.0), vec4f(0.15, 0.0, 0.0, 1.0),
  vec4f(1.0, -0.6, -0.45, 0.0), vec4f(1.0, 0.0, 1.0, 0.0), vec4f(0.0, 0.0, -0.05, 0.0),
  // sleepy
  vec4f(0.05, 0.15, 0.5, 0.7), vec4f(0.0, 0.0, 0.0, 0.0), vec4f(-0.02, 0.3, 0.0, 0.0), vec4f(0.62, 0.0, 0.0, 1.0),
  vec4f(1.0, 0.0, -0.2, 0.0), vec4f(0.1, 0.0, 0.0, 0.0), vec4f(0.0, 1.0, 0.1, 0.0),
  // relaxed
  vec4f(0.55, 0.0, 0.95, 0.0), vec4f(0.0, 0.0, 0.0, 0.0), vec4f(0.0, 0.2, 0.0, 0.0), vec4f(0.4, 0.0, 0.35, 1.0),
  vec4f(1.0, 0.0, 0.0, 0.0), vec4f(0.25, 0.0, 0.0, 0.0), vec4f(0.0, 0.0, -0.03, 0.0),
  // excited
  vec4f(1.0, 0.8, 1.2, 0.1), vec4f(0.3, 0.0, 0.0, 0.0), vec4f(0.07, 0.2, 0.0, 0.0), vec4f(0.0, 0.0, 0.2, 1.08),
  vec4f(1.1, 0.0, 0.0, 0.0), vec4f(0.5, 1.0, 0.0, 0.0), vec4f(0.0, 0.0, 0.0, 0.0),
);

fn emotion_face(i: u32) -> Face {
  let k = 7u * i;
  return Face(FACES[k], FACES[k + 1u], FACES[k + 2u], FACES[k + 3u], FACES[k + 4u], FACES[k + 5u], FACES[k + 6u]);
}

// Mouth shape per viseme, in VISEMES order: (open, wide, round, teeth).
var<private> VISEME_MOUTHS: array<vec4f, 6> = array<vec4f, 6>(
  vec4f(0.0, 0.9, 0.0, 0.0),  // closed
  vec4f(1.0, 1.0, 0.2, 0.3),  // aa
  vec4f(0.4, 1.35, 0.0, 1.0),  // ee
  vec4f(0.55, 1.1, 0.0, 0.6),  // ih
  vec4f(0.85, 0.6, 1.0, 0.0),  // oh
  vec4f(0.5, 0.42, 1.0, 0.0),  // ou
);

fn viseme_mouth(j: u32) -> vec4f {
  return VISEME_MOUTHS[j];
}

fn blended_face() -> Face {
  var f = Face(vec4f(0.0), vec4f(0.0), vec4f(0.0), vec4f(0.0), vec4f(0.0), vec4f(0.0), vec4f(0.0));
  var total = 0.0;
  for (var i = 1u; i < N_EMOTIONS; i++) {
    let w = max(weight(i), 0.0);
    let e = emotion_face(i);
    f.mouth += w * e.mouth; f.mouth2 += w * e.mouth2; f.brow += w * e.brow; f.eye += w * e.eye;
    f.eye2 += w * e.eye2; f.cue += w * e.cue; f.cue2 += w * e.cue2;
    total += w;
  }
  let n = emotion_face(0u);
  let r = max(1.0 - total, 0.0);  // neutral's share: its own weight and whatever is left
  f.mouth += r * n.mouth; f.mouth2 += r * n.mouth2; f.brow += r * n.brow; f.eye += r * n.eye;
  f.eye2 += r * n.eye2; f.cue += r * n.cue; f.cue2 += r * n.cue2;
  let s = max(total + r, 1e-3);  // weights over 1 are renormalised
  f.mouth /= s; f.mouth2 /= s; f.brow /= s; f.eye /= s; f.eye2 /= s; f.cue /= s; f.cue2 /= s;
  return f;
}

// The mouth's final shape: the emotion's mouth turned into the visemes' as much as `talk` says.
fn mouth_shape(f: Face) -> vec4f {
  var vis = vec4f(0.0);
  var vt = 0.0;
  for (var j = 0u; j < N_VISEMES; j++) {
    let w = max(weight(N_EMOTIONS + j), 0.0);
    vis += w * viseme_mouth(j);
    vt += w;
  }
  vis = select(viseme_mouth(0u), vis / max(vt, 1e-3), vt > 1e-3);
  let talk = clamp(pose.talk, 0.0, 1.0);
  let open = clamp(mix(f.mouth.y, vis.x, talk), 0.0, 1.2);
  let wide = mix(f.mouth.z, vis.y * (0.75 + 0.25 * f.mouth.z), talk);
  let round = clamp(mix(f.mouth.w, vis.z, talk), 0.0, 1.0);
  let teeth = clamp(mix(f.mouth2.x, vis.w, talk), 0.0, 1.0);
  return vec4f(open, wide, round, teeth);
}

// --- signed distances (negative inside) -----------------------------------------------------

fn rot(p: vec2f, a: f32) -> vec2f {
  let c = cos(a);
  let s = sin(a);
  return vec2f(c * p.x - s * p.y, s * p.x + c * p.y);
}

fn sd_circle(p: vec2f, r: f32) -> f32 {
  return length(p) - r;
}

fn sd_ellipse(p: vec2f, r: vec2f) -> f32 {  // approximate, good near the edge
  let k0 = length(p / r);
  let k1 = length(p / (r * r));
  return k0 * (k0 - 1.0) / max(k1, 1e-6);
}

fn sd_segment(p: vec2f, a: vec2f, b: vec2f) -> f32 {
  let pa = p - a;
  let ba = b - a;
  let h = clamp(dot(pa, ba) / dot(ba, ba), 0.0, 1.0);
  return length(pa - ba * h);
}

fn sd_box(p: vec2f, b: vec2f, r: f32) -> f32 {
  let q = abs(p) - b + vec2f(r);
  return length(max(q, vec2f(0.0))) + min(max(q.x, q.y), 0.0) - r;
}

// Circle r1 at the origin, circle r2 at (0, h), joined by their tangents (iq's uneven capsule).
fn sd_uneven_capsule(p0: vec2f, r1: f32, r2: f32, h: f32) -> f32 {
  let p = vec2f(abs(p0.x), p0.y);
  let b = (r1 - r2) / h;
  let a = sqrt(1.0 - b * b);
  let k = dot(p, vec2f(-b, a));
  let side = dot(p, vec2f(a, b)) - r1;
  return select(select(side, length(p - vec2f(0.0, h)) - r2, k > a * h), length(p) - r1, k < 0.0);
}

// A lens pointed at both ends, half-height hh along y, half-width hw (iq's vesica).
fn sd_vesica(p0: vec2f, hh: f32, hw: f32) -> f32 {
  let r = 0.5 * (hw + hh * hh / hw);
  let d = r - hw;
  let p = abs(p0);
  let tip = length(p - vec2f(0.0, hh));
  let body = length(p - vec2f(-d, 0.0)) - r;
  return select(body, tip, (p.y - hh) * d > p.x * hh);
}

fn smin(a: f32, b: f32, k: f32) -> f32 {
  let h = clamp(0.5 + 0.5 * (b - a) / k, 0.0, 1.0);
  return mix(b, a, h) - k * h * (1.0 - h);
}

// A four-pointed sparkle of radius r.
fn sd_sparkle(p0: vec2f, r: f32) -> f32 {
  let q = sqrt(abs(p0) / r);  // (sqrt, not pow: pow(0, y) differs between implementations)
  return (q.x + q.y - 1.0) * r * 0.5;
}

// --- the rig: head, feature and body spaces (all affine, so they interpolate exactly) -------

struct Rig {
  bob: vec2f,    // head offset (sway, breath)
  roll: f32,     // head roll, radians
  slide: vec2f,  // features slide over the face with yaw and pitch
  body: vec2f,   // body offset (sway, breath)
}

fn rig(f: Face) -> Rig {
  var r: Rig;
  r.bob = vec2f(pose.sway * 0.025, pose.breath * 0.012);
  r.roll = pose.head_roll + f.cue2.z + pose.sway * 0.03;
  r.slide = vec2f(pose.head_yaw * 0.22, pose.head_pitch * 0.18);
  r.body = vec2f(pose.sway * 0.015, pose.breath * 0.018);
  return r;
}

fn head_to_scene(h: vec2f, r: Rig) -> vec2f {
  return rot(h - NECK_PIVOT, r.roll) + NECK_PIVOT + r.bob;
}

fn scene_to_head(p: vec2f, r: Rig) -> vec2f {
  return rot(p - NECK_PIVOT - r.bob, -r.roll) + NECK_PIVOT;
}

// --- layers: the quads, in the space their features live in ---------------------------------

const SPACE_HEAD: u32 = 0u;
const SPACE_FEAT: u32 = 1u;
const SPACE_BODY: u32 = 2u;

struct Quad {
  lo: vec2f,
  hi: vec2f,
  space: u32,
  side: f32,  // -1 screen left, 1 right (eyes, brows, locks), 0 otherwise
}

fn quad(lo: vec2f, hi: vec2f, space: u32, side: f32) -> Quad {
  return Quad(lo, hi, space, side);
}

fn mirrored(lo: vec2f, hi: vec2f, space: u32, part: u32) -> Quad {
  if (part == 0u) { return Quad(vec2f(-hi.x, lo.y), vec2f(-lo.x, hi.y), space, -1.0); }
  return Quad(lo, hi, space, 1.0);
}

const GONE = Quad(vec2f(0.0), vec2f(0.0), 0u, 0.0);

// Sparkle positions around the head (excited), head space.
fn sparkle_at(i: u32) -> vec2f {
  switch i {
    case 0u: { return vec2f(-0.62, 0.5); }
    case 1u: { return vec2f(0.63, 0.56); }
    case 2u: { return vec2f(-0.66, 0.02); }
    default: { return vec2f(0.64, 0.08); }
  }
}

fn layer_quad(layer: u32, part: u32, f: Face) -> Quad {
  switch layer {
    case 0u: { return quad(vec2f(-0.8, -0.78), vec2f(0.8, 0.7), SPACE_HEAD, 0.0); }     // back hair
    case 1u: { return quad(vec2f(-0.9, -1.6), vec2f(0.9, -0.32), SPACE_BODY, 0.0); }    // body
    case 2u: { return quad(vec2f(-0.45, -0.46), vec2f(0.45, 0.58), SPACE_HEAD, 0.0); }  // face
    case 3u: { return mirrored(vec2f(0.05, -0.25), vec2f(0.35, 0.14), SPACE_FEAT, part); }  // eyes
    case 4u: { return quad(vec2f(-0.16, -0.38), vec2f(0.16, -0.16), SPACE_FEAT, 0.0); } // mouth
    case 5u: { return mirrored(vec2f(0.27, -0.66), vec2f(0.66, 0.44), SPACE_HEAD, part); }  // locks
    case 6u: { return quad(vec2f(-0.58, -0.12), vec2f(0.58, 0.9), SPACE_HEAD, 0.0); }   // bangs
    case 7u: { return mirrored(vec2f(0.07, 0.0), vec2f(0.31, 0.25), SPACE_FEAT, part); }    // brows
    case 8u: {  // cues, each only while shown
      var thought = f.cue2.x;
      if (abs(pose.activity - ACT_THINKING) < 0.5) { thought = 1.0; }
      switch part {
        case 0u: { if (thought > 0.01) { return quad(vec2f(0.42, 0.26), vec2f(0.82, 0.68), SPACE_HEAD, 0.0); } }
        case 1u: { if (f.cue2.y > 0.01) { return quad(vec2f(0.45, 0.3), vec2f(0.76, 0.7), SPACE_HEAD, 0.0); } }
        case 2u: { if (f.cue.w > 0.01) { return quad(vec2f(0.18, 0.33), vec2f(0.42, 0.57), SPACE_HEAD, 0.0); } }
        case 3u: { if (f.cue.z > 0.01) { return quad(vec2f(0.43, 0.18), vec2f(0.51, 0.3), SPACE_HEAD, 0.0); } }
        default: {
          if (f.cue.y > 0.01) {
            let c = sparkle_at(part - 4u);
            return quad(c - vec2f(0.075), c + vec2f(0.075), SPACE_HEAD, 0.0);
          }
        }
      }
      return GONE;
    }
    default: { return GONE; }
  }
}

struct Varyings {
  @builtin(position) pos: vec4f,
  @location(0) hf: vec4f,                        // head-space point, feature-space point
  @location(1) bs: vec4f,                        // body-space point, unused
  @location(2) @interpolate(flat) mouth: vec4f,  // the blended Face ...
  @location(3) @interpolate(flat) mouth2: vec4f,
  @location(4) @interpolate(flat) brow: vec4f,
  @location(5) @interpolate(flat) eye: vec4f,
  @location(6) @interpolate(flat) eye2: vec4f,
  @location(7) @interpolate(flat) cue: vec4f,
  @location(8) @interpolate(flat) cue2: vec4f,
  @location(9) @interpolate(flat) shape: vec4f,  // the mouth: open, wide, round, teeth
  @location(10) @interpolate(flat) misc: vec4f,  // eyelid closure, hair swing, quad side, part
}

@vertex
fn vs(@builtin(vertex_index) v: u32, @builtin(instance_index) inst: u32) -> Varyings {
  let f = blended_face();
  let r = rig(f);
  let layer = inst / 8u;
  let part = inst % 8u;
  let q = layer_quad(layer, part, f);
  // two triangles: corners 0 1 2, 2 1 3 of (lo, lo+x, lo+y, hi)
  let corner = array<vec2f, 6>(vec2f(0.0, 0.0), vec2f(1.0, 0.0), vec2f(0.0, 1.0),
                               vec2f(0.0, 1.0), vec2f(1.0, 0.0), vec2f(1.0, 1.0));
  let c = mix(q.lo, q.hi, corner[v % 6u]);
  var p: vec2f;
  if (q.space == SPACE_BODY) {
    p = c + r.body;
  } else if (q.space == SPACE_FEAT) {
    p = head_to_scene(c + r.slide, r);
  } else {
    p = head_to_scene(c, r);
  }
  var out: Varyings;
  let screen = (p - CENTER) * ZOOM;
  out.pos = vec4f(screen * min(view.size.x, view.size.y) / view.size, 0.0, 1.0);
  let h = scene_to_head(p, r);
  out.hf = vec4f(h, h - r.slide);
  out.bs = vec4f(p - r.body, 0.0, 0.0);
  out.mouth = f.mouth; out.mouth2 = f.mouth2; out.brow = f.brow; out.eye = f.eye;
  out.eye2 = f.eye2; out.cue = f.cue; out.cue2 = f.cue2;
  out.shape = mouth_shape(f);
  var lid = clamp(f.eye.x, 0.0, 1.0);
  if (pose.activity > ACT_RESTING - 0.5) { lid = max(lid, 0.45); }  // resting dims the eyes
  let closed = clamp(lid + pose.blink * (1.0 - lid), 0.0, 1.0);
  let swing = pose.sway + 0.3 * sin(pose.time * 1.3);
  out.misc = vec4f(closed, swing, q.side, f32(part));
  return out;
}

// Parallax when the head turns: the features slide by the yaw/pitch (feature space), the fringe
// about half as far, the hair behind the head a little the other way.
fn parallax(v: Varyings, k: f32) -> vec2f {
  return v.hf.xy + (v.hf.zw - v.hf.xy) * k;
}

fn face_of(v: Varyings) -> Face {
  return Face(v.mouth, v.mouth2, v.brow, v.eye, v.eye2, v.cue, v.cue2);
}

// --- compositing (premultiplied) ------------------------------------------------------------

fn px() -> f32 {
  return view.px / ZOOM;  // one pixel in scene units
}

fn cover(d: f32) -> f32 {
  return clamp(0.5 - d / px(), 0.0, 1.0);
}

fn over(dst: vec4f, rgb: vec3f, a: f32) -> vec4f {
  return vec4f(rgb * a + dst.rgb * (1.0 - a), a + dst.a * (1.0 - a));
}

// A shape with an inked outline of width lw inside its edge.
fn inked(dst: vec4f, d: f32, fill: vec3f, line: vec3f, lw: f32) -> vec4f {
  let out = over(dst, line, cover(d));
  return over(out, fill, cover(d + lw));
}

fn line_w(w: f32) -> f32 {
  return max(w, 0.8 * px());  // never thinner than a pixel, or it shimmers
}

// --- hair -----------------------------------------------------------------------------------

// Hair swings more the farther it hangs below its root, with a ripple along it.
fn swing(p: vec2f, root_y: f32, amount: f32, sw: f32) -> vec2f {
  let depth = max(root_y - p.y, 0.0);
  let wave = 0.004 * sin(pose.time * 2.1 + p.y * 6.0);
  return vec2f(p.x - (sw * amount * depth + wave) * depth, p.y);
}

fn hair_color(h: vec2f) -> vec3f {
  let g = smoothstep(0.25, -0.55, h.y);
  var c = mix(HAIR, HAIR_TIP, g * g);
  // the "angel ring": a soft shine band across the crown with a toothed lower edge
  let q = h - HAIR_C;
  let rr = length(q);
  let a = atan2(q.x, q.y);
  let teeth = 0.02 * abs(fract(a * 4.0) - 0.5) * 2.0;
  let band = max(rr - 0.405, 0.365 + teeth - rr);
  let shine = cover(band) * smoothstep(1.25, 0.45, abs(a + 0.25)) * 0.45;
  return mix(c, HAIR_SHINE, shine);
}

@fragment
fn fs_back_hair(v: Varyings) -> @location(0) vec4f {
  let h = parallax(v, -0.25);
  let q = swing(h, 0.0, 0.1, v.misc.y);
  let crown = sd_circle(q - HAIR_C, 0.535);
  let fall = sd_box(q - vec2f(0.0, -0.24), vec2f(0.545, 0.4), 0.16);
  // the lower edge ends in points
  let sc = abs(fract(q.x * 4.0 + 0.5) - 0.5) / 4.0;
  let tips = q.y + 0.6 - 0.08 * (1.0 - smoothstep(0.0, 0.11, sc)) + 0.06 * abs(q.x);
  let d = max(min(crown, fall), -tips);
  let c = mix(HAIR_SHADE, HAIR_TIP * 0.75, smoothstep(0.1, -0.6, h.y) * 0.7);
  return inked(vec4f(0.0), d, c, HAIR_LINE, line_w(0.008));
}

// Bang strands: root x, tip y, half-width, lean (radians, + leans the tip to screen right). A
// switch, not a private array: lavapipe's JIT takes ~3x longer over a dynamically indexed array.
const BANG_ROOT_Y: f32 = 0.42;
const BANG_X0: f32 = -0.4;
const BANG_STEP: f32 = 0.1333;

fn bang(j: i32) -> vec4f {
  switch j {
    case 0: { return vec4f(-0.4, 0.07, 0.08, -0.3); }
    case 1: { return vec4f(-0.267, 0.15, 0.07, -0.16); }
    case 2: { return vec4f(-0.133, 0.1, 0.078, -0.08); }
    case 3: { return vec4f(0.0, 0.06, 0.082, 0.03); }
    case 4: { return vec4f(0.133, 0.13, 0.07, 0.1); }
    case 5: { return vec4f(0.267, 0.09, 0.078, 0.17); }
    default: { return vec4f(0.4, 0.15, 0.072, 0.3); }
  }
}

struct Hair {
  d: f32,      // distance to the front hair
  seams: f32,  // distance to the nearest strand edge
}

// The crown and the bangs over the forehead (only the three strands nearest to the point).
fn bangs(h: vec2f, sw: f32) -> Hair {
  var out: Hair;
  out.d = max(sd_circle(h - HAIR_C, 0.5), 0.26 - h.y);
  out.seams = 1.0;
  let k = i32(clamp(round((h.x - BANG_X0) / BANG_STEP), 1.0, 5.0));
  let q0 = swing(h, 0.3, 0.22, sw);
  for (var j = k - 1; j <= k + 1; j++) {
    let s = bang(j);
    let hh = 0.5 * (BANG_ROOT_Y - s.y);
    var q = q0 - vec2f(s.x, s.y + hh);
    let c = 1.0 - 0.5 * s.w * s.w;  // rotate by the lean (small angles: no trig)
    q = vec2f(c * q.x + s.w * q.y, -s.w * q.x + c * q.y);
    q.x -= 1.2 * s.w * (q.y - hh) * (q.y - hh);  // the tip curls with the lean
    let d = sd_vesica(q, hh, s.z);
    out.d = smin(out.d, d, 0.025);
    out.seams = min(out.seams, abs(d));
  }
  return out;
}

@fragment
fn fs_bangs(v: Varyings) -> @location(0) vec4f {
  let h = parallax(v, 0.5);
  let lw = line_w(0.008);
  let hair = bangs(h, v.misc.y);
  var dst = inked(vec4f(0.0), hair.d, hair_color(h), HAIR_LINE, lw);
  let seam = max(hair.seams - line_w(0.0035), hair.d + lw);
  dst = over(dst, HAIR_LINE, cover(seam) * 0.45 * smoothstep(0.32, 0.18, h.y));
  // the ahoge: one stray strand on top, bouncing
  let bounce = 0.05 * sin(pose.time * 2.6) + 0.06 * v.misc.y;
  let a = rot(h - vec2f(0.03, 0.6), -0.5 + bounce);
  let ahoge = max(max(sd_circle(a - vec2f(0.1, 0.0), 0.13), -sd_circle(a - vec2f(0.14, -0.028), 0.12)), 0.005 - a.y);
  dst = inked(dst, ahoge, hair_color(h), HAIR_LINE, lw);
  return dst;
}

// The lock framing the face on this quad's side, curling in towards the chin at its tip.
@fragment
fn fs_locks(v: Varyings) -> @location(0) vec4f {
  let h = parallax(v, 0.3);
  let s = v.misc.z;
  let q0 = swing(h, 0.2, 0.3, v.misc.y);
  var q = vec2f(q0.x * s, q0.y) - vec2f(0.43, -0.12);
  q.x += 0.2 * (q.y - 0.42) * (q.y - 0.42) - 0.045;
  let d = sd_vesica(q, 0.44, 0.07);
  var dst = inked(vec4f(0.0), d, hair_color(h), HAIR_LINE, line_w(0.008));
  // one strand line down the middle
  let seam = max(abs(q.x + 0.012 - 0.1 * (q.y + 0.1)) - line_w(0.003), max(d + 0.03, q.y - 0.3));
  dst = over(dst, HAIR_LINE, cover(seam) * 0.4);
  return dst;
}

// --- body -----------------------------------------------------------------------------------

fn sd_head(h: vec2f) -> f32 {
  // a cranium circle on a tapering jaw that ends in a soft chin, with full cheeks
  let jaw = sd_uneven_capsule(h - vec2f(0.0, -0.31), 0.1, 0.4, 0.43);
  let cheeks = sd_ellipse(h - vec2f(0.0, -0.05), vec2f(0.375, 0.26));
  return smin(jaw, cheeks, 0.06);
}

@fragment
fn fs_body(v: Varyings) -> @location(0) vec4f {
  let b = v.bs.xy;
  let lw = line_w(0.008);
  var dst = vec4f(0.0);
  // neck, shaded under the chin
  let neck = sd_box(b - vec2f(0.0, -0.5), vec2f(0.08, 0.17), 0.03);
  let chin_shadow = sd_head(v.hf.xy - vec2f(0.0, 0.055)) - 0.005;
  dst = inked(dst, neck, mix(SKIN, SKIN_SHADE, cover(chin_shadow)), SKIN_LINE, lw);
  // torso: a blouse with a sailor collar and a ribbon
  let torso = smin(sd_box(b - vec2f(0.0, -0.98), vec2f(0.5, 0.44), 0.3),
                   sd_ellipse(b - vec2f(0.0, -0.62), vec2f(0.28, 0.1)), 0.12);
  let vline = (b.y + 0.72 - 1.2 * abs(b.x)) * 0.64;  // < 0 below the V neckline
  let torso_d = max(torso, vline);
  let shade = mix(CLOTH, CLOTH_SHADE, smoothstep(0.25, 0.55, abs(b.x)) * 0.6);
  dst = inked(dst, torso_d, shade, INK * 1.4, lw);
  let collar_edge = (b.y + 0.93 - 0.8 * abs(b.x)) * 0.78;
  dst = inked(dst, max(torso_d, -collar_edge), COLLAR, INK, lw);
  let stripe = abs(collar_edge - 0.035) - line_w(0.006);
  dst = over(dst, vec3f(0.95, 0.95, 1.0), cover(max(stripe, torso_d + 0.01)));
  // skin in the V of the neckline
  dst = over(dst, mix(SKIN, SKIN_SHADE, 0.7), cover(max(torso, -vline)));
  // ribbon: two wings and two tails on a knot at the V
  let rb = b - vec2f(0.0, -0.715);
  let ax = vec2f(abs(rb.x), rb.y);
  let wing = sd_vesica(rot(ax - vec2f(0.075, 0.004), 1.3), 0.075, 0.04);
  let tail = sd_vesica(rot(ax - vec2f(0.045, -0.09), -0.25), 0.08, 0.022);
  let ribbon = min(min(wing, tail), sd_circle(rb, 0.028));
  dst = inked(dst, ribbon, RIBBON, INK, lw);
  dst = over(dst, RIBBON * 0.8, cover(sd_circle(rb, 0.018)));
  // the bust fades out towards the bottom of the frame instead of being cut by it
  return dst * smoothstep(-0.86, -0.7, b.y);
}

// --- face -----------------------------------------------------------------------------------

@fragment
fn fs_face(v: Varyings) -> @location(0) vec4f {
  let h = v.hf.xy;
  let fp = v.hf.zw;
  let f = face_of(v);
  let head = sd_head(h);
  // skin in shadow away from the light (upper left) and under the fringe
  let lit = smoothstep(-0.02, 0.02, sd_head(h + vec2f(0.05, 0.02)) + 0.02);
  var skin = mix(SKIN, SKIN_SHADE, 0.7 * (1.0 - lit));
  let fringe = bangs(parallax(v, 0.5) + vec2f(0.0, 0.045), v.misc.y).d;
  skin = mix(skin, SKIN_SHADE, 0.85 * cover(fringe));
  var dst = inked(vec4f(0.0), head, skin, SKIN_LINE, line_w(0.008));
  // blush, with hatching when strong
  let amount = clamp(f.cue.x + pose.blush, 0.0, 1.0);
  let bq = vec2f(abs(fp.x) - 0.25, fp.y + 0.14);
  let k = length(bq / vec2f(0.085, 0.045));
  var a = amount * 0.55 * smoothstep(1.0, 0.15, k);
  dst = vec4f(mix(dst.rgb, BLUSH * dst.a, a), dst.a);
  let hatch = clamp((amount - 0.6) / 0.4, 0.0, 1.0);
  let cell = clamp(round((bq.x - 0.5 * bq.y) / 0.03), -1.0, 1.0);
  let s0 = vec2f(cell * 0.03 + 0.01, 0.02);
  let stroke = sd_segment(bq, s0, s0 + vec2f(-0.02, -0.036)) - line_w(0.003);
  a = cover(stroke) * hatch * 0.85;
  dst = vec4f(mix(dst.rgb, vec3f(0.9, 0.3, 0.42) * dst.a, a), dst.a);
  // nose: a small shadow wedge
  let nose = sd_segment(fp, vec2f(0.004, -0.11), vec2f(0.015, -0.133)) - line_w(0.0045);
  a = cover(nose) * 0.55;
  dst = vec4f(mix(dst.rgb, SKIN_LINE * dst.a, a), dst.a);
  return dst;
}

// The eye on this quad's side, mirrored so +x points away from the nose.
@fragment
fn fs_eyes(v: Varyings) -> @location(0) vec4f {
  let f = face_of(v);
  let side = v.misc.z;
  let closed = v.misc.x;
  let scale = f.eye.w;
  let fp = v.hf.zw;
  let c = vec2f(side * 0.183, -0.045);
  let e = vec2f((fp.x - c.x) * side, fp.y - c.y) / scale;
  let W = 0.1;
  let t = clamp(e.x / W, -1.0, 1.0);
  let arc = sqrt(max(1.0 - t * t, 0.0));
  // lids: the upper one tilts (sad droops outward, angry slants in) and closes onto the
  // lower one, which a smile pushes up
  let tilt = f.eye.y * 0.03 * t;
  let low = -0.072 * pow(max(arc, 1e-5), 0.8) + 0.01 * t + f.eye.z * 0.05 * pow(max(arc, 1e-5), 0.7);
  let shut = low + 0.014 * arc;
  let top = mix(0.092 * pow(max(arc, 1e-5), 0.55) - 0.014 * t - tilt, shut, closed);
  let open_d = max(max(e.y - top, low - e.y), abs(e.x) - W) * scale;
  let visible = select(1.0, 0.0, top < low + 0.002);
  var dst = vec4f(0.0);

  // white, shaded under the upper lid
  let white = mix(vec3f(1.0, 0.99, 1.0), vec3f(0.78, 0.76, 0.9), smoothstep(top - 0.055, top, e.y));
  dst = over(dst, white, cover(open_d) * visible);
  // iris and pupil, clipped to the opening
  let gaze = clamp(vec2f(pose.gaze_x + f.eye2.y, pose.gaze_y + f.eye2.z), vec2f(-1.0), vec2f(1.0));
  let ir = vec2f(0.064, 0.08) * f.eye2.x;
  let ie = e - vec2f(gaze.x * side * 0.032, gaze.y * 0.028 - 0.004);
  let ring = sd_ellipse(ie, ir);
  let g = clamp((ie.y / ir.y) * 0.5 + 0.5, 0.0, 1.0);
  var icol = mix(IRIS_LOW, IRIS_MID, smoothstep(0.0, 0.55, g));
  icol = mix(icol, IRIS_TOP, smoothstep(0.5, 0.95, g));
  icol = mix(icol, IRIS_TOP * 0.55, smoothstep(-0.012, 0.0, ring));          // rim
  icol = mix(icol, IRIS_TOP * 0.7, smoothstep(top - 0.04, top, e.y) * 0.7);  // lid shadow
  dst = over(dst, icol, cover(max(ring * scale, open_d)) * visible);
  let pupil = sd_ellipse(ie - vec2f(0.0, 0.006), ir * vec2f(0.42, 0.5));
  dst = over(dst, IRIS_TOP * 0.35, cover(max(pupil * scale, open_d)) * 0.9 * visible);
  // highlights: a big one towards the light (screen upper left), a small one opposite; stars
  // when excited
  let hl = vec2f(-0.026 * side, 0.032) * f.eye2.x;
  let sparkle = f.cue.y;
  let big = mix(sd_ellipse(ie - hl, vec2f(0.021, 0.025)), sd_sparkle(ie - hl * 0.8, 0.05), sparkle);
  dst = over(dst, vec3f(1.0), cover(max(big * scale, open_d)) * visible);
  let small = mix(sd_circle(ie - vec2f(0.024 * side, -0.036) * f.eye2.x, 0.01),
                  sd_sparkle(ie - vec2f(0.026 * side, -0.032), 0.026), sparkle);
  dst = over(dst, vec3f(1.0), cover(max(small * scale, open_d)) * 0.9 * visible);
  // upper lash line along the lid, heavier towards the outer corner, with a small flick
  let lt = clamp(e.x / W, -1.0, 1.08);
  let larc = sqrt(max(1.0 - lt * lt, 0.0));
  let lash_y = mix(0.092 * pow(max(larc, 1e-5), 0.55) - 0.014 * lt - f.eye.y * 0.03 * lt, low + 0.014 * larc, closed);
  let thick = mix(0.006, 0.017, smoothstep(-1.0, 0.9, t)) * mix(1.0, 0.65, closed);
  // it ends short of the inner corner, where the lid turns vertical (a vertical distance is poor)
  var lash = max(abs(e.y - lash_y - thick * 0.55) - thick, abs(e.x - 0.075 * W) - 0.975 * W);
  let flick = sd_segment(e, vec2f(W * 0.88, top + 0.008), vec2f(W * 1.2, top + 0.032 - closed * 0.045)) - 0.006;
  lash = min(lash, flick);
  dst = over(dst, INK, cover(lash * scale));
  // the lid crease above the outer half (it follows the lid down as the eye closes)
  let crease = max(abs(e.y - lash_y - 0.04 + 0.02 * closed + 0.01 * (t - 0.3) * (t - 0.3)) - 0.0025, abs(e.x - W * 0.35) - W * 0.5);
  dst = over(dst, SKIN_LINE, cover(crease * scale) * 0.55);
  // lower lash: a short thin stroke on the outer half
  let lower = max(abs(e.y - low + 0.002) - 0.0035, abs(e.x - W * 0.45) - W * 0.5) * scale;
  dst = over(dst, SKIN_LINE, cover(lower) * 0.85);
  // a tear welling at the outer corner
  let tq = e - vec2f(W * 0.9, low - 0.05);
  let drop = sd_uneven_capsule(tq, 0.017, 0.002, 0.036) * scale;
  var tear = inked(vec4f(0.0), drop, vec3f(0.72, 0.88, 1.0), vec3f(0.35, 0.55, 0.85), line_w(0.004));
  tear = over(tear, vec3f(1.0), cover(sd_circle(tq - vec2f(-0.005, 0.004), 0.005)) * tear.a);
  let ta = f.eye2.w;
  return vec4f(tear.rgb * ta + dst.rgb * (1.0 - tear.a * ta), tear.a * ta + dst.a * (1.0 - tear.a * ta));
}

@fragment
fn fs_brows(v: Varyings) -> @location(0) vec4f {
  let f = face_of(v);
  let side = v.misc.z;
  let fp = v.hf.zw;
  let e = vec2f((fp.x - side * 0.19) * side, fp.y - 0.1);
  let W = 0.072;
  let t = clamp(e.x / W, -1.0, 1.0);
  let raise = f.brow.x + f.brow.z * 0.05 * step(0.0, side);
  let y = raise + 0.013 * (1.0 - t * t) - f.brow.y * 0.03 * t;
  let th = mix(0.014, 0.006, t * 0.5 + 0.5);
  let d = max(abs(e.y - y) - th, abs(e.x) - W);
  return vec4f(BROW, 1.0) * cover(d) * 0.95;
}

@fragment
fn fs_mouth(v: Varyings) -> @location(0) vec4f {
  let f = face_of(v);
  let smile = f.mouth.x;
  let open = v.shape.x;
  let round = v.shape.z;
  let teeth = v.shape.w;
  var m = v.hf.zw - vec2f(f.mouth2.z, -0.24);
  m = rot(m, -f.mouth2.w);
  let w = 0.062 * v.shape.y;
  let e = 0.02;
  let t = m.x / w;
  // centre line (corners up with a smile); upper and lower lip as functions of t, at t - e,
  // t, t + e for their slopes (the distance is the vertical one over sqrt(1 + slope^2))
  var up = vec3f(0.0);
  var lo = vec3f(0.0);
  let pw = mix(0.8, 0.5, round);
  let wavy = f.mouth2.y * 0.008 * (1.0 - smoothstep(0.05, 0.3, open));  // a flustered line
  for (var k = 0; k < 3; k++) {
    let tk = t + e * f32(k - 1);
    let cl = smile * 0.028 * (tk * tk - 0.35) + wavy * sin(tk * 3.0 * PI);
    let prof = pow(max(1.0 - tk * tk, 1e-5), pw);
    up[k] = cl + open * (0.014 + 0.034 * round) * prof;
    lo[k] = cl - open * (0.075 + 0.014 * round) * prof;
  }
  let du = (up.z - up.x) / (2.0 * e * w);
  let dl = (lo.z - lo.x) / (2.0 * e * w);
  let d_up = (m.y - up.y) / sqrt(1.0 + du * du);
  let d_lo = (lo.y - m.y) / sqrt(1.0 + dl * dl);
  let d = max(max(d_up, d_lo), abs(m.x) - w);
  let lw = line_w(0.006);
  var dst = over(vec4f(0.0), SKIN_LINE * 0.75, cover(d - lw * 0.5));
  let shown = select(0.0, 1.0, open > 0.02);
  let inside = d + lw * 0.6;
  dst = over(dst, MOUTH_IN, cover(inside) * shown);
  let tongue = sd_ellipse(m - vec2f(0.0, lo.y), vec2f(w * 0.62, 0.036 * open + 0.004));
  dst = over(dst, TONGUE, cover(max(tongue, inside)) * shown);
  let tooth = max(inside, up.y - 0.014 * teeth - m.y);
  dst = over(dst, vec3f(1.0), cover(tooth) * shown * select(0.0, 1.0, teeth > 0.01));
  return dst;
}

// --- cues: thought bubble, z's, anger mark, sweat drop, sparkles (one per quad) -------------

@fragment
fn fs_cues(v: Varyings) -> @location(0) vec4f {
  let f = face_of(v);
  let h = v.hf.xy;
  let part = u32(v.misc.w + 0.5);
  let lw = line_w(0.007);
  var layer = vec4f(0.0);
  var alpha = 1.0;
  if (part == 0u) {  // thought bubble with three pulsing dots
    var thought = f.cue2.x;
    if (abs(pose.activity - ACT_THINKING) < 0.5) { thought = 1.0; }
    let c = vec2f(0.63, 0.53) + vec2f(0.0, 0.01 * sin(pose.time * 1.7));
    var cloud = sd_circle(h - c - vec2f(0.0, 0.01), 0.08);
    cloud = smin(cloud, sd_circle(h - c - vec2f(-0.09, -0.02), 0.058), 0.03);
    cloud = smin(cloud, sd_circle(h - c - vec2f(0.09, -0.015), 0.062), 0.03);
    cloud = smin(cloud, sd_circle(h - c - vec2f(0.0, -0.055), 0.058), 0.03);
    cloud = min(cloud, sd_circle(h - vec2f(0.5, 0.39), 0.027));
    cloud = min(cloud, sd_circle(h - vec2f(0.455, 0.32), 0.017));
    layer = inked(layer, cloud, vec3f(1.0), INK * 1.6, lw);
    let i = clamp(round((h.x - c.x) / 0.055), -1.0, 1.0);
    let pulse = 0.5 + 0.5 * sin(pose.time * 4.0 - i * 1.2);
    layer = over(layer, INK * 1.6, cover(sd_circle(h - c - vec2f(i * 0.055, -0.012), 0.012 + 0.004 * pulse)));
    alpha = clamp(thought, 0.0, 1.0);
  } else if (part == 1u) {  // two z's drifting up
    let i = select(0.0, 1.0, h.y > 0.47 - 0.3 * (h.x - 0.55));
    let ph = fract(pose.time * 0.25 + 0.3 + i * 0.3);
    let s = 0.028 + 0.016 * i;
    let q = h - (vec2f(0.52 + 0.11 * i, 0.34 + 0.14 * i) + vec2f(0.02, 0.06) * (ph - 0.3));
    var z = sd_segment(q, vec2f(-s, s), vec2f(s, s));
    z = min(z, sd_segment(q, vec2f(s, s), vec2f(-s, -s)));
    z = min(z, sd_segment(q, vec2f(-s, -s), vec2f(s, -s)));
    layer = over(layer, vec3f(0.5, 0.5, 0.85), cover(z - line_w(0.008)));
    alpha = f.cue2.y * (1.0 - smoothstep(0.6, 1.0, ph)) * smoothstep(0.0, 0.15, ph);
  } else if (part == 2u) {  // anger mark on the hair
    let aq = abs(rot(h - vec2f(0.3, 0.45), 0.3));
    let s = 0.062;
    let mark = max(abs(length(aq - vec2f(s)) - s * 0.72) - line_w(0.012), max(aq.x, aq.y) - s);
    layer = over(layer, vec3f(0.86, 0.13, 0.2), cover(mark));
    alpha = f.cue.w;
  } else if (part == 3u) {  // sweat drop
    let q = h - vec2f(0.47, 0.22);
    layer = inked(layer, sd_uneven_capsule(q, 0.028, 0.003, 0.06), vec3f(0.75, 0.9, 1.0), vec3f(0.3, 0.5, 0.85), lw);
    layer = over(layer, vec3f(1.0), cover(sd_circle(q - vec2f(-0.008, 0.006), 0.007)) * layer.a);
    alpha = f.cue.z;
  } else {  // a twinkling sparkle
    let i = f32(part);
    let tw = 0.65 + 0.35 * sin(pose.time * 3.0 + i * 1.9);
    layer = over(layer, vec3f(1.0, 0.85, 0.4), cover(sd_sparkle(h - sparkle_at(part - 4u), 0.07 * tw)));
    alpha = f.cue.y;
  }
  return layer * clamp(alpha, 0.0, 1.0);
}
