// The gateway's public GraphQL API from a browser: queries and mutations over HTTP, subscriptions over
// one websocket speaking graphql-transport-ws (github.com/enisdenjo/graphql-ws, PROTOCOL.md). The
// protocol is small (init/ack, subscribe/next/error/complete, ping/pong), so it is implemented here
// rather than vendored: no build step, nothing loaded from elsewhere.

export class GraphQLRequestError extends Error {
  constructor(message, code, errors) {
    super(message);
    this.name = "GraphQLRequestError";
    this.code = code || "INTERNAL";
    this.errors = errors || [];
  }
}

function errorFrom(errors) {
  const first = errors[0] || {};
  const code = (first.extensions && first.extensions.code) || "INTERNAL";
  return new GraphQLRequestError(errors.map((e) => e.message).join("; "), code, errors);
}

/** POST one operation; resolves with `data`, rejects with a GraphQLRequestError carrying extensions.code. */
export async function request(url, token, query, variables) {
  let response;
  try {
    response = await fetch(url, {
      method: "POST",
      headers: { "Content-Type": "application/json", Authorization: `Bearer ${token}` },
      body: JSON.stringify({ query, variables: variables || {} }),
    });
  } catch (exc) {
    // A refused origin (CORS), a stopped gateway and no network all look the same from here.
    throw new GraphQLRequestError(`Could not reach the gateway at ${url}.`, "NETWORK", []);
  }
  let body;
  try {
    body = await response.json();
  } catch (exc) {
    throw new GraphQLRequestError(`The gateway answered ${response.status} without a GraphQL result.`, "INTERNAL", []);
  }
  if (body.errors && body.errors.length) throw errorFrom(body.errors);
  if (!response.ok) throw new GraphQLRequestError(`The gateway answered ${response.status}.`, "INTERNAL", []);
  return body.data;
}

export function websocketUrl(httpUrl) {
  const url = new URL(httpUrl, window.location.href);
  url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
  url.hash = "";
  return url.toString();
}

// Close codes after which reconnecting cannot help (graphql-transport-ws and RFC 6455).
const FATAL_CLOSES = new Set([4400, 4401, 4403, 4406, 4409, 4429, 1002, 1003]);

/**
 * One websocket for all subscriptions. It connects when the first subscription starts, reconnects
 * with backoff when the connection drops (re-subscribing what is still wanted), and reports its
 * state through onStatus("connecting" | "live" | "reconnecting" | "closed", detail).
 * onReconnect runs after a dropped connection is back, so the page can re-read what it missed.
 */
export class LiveClient {
  constructor(url, token, { onStatus, onReconnect } = {}) {
    this.url = websocketUrl(url);
    this.token = token;
    this.onStatus = onStatus || (() => {});
    this.onReconnect = onReconnect || (() => {});
    this.subs = new Map();
    this.nextId = 1;
    this.socket = null;
    this.acked = false;
    this.attempt = 0;
    this.everConnected = false;
    this.closedForGood = false;
    this.retryTimer = null;
  }

  /** Start a subscription; returns a function that stops it. sink: {next(data), error(err), complete()}. */
  subscribe(query, variables, sink) {
    const id = String(this.nextId++);
    this.subs.set(id, { query, variables: variables || {}, sink, sent: false });
    if (!this.socket && !this.retryTimer) this.connect();
    else if (this.acked) this.send(id);
    return () => {
      const sub = this.subs.get(id);
      if (!sub) return;
      this.subs.delete(id);
      if (sub.sent && this.acked) this.raw({ id, type: "complete" });
    };
  }

  close() {
    this.closedForGood = true;
    clearTimeout(this.retryTimer);
    this.subs.clear();
    if (this.socket) this.socket.close(1000, "done");
    this.socket = null;
    this.onStatus("closed");
  }

  connect() {
    this.retryTimer = null;
    this.acked = false;
    this.onStatus(this.everConnected ? "reconnecting" : "connecting");
    let socket;
    try {
      socket = new WebSocket(this.url, "graphql-transport-ws");
    } catch (exc) {
      this.scheduleRetry();
      return;
    }
    this.socket = socket;
    socket.onopen = () => this.raw({ type: "connection_init", payload: { Authorization: `Bearer ${this.token}` } });
    socket.onmessage = (event) => this.receive(event.data);
    socket.onclose = (event) => {
      if (this.socket !== socket) return;
      this.socket = null;
      this.acked = false;
      for (const sub of this.subs.values()) sub.sent = false;
      if (this.closedForGood) return;
      if (FATAL_CLOSES.has(event.code)) {
        this.onStatus("closed", event.reason || `closed (${event.code})`);
        for (const [id, sub] of this.subs) {
          this.subs.delete(id);
          sub.sink.error(new GraphQLRequestError(event.reason || "The live connection was refused.", "UNAVAILABLE"));
        }
        return;
      }
      this.scheduleRetry();
    };
  }

  scheduleRetry() {
    this.attempt += 1;
    const delay = Math.min(15000, 500 * 2 ** Math.min(this.attempt, 5)) * (0.75 + Math.random() / 2);
    this.onStatus("reconnecting");
    this.retryTimer = setTimeout(() => this.connect(), delay);
  }

  raw(message) {
    if (this.socket && this.socket.readyState === WebSocket.OPEN) this.socket.send(JSON.stringify(message));
  }

  send(id) {
    const sub = this.subs.get(id);
    if (!sub) return;
    sub.sent = true;
    this.raw({ id, type: "subscribe", payload: { query: sub.query, variables: sub.variables } });
  }

  receive(text) {
    let message;
    try {
      message = JSON.parse(text);
    } catch (exc) {
      return;
    }
    switch (message.type) {
      case "connection_ack": {
        this.acked = true;
        const again = this.everConnected;
        this.everConnected = true;
        this.attempt = 0;
        this.onStatus("live");
        for (const id of this.subs.keys()) this.send(id);
        if (again) this.onReconnect();
        break;
      }
      case "ping":
        this.raw({ type: "pong" });
        break;
      case "next": {
        const sub = this.subs.get(message.id);
        if (!sub) break;
        const payload = message.payload || {};
        if (payload.errors && payload.errors.length) {
          this.subs.delete(message.id);
          sub.sink.error(errorFrom(payload.errors));
        } else {
          sub.sink.next(payload.data);
        }
        break;
      }
      case "error": {
        const sub = this.subs.get(message.id);
        if (!sub) break;
        this.subs.delete(message.id);
        sub.sink.error(errorFrom(Array.isArray(message.payload) ? message.payload : [message.payload || {}]));
        break;
      }
      case "complete": {
        const sub = this.subs.get(message.id);
        if (!sub) break;
        this.subs.delete(message.id);
        if (sub.sink.complete) sub.sink.complete();
        break;
      }
      default:
        break;
    }
  }
}
