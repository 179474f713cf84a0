// The page's end of the bridge: one WebSocket to the loopback server, hello/welcome
// handshake, schema-checked messages in both directions, reconnect with backoff.
// Message definitions: companion/bridge/messages.py, exported to bridge-schema.json.

import { validateMessage } from "./validate.js";

/** @typedef {import("./validate.js").BridgeSchema} BridgeSchema */
/** @typedef {{type: string, [key: string]: any}} Message */

const MAX_MESSAGE_CHARS = 2 * 1024 * 1024; // same limit as MAX_MESSAGE_BYTES in messages.py

export class Bridge extends EventTarget {
  /**
   * @param {BridgeSchema} schema
   * @param {{executor?: boolean, client?: string}} [options]
   */
  constructor(schema, options = {}) {
    super();
    this.schema = schema;
    this.options = options;
    /** @type {WebSocket|null} */
    this.ws = null;
    this.connected = false; // handshake done
    this.retries = 0;
    /** @type {Map<string, Set<(m: Message) => void>>} */
    this.handlers = new Map();
    this.closedByUs = false;
  }

  /** Open the socket (again). Same origin: the page's cookie authenticates the handshake. */
  connect() {
    this.closedByUs = false;
    const url = `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/bridge`;
    const ws = new WebSocket(url);
    ws.binaryType = "arraybuffer";
    this.ws = ws;
    ws.addEventListener("open", () => {
      this.sendRaw({
        type: "hello",
        protocol_version: this.schema.protocol_version,
        client: this.options.client || "page",
        user_agent: navigator.userAgent.slice(0, 500),
        webgpu: "gpu" in navigator,
        executor: !!this.options.executor,
      });
    });
    ws.addEventListener("message", (ev) => this.receive(ev.data));
    ws.addEventListener("close", () => {
      const was = this.connected;
      this.connected = false;
      this.ws = null;
      this.emit("connection", { connected: false, was });
      if (this.closedByUs) return;
      const delay = Math.min(5000, 250 * 2 ** this.retries++);
      setTimeout(() => this.connect(), delay);
    });
  }

  close() {
    this.closedByUs = true;
    if (this.ws) this.ws.close(1000);
  }

  /**
   * Subscribe to one message type ("*" for all). Returns an unsubscribe function.
   * @param {string} type
   * @param {(m: Message) => void} fn
   */
  on(type, fn) {
    if (!this.handlers.has(type)) this.handlers.set(type, new Set());
    this.handlers.get(type).add(fn);
    return () => this.handlers.get(type).delete(fn);
  }

  emit(name, detail) {
    this.dispatchEvent(new CustomEvent(name, { detail }));
  }

  /**
   * Send a page message; it is checked against the schema first so a bug shows up here.
   * @param {Message} message
   * @returns {boolean} sent
   */
  send(message) {
    const verdict = validateMessage(this.schema, message, "page");
    if (!verdict.ok) {
      console.error("bridge: not sending an invalid message:", verdict.error, message);
      return false;
    }
    if (!this.connected) return false;
    return this.sendRaw(message);
  }

  sendRaw(message) {
    if (!this.ws || this.ws.readyState !== WebSocket.OPEN) return false;
    this.ws.send(JSON.stringify(message));
    return true;
  }

  /** @param {any} data */
  receive(data) {
    if (data instanceof ArrayBuffer) {
      // binary frames are avatar pixels (companion/avatar/stream.py), for whoever listens
      this.emit("binary", data);
      return;
    }
    if (typeof data !== "string" || data.length > MAX_MESSAGE_CHARS) {
      this.sendRaw({ type: "error", code: typeof data === "string" ? "too_large" : "malformed", message: "unusable frame" });
      return;
    }
    let message;
    try {
      message = JSON.parse(data);
    } catch (e) {
      this.sendRaw({ type: "error", code: "malformed", message: "message is not JSON" });
      return;
    }
    const verdict = validateMessage(this.schema, message, "core");
    if (!verdict.ok) {
      console.warn("bridge:", verdict.error);
      const ref = message && typeof message.type === "string" ? message.type.slice(0, 100) : null;
      if (!(message && message.type === "error")) {
        this.sendRaw({ type: "error", code: verdict.code, message: verdict.error.slice(0, 4000), ref_type: ref });
      }
      return;
    }
    if (message.type === "welcome") {
      this.connected = true;
      this.retries = 0;
      this.emit("connection", { connected: true, welcome: message });
    } else if (message.type === "ping") {
      this.sendRaw({ type: "pong", seq: message.seq, t: message.t });
      return;
    } else if (message.type === "error" && message.code === "protocol_version") {
      this.closedByUs = true; // reconnecting would not help
    }
    for (const key of [message.type, "*"]) {
      for (const fn of this.handlers.get(key) || []) {
        try {
          fn(message);
        } catch (e) {
          console.error(`bridge: handler for ${message.type} failed`, e);
        }
      }
    }
  }
}

/** Load the exported schema (served next to this module). @returns {Promise<BridgeSchema>} */
export async function loadSchema() {
  const response = await fetch(new URL("./bridge-schema.json", import.meta.url), { cache: "no-store" });
  if (!response.ok) throw new Error(`bridge schema: HTTP ${response.status}`);
  return response.json();
}
