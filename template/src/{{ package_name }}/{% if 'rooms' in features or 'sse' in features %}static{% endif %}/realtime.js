// Browser client of this service's realtime endpoints: WebSocket rooms and
// Server-Sent Events. One dependency-free ES module; the service serves it at
// /static/realtime.js, or copy it into your own bundle.
//
//   import { Room, EventStream } from "/static/realtime.js";
//   const room = new Room("https://api.example.com", "chat.lobby", {
//     token: () => fetch("/my-token").then((r) => r.text()),
//     onmessage: (data) => console.log(data),
//   });
//   room.send({ text: "hi" });
//
// Both reconnect on their own after a restart or a network failure (jittered
// exponential backoff), renew the token before it expires, and report a
// refusal that retrying cannot fix as a RealtimeError through onerror.

/** Close codes that end a room for good, with the error kind the page gets. Every
 * other code but 1000 (a normal close) reconnects: 1001 (the service restarts),
 * 1006 (a crash or a network failure), 1011, 4000 (idle), 4008 (too slow),
 * 4429 (too many connections, after a longer wait). */
const FATAL_CODES = new Map([
  [1008, "forbidden"],
  [1009, "too_large"],
  [4004, "room_full"],
  [4403, "forbidden"],
]);
const UNAUTHORIZED = 4401;
/** Renew a token this long (ms) before its exp. */
const RENEW_AHEAD_MS = 30_000;

/** A refusal retrying cannot fix: kind is unauthorized, forbidden, room_full or too_large. */
export class RealtimeError extends Error {
  constructor(kind, message, code) {
    super(message);
    this.name = "RealtimeError";
    this.kind = kind;
    this.code = code;
  }
}

/** Milliseconds to wait before attempt `attempt` (0-based): full jitter, capped. */
export function backoffDelay(attempt, initial = 500, max = 30_000) {
  const ceiling = Math.min(max, initial * 2 ** attempt);
  return Math.round(ceiling / 2 + Math.random() * (ceiling / 2));
}

/** The exp claim of a JWT in milliseconds, or null when it cannot be read. */
export function tokenExpiry(token) {
  try {
    const payload = token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
    const exp = JSON.parse(atob(payload.padEnd(Math.ceil(payload.length / 4) * 4, "="))).exp;
    return typeof exp === "number" ? exp * 1000 : null;
  } catch {
    return null;
  }
}

async function resolveToken(token) {
  return typeof token === "function" ? await token() : token;
}

class Reconnecting {
  constructor(options) {
    this.options = options;
    this.attempt = 0;
    this.closed = false;
    this.timer = null;
    this.renewTimer = null;
    this.state = "idle";
  }

  setState(state) {
    if (state !== this.state) {
      this.state = state;
      this.options.onstate?.(state);
    }
  }

  /** The token for the next connection; undefined when closed or when a retry was scheduled. */
  async begin() {
    if (this.closed) return undefined;
    this.setState(this.attempt === 0 ? "connecting" : "reconnecting");
    try {
      return (await resolveToken(this.options.token)) ?? null;
    } catch {
      this.retry();
      return undefined;
    }
  }

  fail(error) {
    this.close();
    this.options.onerror?.(error);
  }

  retry(extraDelay = 0) {
    if (this.closed) return;
    this.setState("reconnecting");
    const { backoff = {} } = this.options;
    const delay = backoffDelay(this.attempt++, backoff.initial, backoff.max) + extraDelay;
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.open(), delay);
  }

  scheduleRenewal(token, renew) {
    clearTimeout(this.renewTimer);
    const expiry = tokenExpiry(token);
    // Only a supplier can give a new token; a fixed string expires as it is.
    if (expiry === null || typeof this.options.token !== "function") return;
    const wait = Math.max(1_000, expiry - Date.now() - RENEW_AHEAD_MS);
    this.renewTimer = setTimeout(renew, wait);
  }

  close() {
    this.closed = true;
    clearTimeout(this.timer);
    clearTimeout(this.renewTimer);
    this.setState("closed");
  }
}

/** A member of one room: send and receive messages; reconnects by itself. */
export class Room extends Reconnecting {
  constructor(baseUrl, room, options = {}) {
    super(options);
    this.url = `${baseUrl.replace(/^http/, "ws").replace(/\/$/, "")}/ws/${encodeURIComponent(room)}`;
    this.room = room;
    this.socket = null;
    this.pending = [];
    this.retriedUnauthorized = false;
    this.open();
  }

  async open() {
    const token = await this.begin();
    if (token === undefined) return;
    const protocols = token ? ["bearer", `bearer.${token}`] : [];
    const WebSocketImpl = this.options.WebSocket ?? globalThis.WebSocket;
    const socket = new WebSocketImpl(this.url, protocols);
    this.socket = socket;
    socket.onopen = () => {
      this.attempt = 0;
      this.retriedUnauthorized = false;
      this.setState("open");
      for (const frame of this.pending.splice(0)) socket.send(frame);
      if (token) this.scheduleRenewal(token, () => this.renew());
    };
    socket.onmessage = (event) => this.receive(event.data);
    socket.onclose = (event) => this.closedWith(socket, event.code, event.reason);
  }

  receive(text) {
    let frame;
    try {
      frame = JSON.parse(text);
    } catch {
      return;
    }
    if (frame.type === "message") {
      this.options.onmessage?.(frame.data, frame);
    } else if (frame.type === "batch") {
      for (const message of frame.messages) this.options.onmessage?.(message.data, message);
    } else if (frame.type === "error") {
      this.options.onerror?.(new RealtimeError(frame.error, frame.detail, null));
    }
  }

  closedWith(socket, code, reason) {
    if (socket !== this.socket || this.closed) return;
    this.socket = null;
    clearTimeout(this.renewTimer);
    if (FATAL_CODES.has(code)) {
      this.fail(new RealtimeError(FATAL_CODES.get(code), reason || `closed with ${code}`, code));
    } else if (code === UNAUTHORIZED) {
      // Once with a fresh token from the supplier; twice in a row is a refusal.
      if (typeof this.options.token === "function" && !this.retriedUnauthorized) {
        this.retriedUnauthorized = true;
        this.retry();
      } else {
        this.fail(new RealtimeError("unauthorized", reason || "token refused", code));
      }
    } else if (code !== 1000) {
      this.retriedUnauthorized = false;
      // Over the connection limit: give the other connections time to end.
      this.retry(code === 4429 ? 5_000 : 0);
    } else {
      this.close();
    }
  }

  async renew() {
    const socket = this.socket;
    if (!socket || socket.readyState !== 1) return;
    try {
      const token = await resolveToken(this.options.token);
      socket.send(JSON.stringify({ type: "auth", token }));
      this.scheduleRenewal(token, () => this.renew());
    } catch {
      // The close at exp (4401) reconnects with whatever the supplier gives then.
    }
  }

  /** Publish `data` to the room (queued while reconnecting). */
  send(data) {
    const frame = JSON.stringify({ type: "message", data });
    if (this.socket?.readyState === 1) this.socket.send(frame);
    else if (!this.closed) this.pending.push(frame);
  }

  close() {
    super.close();
    this.socket?.close(1000);
    this.socket = null;
  }
}

/** An event stream: the chosen event types, resumed after every reconnect. */
export class EventStream extends Reconnecting {
  constructor(baseUrl, options = {}) {
    super(options);
    if (!options.types?.length) throw new TypeError("EventStream needs the event types to listen to");
    this.baseUrl = baseUrl.replace(/\/$/, "");
    this.lastEventId = options.lastEventId ?? null;
    this.source = null;
    this.open();
  }

  async open() {
    const token = await this.begin();
    if (token === undefined) return;
    const params = new URLSearchParams({ topics: this.options.types.join(",") });
    if (token) params.set("access_token", token);
    // A new EventSource starts from the last id seen: nothing is lost, nothing repeats.
    if (this.lastEventId) params.set("last_event_id", this.lastEventId);
    const EventSourceImpl = this.options.EventSource ?? globalThis.EventSource;
    const source = new EventSourceImpl(`${this.baseUrl}/sse/stream?${params}`);
    this.source = source;
    source.onopen = () => {
      this.attempt = 0;
      this.setState("open");
      if (token) this.scheduleRenewal(token, () => this.reopen());
    };
    for (const type of this.options.types) {
      source.addEventListener(type, (event) => this.deliver(type, event));
    }
    source.addEventListener("resync", (event) => {
      this.lastEventId = event.lastEventId || this.lastEventId;
      let info = {};
      try {
        info = JSON.parse(event.data);
      } catch {
        // A resync without a body still means: reload your state.
      }
      this.options.onresync?.(info);
    });
    source.onerror = () => {
      // CONNECTING: the browser retries by itself. CLOSED: it gave up for good
      // (a proxy's 502, a 401 after expiry); start a new one from the last id.
      if (source === this.source && source.readyState === 2) {
        source.close();
        this.source = null;
        this.retry();
      } else if (source === this.source) {
        this.setState("reconnecting");
      }
    };
  }

  deliver(type, event) {
    if (event.lastEventId) this.lastEventId = event.lastEventId;
    let data = event.data;
    try {
      data = JSON.parse(event.data);
    } catch {
      // Not JSON: hand over the text as it came.
    }
    this.options.onevent?.(type, data, event.lastEventId);
  }

  reopen() {
    // A stream cannot change its token: a new one replaces it from the last id.
    this.source?.close();
    this.source = null;
    this.open();
  }

  close() {
    super.close();
    this.source?.close();
    this.source = null;
  }
}
