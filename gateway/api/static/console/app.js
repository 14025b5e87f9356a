// Settings > Integrations: the reference frontend for docs/reference/help-configuring-sync-settings.txt,
// built only on the gateway's public GraphQL API. It reads the state once over HTTP, then keeps it
// live from subscriptions (integrationEvents for every card, syncProgress for a running sync); it
// never polls. Live changes patch the elements they concern, so a section the merchant opened or a
// form they are typing in is never rebuilt under them.

import { GraphQLRequestError, LiveClient, request } from "./gql.js";
import {
  FINISHED,
  FREQUENCIES,
  KIND_WORDS,
  MODES,
  RUN_WORDS,
  STATUS_WORDS,
  TRIGGER_WORDS,
  duration,
  fill,
  fmt,
  h,
  plural,
  setText,
  setTime,
  showValue,
  tickTimes,
  timeEl,
  uid,
} from "./ui.js";

const meta = document.querySelector('meta[name="alana-graphql-url"]');
const API = meta && meta.content ? meta.content : new URL("/graphql", window.location.href).toString();
const TOKEN_KEY = "alana.gateway.token";

// ---- operations -----------------------------------------------------------------------------------
const RUN = `id integrationId status trigger kind reused queuedAt startedAt finishedAt failure
  progress { runId status processed total percent message }
  summary { added updated unchanged removed failed conflicts }`;
const HEALTH = "status reason action lastSyncAt nextSyncAt";
const INTEGRATION = `id platform name storeUrl createdAt settings { mode frequency } health { ${HEALTH} }
  productCount pendingChanges apiCallsLast24h currentRun { ${RUN} } syncRuns(first: 10) { ${RUN} }`;
const CONFLICT = "id integrationId productId field storeValue alanaValue detectedAt status runId";
const ACTIVITY = "id integrationId at kind message runId productId conflictId";
const EVENTS = `subscription Events { integrationEvents { integrationId at kind productId
  run { ${RUN} } health { ${HEALTH} } conflict { ${CONFLICT} } } }`;
const PROGRESS = `subscription Progress($runId: ID!) { syncProgress(runId: $runId) {
  runId status processed total percent message } }`;
const CAPABILITIES = `query Capabilities {
  platformInfo: __type(name: "PlatformInfo") { fields { name } }
  mutation: __type(name: "Mutation") { fields { name args { name } } }
  query: __type(name: "Query") { fields { name } } }`;

// ---- state ----------------------------------------------------------------------------------------
const state = {
  token: null,
  account: null,
  live: null,
  caps: { connectMethods: false, beginConnect: false, reconnectIntegration: false, reconnectWithKeys: false, claimInstall: false, connectAttempt: false },
  platforms: new Map(),
  cards: new Map(),
  activity: null,
  connect: null,
};

function api(query, variables) {
  return request(API, state.token, query, variables).catch((exc) => {
    if (exc instanceof GraphQLRequestError && exc.code === "UNAUTHENTICATED") signOut(exc.message);
    throw exc;
  });
}

// ---- notices --------------------------------------------------------------------------------------
function notice(text, kind = "info") {
  const box = document.getElementById("notices");
  const item = h(
    "div",
    { class: `notice ${kind}`, role: kind === "error" ? "alert" : null },
    h("p", { text }),
    h("button", { type: "button", class: "link", onclick: () => item.remove(), text: "Dismiss" }),
  );
  box.prepend(item);
  while (box.children.length > 3) box.lastElementChild.remove();
  // Confirmations fade out on their own; errors stay until dismissed.
  if (kind !== "error") setTimeout(() => item.remove(), 12000);
  return item;
}

function explain(exc) {
  if (exc instanceof GraphQLRequestError) return exc.message;
  return String((exc && exc.message) || exc);
}

/** Run an action from a button: disabled while it runs, errors shown next to it and announced. */
async function busy(button, work, errorBox) {
  if (button.disabled) return undefined;
  button.disabled = true;
  button.setAttribute("aria-busy", "true");
  if (errorBox) fill(errorBox);
  try {
    return await work();
  } catch (exc) {
    if (errorBox) fill(errorBox, h("p", { class: "error-text", role: "alert", text: explain(exc) }));
    else notice(explain(exc), "error");
    return undefined;
  } finally {
    button.disabled = false;
    button.removeAttribute("aria-busy");
  }
}

// ---- dialogs --------------------------------------------------------------------------------------
function dialog(title, body, { onClose } = {}) {
  const titleId = uid("dialog-title");
  const el = h(
    "dialog",
    { class: "dialog", "aria-labelledby": titleId },
    h(
      "div",
      { class: "dialog-head" },
      h("h2", { id: titleId, text: title }),
      h("button", { type: "button", class: "icon", "aria-label": "Close", onclick: () => el.close(), text: "×" }),
    ),
    body,
  );
  el.addEventListener("close", () => {
    if (el.opener && el.opener.isConnected) el.opener.focus();
    if (onClose) onClose();
  });
  document.body.append(el);
  return el;
}

function openDialog(el, opener) {
  el.opener = opener || document.activeElement;
  el.showModal();
  const first = el.querySelector("[autofocus], input:not([type=hidden]):not([disabled]), select, textarea, button.primary");
  if (first) first.focus();
}

// ---- sign in --------------------------------------------------------------------------------------
function accountOf(token) {
  try {
    const payload = JSON.parse(atob(token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/")));
    return { id: payload.account_id || null, exp: payload.exp ? payload.exp * 1000 : null };
  } catch (exc) {
    return { id: null, exp: null };
  }
}

function showSignIn(message) {
  const main = document.getElementById("main");
  document.getElementById("loading")?.remove();
  let section = document.getElementById("signin");
  if (!section) {
    const input = h("input", {
      id: "token",
      name: "token",
      type: "password",
      autocomplete: "off",
      spellcheck: "false",
      required: true,
      "aria-describedby": "token-hint signin-error",
    });
    const form = h(
      "form",
      { class: "signin-form" },
      h("label", { for: "token", text: "API token" }),
      input,
      h("p", { id: "token-hint", class: "hint" }, "The demo prints a token when it starts; elsewhere run ", h("code", { text: "alana-gateway token --account ID" }), "."),
      h("div", { id: "signin-error" }),
      h("button", { type: "submit", class: "primary", text: "Sign in" }),
    );
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      const token = input.value.trim().replace(/^Bearer\s+/i, "");
      if (!token) return;
      sessionStorage.setItem(TOKEN_KEY, token);
      section.remove();
      start(token);
    });
    section = h("section", { id: "signin", class: "panel", "aria-labelledby": "signin-title" }, h("h2", { id: "signin-title", text: "Sign in" }), form);
    main.append(section);
  }
  fill(document.getElementById("signin-error"), message ? h("p", { class: "error-text", role: "alert", text: message }) : null);
  fill(document.getElementById("session"));
  document.getElementById("token").focus();
}

function signOut(message) {
  sessionStorage.removeItem(TOKEN_KEY);
  if (state.live) state.live.close();
  state.live = null;
  state.token = null;
  for (const card of state.cards.values()) card.destroy();
  state.cards.clear();
  document.getElementById("integrations")?.remove();
  showSignIn(message);
}

function renderSession() {
  const liveText = h("span", { id: "live-status", class: "live", text: "Connecting…" });
  fill(
    document.getElementById("session"),
    h("span", { class: "account" }, "Account ", h("strong", { text: state.account || "?" })),
    liveText,
    h("a", { href: new URL("/graphql", API).toString(), text: "GraphQL explorer" }),
    h("button", { type: "button", class: "link", onclick: () => signOut(), text: "Sign out" }),
  );
}

function setLiveStatus(status, detail) {
  const el = document.getElementById("live-status");
  if (!el) return;
  const words = { connecting: "Connecting…", live: "Live", reconnecting: "Reconnecting…", closed: "Live updates off" };
  setText(el, words[status] || status);
  el.dataset.state = status;
  el.title = detail || (status === "live" ? "Changes appear here as they happen." : "");
}

// ---- start ----------------------------------------------------------------------------------------
async function start(token) {
  state.token = token;
  const who = accountOf(token);
  state.account = who.id;
  if (who.exp && who.exp < Date.now()) {
    signOut("That token has expired. Ask for a new one.");
    return;
  }
  const loading = document.getElementById("loading") || h("p", { id: "loading", class: "muted", text: "Loading…" });
  document.getElementById("main").append(loading);
  let data;
  try {
    await detectCapabilities();
    const platformFields = `id name capabilities credentialFields { name label secret required }${state.caps.connectMethods ? " connectMethods" : ""}`;
    data = await api(`query Page { platforms { ${platformFields} } integrations { ${INTEGRATION} }
      conflicts(status: STORE_WON, first: 100) { edges { node { ${CONFLICT} } } } }`);
  } catch (exc) {
    loading.remove();
    if (exc.code === "UNAUTHENTICATED") return;
    const retry = h("button", { type: "button", onclick: () => { box.remove(); start(token); }, text: "Try again" });
    const leave = h("button", { type: "button", class: "link", onclick: () => { box.remove(); signOut(); }, text: "Sign out" });
    const apiOrigin = new URL(API).origin;
    const hint =
      exc.code === "NETWORK" && apiOrigin !== window.location.origin
        ? h("p", { class: "hint", text: `This page is on ${window.location.origin}: the gateway answers it only if that origin is in its GATEWAY_ALLOWED_ORIGINS.` })
        : null;
    const box = h("div", { class: "panel error-panel", role: "alert" }, h("p", { text: explain(exc) }), hint, h("div", { class: "buttons" }, retry, leave));
    document.getElementById("main").append(box);
    return;
  }
  loading.remove();
  renderSession();
  for (const p of data.platforms) state.platforms.set(p.id, p);
  renderShell();
  for (const integration of data.integrations) addCard(integration);
  const conflicts = data.conflicts.edges.map((e) => e.node);
  for (const card of state.cards.values()) card.setConflicts(conflicts.filter((c) => c.integrationId === card.id));
  updateEmpty();
  state.live = new LiveClient(API, token, { onStatus: setLiveStatus, onReconnect: resync });
  state.live.subscribe(EVENTS, {}, {
    next: (d) => onEvent(d.integrationEvents),
    error: (exc) => {
      setLiveStatus("closed", explain(exc));
      notice(`Live updates stopped: ${explain(exc)}`, "error");
    },
  });
  for (const card of state.cards.values()) card.followCurrent();
  handleReturnParameters();
}

async function detectCapabilities() {
  // The install flow (beginConnect, connectMethods, ...) is newer than pasted keys: ask the schema once
  // which of it this gateway has, and offer exactly that.
  try {
    const d = await api(CAPABILITIES);
    const names = (t) => new Set(((t && t.fields) || []).map((f) => f.name));
    const platform = names(d.platformInfo);
    const mutation = names(d.mutation);
    const query = names(d.query);
    const reconnectField = ((d.mutation && d.mutation.fields) || []).find((f) => f.name === "reconnectIntegration");
    state.caps = {
      connectMethods: platform.has("connectMethods"),
      beginConnect: mutation.has("beginConnect"),
      reconnectIntegration: mutation.has("reconnectIntegration"),
      // Pasted keys for a reconnect (platforms without an install flow here).
      reconnectWithKeys: Boolean(reconnectField && (reconnectField.args || []).some((a) => a.name === "credentials")),
      claimInstall: mutation.has("claimInstall"),
      connectAttempt: query.has("connectAttempt"),
    };
  } catch (exc) {
    if (exc.code === "UNAUTHENTICATED") throw exc;
    // Introspection switched off: pasted keys only, which every gateway has.
  }
}

function renderShell() {
  const connectButton = h("button", { type: "button", class: "primary", onclick: (e) => openConnect(e.currentTarget), text: "Connect a store" });
  const section = h(
    "section",
    { id: "integrations", "aria-labelledby": "stores-title" },
    h("div", { class: "toolbar" }, h("h2", { id: "stores-title", text: "Your stores" }), connectButton),
    h("p", { id: "empty", class: "panel empty", hidden: true, text: "No store is connected yet. Click Connect a store to begin." }),
    h("div", { id: "cards", class: "cards" }),
  );
  document.getElementById("main").append(section);
  state.activity = new ActivityLog(null, "All activity");
  section.append(h("div", { class: "panel global-activity" }, state.activity.el));
}

function updateEmpty() {
  const empty = document.getElementById("empty");
  if (empty) empty.hidden = state.cards.size > 0;
}

function addCard(integration) {
  if (state.cards.has(integration.id)) {
    state.cards.get(integration.id).update(integration);
    return state.cards.get(integration.id);
  }
  const card = new Card(integration);
  state.cards.set(integration.id, card);
  document.getElementById("cards").append(card.el);
  updateEmpty();
  return card;
}

function removeCard(id) {
  const card = state.cards.get(id);
  if (!card) return;
  card.destroy();
  card.el.remove();
  state.cards.delete(id);
  updateEmpty();
}

/** After the live connection came back: read everything once more and patch it in. */
async function resync() {
  try {
    const data = await api(`query Resync { integrations { ${INTEGRATION} }
      conflicts(status: STORE_WON, first: 100) { edges { node { ${CONFLICT} } } } }`);
    const seen = new Set();
    for (const integration of data.integrations) {
      seen.add(integration.id);
      addCard(integration).followCurrent();
    }
    for (const id of [...state.cards.keys()]) if (!seen.has(id)) removeCard(id);
    const conflicts = data.conflicts.edges.map((e) => e.node);
    for (const card of state.cards.values()) card.mergeConflicts(conflicts.filter((c) => c.integrationId === card.id));
    state.activity.refresh();
  } catch (exc) {
    notice(`Could not refresh after reconnecting: ${explain(exc)}`, "error");
  }
}

const pendingAdds = new Set();
async function fetchNewIntegration(id) {
  if (pendingAdds.has(id)) return;
  pendingAdds.add(id);
  try {
    const d = await api(`query One($id: ID!) { integration(id: $id) { ${INTEGRATION} } }`, { id });
    if (d.integration) addCard(d.integration).followCurrent();
  } catch (exc) {
    // NOT_FOUND: it was disconnected meanwhile.
  } finally {
    pendingAdds.delete(id);
  }
}

function onEvent(event) {
  if (!event) return;
  if (!event.integrationId) return; // a connect attempt that created no integration (CONNECT_FINISHED, FAILED)
  const card = state.cards.get(event.integrationId);
  if (!card) {
    fetchNewIntegration(event.integrationId);
    return;
  }
  card.onEvent(event);
  state.activity.stale();
}

// ---- a store's card --------------------------------------------------------------------------------
class Card {
  constructor(integration) {
    this.id = integration.id;
    this.data = integration;
    this.runs = new Map();
    this.conflicts = new Map();
    this.following = null;
    this.stopProgress = null;
    this.finished = new Set();
    this.refreshTimer = null;
    this.settingsDialog = null;
    this.disconnectDialog = null;
    this.build();
    this.update(integration);
  }

  get platformName() {
    const p = state.platforms.get(this.data.platform);
    return p ? p.name : this.data.platform;
  }

  build() {
    const titleId = uid("card-title");
    this.title = h("h3", { id: titleId });
    this.metaLine = h("p", { class: "meta" });
    this.gear = h(
      "button",
      { type: "button", class: "gear", onclick: (e) => this.openSettings(e.currentTarget) },
      h("span", { "aria-hidden": "true", class: "gear-icon", text: "⚙" }),
      h("span", { text: " Settings" }),
    );
    this.light = h("span", { class: "light", "aria-hidden": "true" });
    this.statusWord = h("strong", { class: "status-word" });
    this.reason = h("p", { class: "reason" });
    this.action = h("div", { class: "action" });
    this.facts = {
      last: h("dd"),
      next: h("dd"),
      products: h("dd"),
      pending: h("dd"),
      calls: h("dd"),
      mode: h("dd"),
    };
    const fact = (label, dd) => h("div", { class: "fact" }, h("dt", { text: label }), dd);
    this.syncButton = h("button", { type: "button", class: "primary", onclick: (e) => this.syncNow(e.currentTarget), text: "Sync Now" });
    this.cancelButton = h("button", { type: "button", hidden: true, onclick: (e) => this.cancel(e.currentTarget), text: "Cancel sync" });
    this.syncError = h("div", { class: "inline-error" });
    this.runTitle = h("p", { class: "run-title" });
    this.bar = h("progress", { max: "100", value: "0", "aria-label": "Sync progress" });
    this.runText = h("p", { class: "run-text" });
    this.runStatus = h("p", { class: "sr-only", role: "status", "aria-live": "polite" });
    this.runBox = h("div", { class: "run", hidden: true }, this.runTitle, this.bar, this.runText, this.runStatus);
    this.summaryBox = h("div", { class: "summary", hidden: true });
    this.conflictCount = h("span", { class: "badge" });
    this.historyList = h("ol", { class: "history" });
    this.historyEmpty = h("p", { class: "muted", text: "No syncs yet." });
    this.conflictList = h("ul", { class: "conflict-list" });
    this.conflictEmpty = h("p", { class: "muted", text: "No conflicts: nothing Alana changed was overwritten by your store." });
    this.activity = new ActivityLog(this.id, "Activity log");
    this.conflictsDetails = h(
      "details",
      { class: "section conflicts" },
      h("summary", {}, "Conflicts ", this.conflictCount),
      h("p", { class: "hint", text: "When your store and Alana change the same product, your store wins. You can re-apply Alana's change." }),
      this.conflictEmpty,
      this.conflictList,
    );
    this.el = h(
      "article",
      { class: "card", "aria-labelledby": titleId, dataset: { integrationId: this.id } },
      h("header", { class: "card-head" }, h("div", {}, this.title, this.metaLine), this.gear),
      h("div", { class: "status" }, h("p", { class: "status-line" }, this.light, this.statusWord), this.reason, this.action),
      h(
        "dl",
        { class: "facts" },
        fact("Last sync", this.facts.last),
        fact("Next scheduled sync", this.facts.next),
        fact("Products", this.facts.products),
        fact("Pending changes", this.facts.pending),
        fact("API calls (24 h)", this.facts.calls),
        fact("Sync mode", this.facts.mode),
      ),
      h("div", { class: "buttons" }, this.syncButton, this.cancelButton),
      this.syncError,
      this.runBox,
      this.summaryBox,
      this.buildProductsSection(),
      h("details", { class: "section history-section" }, h("summary", { text: "Sync history" }), this.historyEmpty, this.historyList),
      this.conflictsDetails,
      this.activity.el,
      h(
        "footer",
        { class: "card-foot" },
        h("button", { type: "button", class: "danger", onclick: (e) => this.confirmDisconnect(e.currentTarget), text: "Disconnect" }),
      ),
    );
  }

  buildProductsSection() {
    const idsId = uid("ids");
    const hintId = uid("ids-hint");
    this.idsInput = h("input", { id: idsId, name: "productIds", type: "text", inputmode: "text", autocomplete: "off", "aria-describedby": hintId });
    const error = h("div", { class: "inline-error" });
    const submit = h("button", { type: "submit", text: "Sync these products" });
    const form = h(
      "form",
      { class: "products-form" },
      h("label", { for: idsId, text: "Store product IDs" }),
      this.idsInput,
      h("p", { id: hintId, class: "hint", text: "The IDs your store gives its products, separated by commas or spaces. Only these products are fetched and updated." }),
      submit,
      error,
    );
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      const ids = this.idsInput.value.split(/[\s,;]+/).map((s) => s.trim()).filter(Boolean);
      if (!ids.length) {
        fill(error, h("p", { class: "error-text", role: "alert", text: "Enter at least one product ID." }));
        this.idsInput.focus();
        return;
      }
      busy(submit, async () => {
        const d = await api(`mutation SyncSome($id: ID!, $ids: [String!]) { syncNow(integrationId: $id, productExternalIds: $ids) { ${RUN} } }`, { id: this.id, ids });
        this.idsInput.value = "";
        this.follow(d.syncNow);
        notice(d.syncNow.reused
          ? `A sync of ${this.data.name} was already running: it is shown instead. Try the products again when it ends.`
          : `Syncing ${plural(ids.length, "product")} from ${this.data.name}.`);
      }, error);
    });
    // Finding a product's store ID: search the synced products by title or SKU.
    const searchId = uid("search");
    const searchInput = h("input", { id: searchId, type: "search", autocomplete: "off" });
    const results = h("ul", { class: "search-results" });
    const searchButton = h("button", { type: "submit", text: "Find" });
    const searchForm = h("form", { class: "search-form", role: "search" }, h("label", { for: searchId, text: "Find products by title" }), h("div", { class: "row" }, searchInput, searchButton));
    searchForm.addEventListener("submit", (event) => {
      event.preventDefault();
      busy(searchButton, async () => {
        const d = await api(`query Find($id: ID, $q: String) { products(integrationId: $id, search: $q, first: 10) { edges { node { id externalId title } } } }`, { id: this.id, q: searchInput.value.trim() || null });
        const found = d.products.edges.map((e) => e.node);
        fill(
          results,
          found.length
            ? found.map((p) =>
                h(
                  "li",
                  {},
                  h("span", {}, p.title, " ", h("span", { class: "muted", text: `(ID ${p.externalId})` })),
                  h("button", {
                    type: "button",
                    class: "small",
                    "aria-label": `Add ${p.title} (ID ${p.externalId})`,
                    onclick: () => {
                      const current = this.idsInput.value.split(/[\s,;]+/).filter(Boolean);
                      if (!current.includes(p.externalId)) current.push(p.externalId);
                      this.idsInput.value = current.join(", ");
                    },
                    text: "Add",
                  }),
                ),
              )
            : h("li", { class: "muted", text: "No product matches." }),
        );
      }, results);
    });
    return h("details", { class: "section products-section" }, h("summary", { text: "Sync specific products" }), form, searchForm, results);
  }

  // ---- whole-integration updates ----------------------------------------------------------------
  update(integration) {
    this.data = { ...this.data, ...integration };
    const d = this.data;
    setText(this.title, d.name);
    setText(this.metaLine, `${this.platformName} · ${d.storeUrl}`);
    this.bar.setAttribute("aria-label", `Sync progress of ${d.name}`);
    this.gear.setAttribute("aria-label", `Sync settings for ${d.name}`);
    if (d.health) this.setHealth(d.health);
    if (d.productCount !== undefined) setText(this.facts.products, fmt(d.productCount));
    if (d.pendingChanges !== undefined) setText(this.facts.pending, fmt(d.pendingChanges));
    if (d.apiCallsLast24h !== undefined) setText(this.facts.calls, fmt(d.apiCallsLast24h));
    if (d.settings) this.setSettings(d.settings);
    if (integration.syncRuns) {
      for (const run of [...integration.syncRuns].reverse()) this.upsertRun(run);
      const lastDone = integration.syncRuns.find((r) => FINISHED.has(r.status) && r.kind !== "DIGEST");
      if (lastDone && !this.following && this.summaryBox.hidden) this.showSummary(lastDone, true);
    }
    if ("currentRun" in integration) {
      this.cancelButton.hidden = !integration.currentRun;
      if (integration.currentRun) this.upsertRun(integration.currentRun);
    }
  }

  setSettings(settings) {
    this.data.settings = settings;
    const mode = MODES[settings.mode] ? MODES[settings.mode].label : settings.mode;
    const freq = FREQUENCIES[settings.frequency] ? FREQUENCIES[settings.frequency].label : settings.frequency;
    setText(this.facts.mode, settings.mode === "MANUAL" ? mode : `${mode} · ${freq.toLowerCase()}`);
    this.setNext();
  }

  setNext() {
    const health = this.data.health || {};
    if (this.data.settings && this.data.settings.mode === "MANUAL") {
      fill(this.facts.next, h("span", { class: "muted", title: "In manual mode products sync when you click Sync Now.", text: "None (manual mode)" }));
    } else {
      setTime(this.facts.next, health.nextSyncAt, "not scheduled");
    }
  }

  setHealth(health) {
    this.data.health = { ...(this.data.health || {}), ...health };
    const hl = this.data.health;
    this.el.dataset.status = hl.status;
    this.light.dataset.status = hl.status;
    setText(this.statusWord, STATUS_WORDS[hl.status] || hl.status);
    setText(this.reason, hl.reason || "Everything is working.");
    setTime(this.facts.last, hl.lastSyncAt, "never");
    this.setNext();
    this.renderAction(hl.status === "GREEN" ? null : hl.action);
  }

  renderAction(action) {
    if (this.action.dataset.action === (action || "")) return;
    this.action.dataset.action = action || "";
    const name = this.data.name;
    const button = (text, onclick, label) => h("button", { type: "button", class: "primary action-button", "aria-label": label || null, onclick, text });
    let content = null;
    switch (action) {
      case "SYNC_NOW":
        content = button("Sync Now to apply them", (e) => this.syncNow(e.currentTarget), `Sync Now to apply waiting changes to ${name}`);
        break;
      case "RETRY":
        content = button("Retry sync", (e) => this.syncNow(e.currentTarget), `Retry the sync of ${name}`);
        break;
      case "RECONNECT":
        content = button("Reconnect", (e) => this.reconnect(e.currentTarget), `Reconnect ${name}`);
        break;
      case "REREGISTER_WEBHOOKS":
        content = h("p", { class: "hint", text: "Alana keeps trying to restore real-time notifications. Until then, scheduled syncs and Sync Now bring your changes in." });
        break;
      case "WAIT":
        content = h("p", { class: "hint", text: "Alana is working on it; nothing for you to do." });
        break;
      case "CONTACT_SUPPORT":
        content = h("p", { class: "hint", text: "This needs our help: please contact Alana support." });
        break;
      default:
        content = null;
    }
    fill(this.action, content);
  }

  scheduleRefresh(delay = 600) {
    // Counts and health after something happened: event-driven, at most one read in flight, and one
    // more after it when something happened meanwhile (so the last word is always read).
    this.refreshWanted = true;
    if (this.refreshTimer || this.refreshing) return;
    this.refreshTimer = setTimeout(() => this.refresh(), delay);
  }

  async refresh() {
    this.refreshTimer = null;
    this.refreshWanted = false;
    this.refreshing = true;
    try {
      // The newest runs too: the hour's digest of store notifications grows without run events of its own.
      const d = await api(`query Counts($id: ID!) { integration(id: $id) { id productCount pendingChanges apiCallsLast24h health { ${HEALTH} } currentRun { ${RUN} } syncRuns(first: 3) { ${RUN} } } }`, { id: this.id });
      if (d.integration) {
        this.update(d.integration);
        if (d.integration.currentRun) this.follow(d.integration.currentRun);
      }
    } catch (exc) {
      if (exc.code === "NOT_FOUND") removeCard(this.id);
    } finally {
      this.refreshing = false;
    }
    if (this.refreshWanted && state.cards.get(this.id) === this) this.scheduleRefresh(300);
  }

  onEvent(event) {
    switch (event.kind) {
      case "HEALTH_CHANGED":
        if (event.health) this.setHealth(event.health);
        break;
      case "RUN_QUEUED":
      case "RUN_STARTED":
        if (event.run) {
          this.upsertRun(event.run);
          this.follow(event.run);
        }
        this.scheduleRefresh();
        break;
      case "RUN_PROGRESS":
        if (event.run) {
          this.upsertRun(event.run);
          if (this.following === event.run.id) this.showProgress(event.run.progress);
          else this.follow(event.run);
        }
        break;
      case "RUN_FINISHED":
        if (event.run) {
          this.upsertRun(event.run);
          if (event.run.progress) this.showProgress({ ...event.run.progress, status: event.run.status });
          this.finish(event.run.id);
        }
        this.scheduleRefresh();
        break;
      case "CONFLICT":
        if (event.conflict) this.addConflict(event.conflict, true);
        break;
      case "PRODUCT_CHANGED":
        this.scheduleRefresh(1500);
        break;
      default:
        this.scheduleRefresh();
    }
    this.activity.stale();
  }

  // ---- runs and progress --------------------------------------------------------------------------
  followCurrent() {
    if (this.data.currentRun) this.follow(this.data.currentRun);
  }

  follow(run) {
    if (!run) return;
    this.upsertRun(run);
    this.cancelButton.hidden = FINISHED.has(run.status);
    if (this.following === run.id) return;
    if (this.finished.has(run.id)) return;
    if (this.stopProgress) this.stopProgress();
    this.following = run.id;
    this.summaryBox.hidden = true;
    this.runBox.hidden = false;
    const trigger = TRIGGER_WORDS[run.trigger] || run.trigger;
    const kind = KIND_WORDS[run.kind] ? `, ${KIND_WORDS[run.kind]}` : "";
    setText(this.runTitle, `${trigger}${kind}`);
    this.showProgress(run.progress || { runId: run.id, status: run.status, processed: 0 });
    if (FINISHED.has(run.status)) {
      this.finish(run.id);
      return;
    }
    if (!state.live) return;
    this.stopProgress = state.live.subscribe(PROGRESS, { runId: run.id }, {
      next: (d) => {
        const p = d.syncProgress;
        if (p.runId !== this.following) return;
        this.showProgress(p);
        if (FINISHED.has(p.status)) this.finish(p.runId);
      },
      error: () => this.finish(run.id),
      complete: () => this.finish(run.id),
    });
  }

  showProgress(p) {
    if (!p || p.runId !== this.following) return;
    const last = this.lastProgress && this.lastProgress.runId === p.runId ? this.lastProgress : null;
    // Events and the progress subscription can cross: never move the bar backwards within a run.
    if (last && FINISHED.has(last.status) && !FINISHED.has(p.status)) return;
    if (last && !FINISHED.has(p.status) && p.processed < last.processed) return;
    this.lastProgress = p;
    const done = p.status === "SUCCEEDED";
    const percent = done ? 100 : p.percent;
    if (percent === null || percent === undefined) {
      if (p.status === "RUNNING" || p.status === "QUEUED") this.bar.removeAttribute("value");
      else this.bar.value = 0;
    } else {
      this.bar.value = Math.max(0, Math.min(100, Math.round(percent)));
    }
    this.bar.dataset.status = p.status;
    this.bar.setAttribute("aria-valuetext", this.progressWords(p, percent));
    // The gateway's message often repeats the count; show it only when it says something more.
    const extra = p.message && !p.message.includes(String(p.processed)) && !p.message.includes(fmt(p.processed));
    setText(this.runText, this.progressWords(p, percent) + (extra ? ` · ${p.message}` : ""));
    if (this.runStatus.dataset.status !== p.status) {
      this.runStatus.dataset.status = p.status;
      setText(this.runStatus, `${this.data.name}: sync ${RUN_WORDS[p.status].toLowerCase()}`);
    }
    this.cancelButton.hidden = FINISHED.has(p.status);
  }

  progressWords(p, percent) {
    if (p.status === "QUEUED") return "Queued: starting in a moment";
    const pct = percent === null || percent === undefined ? "" : ` (${Math.round(percent)}%)`;
    if (p.status === "RUNNING") {
      return p.total ? `${fmt(p.processed)} of ${plural(p.total, "product")}${pct}` : `${plural(p.processed, "product")} so far`;
    }
    if (p.status === "SUCCEEDED") return `Done: ${plural(p.processed, "product")} checked${pct}`;
    return `${RUN_WORDS[p.status] || p.status} after ${plural(p.processed, "product")}`;
  }

  async finish(runId) {
    if (this.finished.has(runId)) return;
    this.finished.add(runId);
    if (this.following === runId && this.stopProgress) {
      this.stopProgress();
      this.stopProgress = null;
    }
    let run;
    try {
      const d = await api(`query Run($id: ID!) { syncRun(id: $id) { ${RUN} summary { errors { externalId code message } pendingChangesApplied { count } } } }`, { id: runId });
      run = d.syncRun;
    } catch (exc) {
      return;
    }
    if (!run) return;
    this.upsertRun(run);
    if (this.following === runId) {
      this.showProgress({ ...run.progress, runId, status: run.status });
      this.following = null;
      this.cancelButton.hidden = true;
      this.showSummary(run, false);
    } else if (!this.following) {
      this.showSummary(run, true); // a run this page did not watch (scheduled, or started elsewhere)
    }
    this.scheduleRefresh(0);
  }

  showSummary(run, previous) {
    const s = run.summary;
    const when = run.finishedAt ? timeEl(run.finishedAt) : null;
    const head = previous ? "Last sync" : `Sync ${RUN_WORDS[run.status].toLowerCase()}`;
    const items = s
      ? [
          ["Added", s.added],
          ["Updated", s.updated],
          ["Unchanged", s.unchanged],
          ["Removed", s.removed],
          ["Failed", s.failed],
          ["Conflicts", s.conflicts],
        ]
      : [];
    // Why the run failed or stopped is its failure line, with its code; the list is what else it found.
    const why = s && s.errors ? s.errors.find((e) => !e.externalId && e.message === run.failure) : null;
    const errors = s && s.errors ? s.errors.filter((e) => e !== why) : null;
    fill(
      this.summaryBox,
      h("h4", {}, head, when ? " · " : "", when),
      run.failure ? h("p", { class: "error-text failure" }, run.failure, why ? h("span", { class: "muted code", text: ` (${why.code})` }) : null) : null,
      s && s.pendingChangesApplied ? h("p", { class: "muted", text: `Included: ${plural(s.pendingChangesApplied.count, "change")} that waited for Sync Now.` }) : null,
      items.length ? h("dl", { class: "counts" }, items.map(([label, n]) => h("div", { class: `count ${label.toLowerCase()}` }, h("dt", { text: label }), h("dd", { text: fmt(n) })))) : null,
      errors && errors.length ? this.errorList(errors, s.failed) : null,
      !errors && s && s.failed ? this.lazyErrors(run.id, s.failed) : null,
    );
    this.summaryBox.hidden = false;
    this.summaryBox.dataset.runId = run.id;
  }

  errorList(errors, failed) {
    const shown = errors.slice(0, 50);
    return h(
      "div",
      { class: "errors" },
      h("h5", { text: failed ? `${plural(failed, "product")} could not be synced` : errors.every((e) => e.code === "NOT_FOUND") ? "Not found in the store" : "Details" }),
      h(
        "ul",
        {},
        shown.map((e) => h("li", {}, h("strong", { text: e.externalId ? `Product ${e.externalId}` : "This sync" }), `: ${e.message} `, h("span", { class: "muted", text: `(${e.code})` }))),
      ),
      errors.length > shown.length ? h("p", { class: "muted", text: `and ${fmt(errors.length - shown.length)} more` }) : null,
    );
  }

  lazyErrors(runId, failed) {
    const details = h("details", { class: "errors-lazy" }, h("summary", { text: `Show why ${plural(failed, "product")} failed` }));
    details.addEventListener("toggle", async () => {
      if (!details.open || details.dataset.loaded) return;
      details.dataset.loaded = "1";
      try {
        const d = await api(`query Errors($id: ID!) { syncRun(id: $id) { summary { failed errors { externalId code message } } } }`, { id: runId });
        details.append(this.errorList(d.syncRun.summary.errors, d.syncRun.summary.failed));
      } catch (exc) {
        details.append(h("p", { class: "error-text", text: explain(exc) }));
      }
    });
    return details;
  }

  upsertRun(run) {
    if (!run || !run.id) return;
    const known = this.runs.get(run.id);
    const merged = { ...(known ? known.run : {}), ...run };
    let row = known ? known.row : null;
    if (!row) {
      row = {
        li: h("li", { class: "run-row", dataset: { runId: run.id } }),
        when: h("span", { class: "when" }),
        what: h("span", { class: "what" }),
        status: h("span", { class: "run-status" }),
        counts: h("span", { class: "run-counts" }),
      };
      row.li.append(row.status, " ", row.what, " ", row.when, row.counts);
      // Newest first: in before the first shown run that was queued earlier.
      const older = [...this.historyList.children].find((li) => {
        const shown = this.runs.get(li.dataset.runId);
        return shown && new Date(shown.run.queuedAt) < new Date(merged.queuedAt);
      });
      this.historyList.insertBefore(row.li, older || null);
      while (this.historyList.children.length > 20) {
        const dropped = this.historyList.lastElementChild;
        this.runs.delete(dropped.dataset.runId);
        dropped.remove();
      }
    }
    this.runs.set(run.id, { run: merged, row });
    row.li.dataset.status = merged.status;
    setText(row.status, RUN_WORDS[merged.status] || merged.status);
    const digest = merged.kind === "DIGEST";
    row.li.classList.toggle("digest", digest);
    setText(row.what, digest ? "Store changes (this hour)" : `${TRIGGER_WORDS[merged.trigger] || merged.trigger}${KIND_WORDS[merged.kind] ? ` (${KIND_WORDS[merged.kind]})` : ""}`);
    setTime(row.when, merged.startedAt || merged.queuedAt);
    const s = merged.summary;
    let counts = "";
    if (s && digest) {
      // An hour's digest grows as notifications arrive: what arrived, then what became of it (no duration).
      const parts = [[s.added, "added"], [s.updated, "updated"], [s.removed, "removed"], [s.unchanged, "unchanged"], [s.failed, "failed"], [s.conflicts, "conflicts"]]
        .filter(([n]) => n).map(([n, word]) => `${fmt(n)} ${word}`);
      counts = `${(merged.progress && merged.progress.message) || ""}${parts.length ? `: ${parts.join(", ")}` : ""}`;
    } else if (s) {
      counts = `${fmt(s.added)} added, ${fmt(s.updated)} updated, ${fmt(s.unchanged)} unchanged, ${fmt(s.removed)} removed, ${fmt(s.failed)} failed, ${fmt(s.conflicts)} conflicts`;
      const took = duration(merged.startedAt, merged.finishedAt);
      if (took) counts += ` · took ${took}`;
    } else if (merged.status === "RUNNING" && merged.progress) {
      counts = `${fmt(merged.progress.processed)} products so far`;
    }
    if (merged.failure) counts += `${counts ? " · " : ""}${merged.failure}`;
    setText(row.counts, counts ? ` — ${counts}` : "");
    this.historyEmpty.hidden = this.runs.size > 0;
  }

  async syncNow(button) {
    await busy(button, async () => {
      const d = await api(`mutation SyncNow($id: ID!) { syncNow(integrationId: $id) { ${RUN} } }`, { id: this.id });
      if (d.syncNow.reused) notice(`A sync of ${this.data.name} is already running: showing its progress.`);
      this.follow(d.syncNow);
      this.scheduleRefresh();
    }, this.syncError);
  }

  async cancel(button) {
    const runId = this.following || (this.data.currentRun && this.data.currentRun.id);
    if (!runId) return;
    await busy(button, async () => {
      const d = await api(`mutation Cancel($id: ID!) { cancelSyncRun(runId: $id) { ${RUN} } }`, { id: runId });
      this.upsertRun(d.cancelSyncRun);
      notice(`Cancelling the sync of ${this.data.name}.`);
    }, this.syncError);
  }

  // ---- settings (the gear) -----------------------------------------------------------------------
  openSettings(opener) {
    if (!this.settingsDialog) this.settingsDialog = this.buildSettings();
    const form = this.settingsDialog.querySelector("form");
    const current = this.data.settings;
    form.elements.mode.value = current.mode;
    form.elements.frequency.value = current.frequency;
    this.syncFrequencyState(form);
    fill(this.settingsDialog.querySelector(".inline-error"));
    setText(this.settingsDialog.querySelector("h2"), `Sync settings: ${this.data.name}`);
    openDialog(this.settingsDialog, opener);
  }

  syncFrequencyState(form) {
    const manual = form.elements.mode.value === "MANUAL";
    form.querySelector(".frequency").disabled = manual;
  }

  buildSettings() {
    const radio = (name, value, label, hint) => {
      const id = uid(name);
      const hintId = `${id}-hint`;
      return h(
        "div",
        { class: "choice" },
        h("input", { type: "radio", id, name, value, "aria-describedby": hintId }),
        h("label", { for: id }, h("span", { class: "choice-label", text: label }), h("span", { id: hintId, class: "hint", text: hint })),
      );
    };
    const error = h("div", { class: "inline-error" });
    const save = h("button", { type: "submit", class: "primary", text: "Save" });
    const form = h(
      "form",
      { method: "dialog" },
      h("fieldset", {}, h("legend", { text: "Sync mode" }), Object.entries(MODES).map(([v, m]) => radio("mode", v, m.label, m.hint))),
      h(
        "fieldset",
        { class: "frequency" },
        h("legend", { text: "Sync frequency" }),
        h("p", { class: "hint", text: "How often Alana checks your store for changes in automatic mode." }),
        Object.entries(FREQUENCIES).map(([v, f]) => radio("frequency", v, f.label, f.hint)),
        h("p", { class: "note", text: "More frequent syncing means faster updates but may slightly increase API usage." }),
      ),
      error,
      h("div", { class: "buttons" }, save, h("button", { type: "button", onclick: () => dialogEl.close(), text: "Cancel" })),
    );
    form.addEventListener("change", () => this.syncFrequencyState(form));
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      const settings = { mode: form.elements.mode.value, frequency: form.elements.frequency.value };
      busy(save, async () => {
        const d = await api(`mutation Settings($id: ID!, $s: SyncSettingsInput!) { updateSyncSettings(integrationId: $id, settings: $s) { id settings { mode frequency } health { ${HEALTH} } } }`, { id: this.id, s: settings });
        this.update(d.updateSyncSettings);
        dialogEl.close();
        const words = settings.mode === "MANUAL" ? "manual sync" : `automatic sync, ${FREQUENCIES[settings.frequency].label.toLowerCase()}`;
        notice(`Saved: ${this.data.name} now uses ${words}.`);
      }, error);
    });
    const dialogEl = dialog("Sync settings", form);
    return dialogEl;
  }

  // ---- conflicts ----------------------------------------------------------------------------------
  setConflicts(conflicts) {
    for (const c of conflicts) this.addConflict(c, false);
    this.updateConflictCount();
    this.loadProductTitles();
  }

  mergeConflicts(conflicts) {
    this.setConflicts(conflicts);
  }

  updateConflictCount() {
    const open = [...this.conflicts.values()].filter((c) => c.conflict.status === "STORE_WON").length;
    setText(this.conflictCount, open ? `(${fmt(open)})` : "");
    this.conflictsDetails.dataset.open = String(open);
    this.conflictEmpty.hidden = this.conflicts.size > 0;
  }

  addConflict(conflict, live) {
    const known = this.conflicts.get(conflict.id);
    if (known) {
      known.conflict = { ...known.conflict, ...conflict };
      this.renderConflictStatus(known);
      this.updateConflictCount();
      return;
    }
    const entry = { conflict, title: h("span", { class: "product-title", text: `Product ${conflict.productId}` }) };
    const storeValue = h("pre", { class: "value", text: showValue(conflict.storeValue) });
    const alanaValue = h("pre", { class: "value", text: showValue(conflict.alanaValue) });
    entry.statusEl = h("p", { class: "conflict-status", tabindex: "-1" });
    entry.actions = h("div", { class: "conflict-actions" });
    entry.error = h("div", { class: "inline-error" });
    entry.li = h(
      "li",
      { class: "conflict", dataset: { conflictId: conflict.id } },
      h("p", { class: "conflict-head" }, entry.title, " · field ", h("code", { text: conflict.field }), " · ", timeEl(conflict.detectedAt)),
      h(
        "div",
        { class: "side-by-side" },
        h("div", { class: "side store" }, h("h4", { text: "In your store (in effect)" }), storeValue),
        h("div", { class: "side alana" }, h("h4", { text: "Alana's change (overwritten)" }), alanaValue),
      ),
      entry.statusEl,
      entry.actions,
      entry.error,
    );
    this.conflicts.set(conflict.id, entry);
    this.renderConflictStatus(entry);
    this.conflictList.prepend(entry.li);
    this.updateConflictCount();
    if (live) this.loadProductTitles();
  }

  renderConflictStatus(entry) {
    const c = entry.conflict;
    entry.li.dataset.status = c.status;
    setText(entry.statusEl, c.status === "REAPPLIED" ? "Alana's change was re-applied." : "Your store's value won.");
    if (c.status === "STORE_WON" && !entry.actions.firstChild) {
      const button = h("button", { type: "button", "aria-label": `Re-apply Alana's change to ${c.field}`, text: "Re-apply Alana's change" });
      button.addEventListener("click", () =>
        busy(button, async () => {
          const d = await api(`mutation Reapply($id: ID!) { reapplyAlanaChange(conflictId: $id) { ${CONFLICT} } }`, { id: c.id });
          entry.conflict = { ...entry.conflict, ...d.reapplyAlanaChange };
          this.renderConflictStatus(entry);
          this.updateConflictCount();
          entry.statusEl.focus();
        }, entry.error),
      );
      entry.actions.append(button);
    } else if (c.status !== "STORE_WON") {
      fill(entry.actions);
    }
  }

  async loadProductTitles() {
    const missing = [...this.conflicts.values()].filter((e) => !e.titleLoaded).slice(0, 50);
    if (!missing.length) return;
    for (const e of missing) e.titleLoaded = true;
    const ids = [...new Set(missing.map((e) => e.conflict.productId))];
    const query = `query Titles(${ids.map((_, i) => `$p${i}: ID!`).join(", ")}) { ${ids.map((_, i) => `p${i}: product(id: $p${i}) { id externalId title }`).join(" ")} }`;
    const variables = Object.fromEntries(ids.map((id, i) => [`p${i}`, id]));
    let data = {};
    try {
      data = await request(API, state.token, query, variables);
    } catch (exc) {
      return; // a removed product keeps its id as its name
    }
    const byId = new Map(Object.values(data).filter(Boolean).map((p) => [p.id, p]));
    for (const e of missing) {
      const p = byId.get(e.conflict.productId);
      if (p) setText(e.title, `${p.title} (ID ${p.externalId})`);
    }
  }

  // ---- reconnect and disconnect --------------------------------------------------------------------
  async reconnect(button) {
    const p = state.platforms.get(this.data.platform);
    const methods = (p && p.connectMethods) || ["CREDENTIALS"];
    if (state.caps.reconnectIntegration && methods.includes("INSTALL_FLOW")) {
      await busy(button, async () => {
        const d = await api(`mutation Reconnect($id: ID!, $returnUrl: String) { reconnectIntegration(integrationId: $id, returnUrl: $returnUrl) { id authorizeUrl } }`, { id: this.id, returnUrl: returnUrl() });
        if (d.reconnectIntegration.authorizeUrl) window.location.assign(d.reconnectIntegration.authorizeUrl);
      });
      return;
    }
    if (state.caps.reconnectWithKeys && p) {
      this.reconnectWithKeys(button, p);
      return;
    }
    // Without a reconnect on this gateway: connect the store again with new keys (the old card can then go).
    openConnect(button, { platform: this.data.platform, name: this.data.name, storeUrl: this.data.storeUrl });
  }

  /** New keys for this same integration: products, Alana's edits, conflicts and history stay. */
  reconnectWithKeys(opener, platform) {
    const error = h("div", { class: "inline-error" });
    const inputs = platform.credentialFields.map((f) => {
      const id = uid("reconnect-cred");
      const input = h("input", { id, name: f.name, type: f.secret ? "password" : "text", required: f.required, autocomplete: "off", spellcheck: "false" });
      return { f, input, el: field(id, f.label + (f.required ? "" : " (optional)"), input) };
    });
    const go = h("button", { type: "submit", class: "primary", text: "Reconnect" });
    const form = h(
      "form",
      { novalidate: true },
      h("p", { text: `Give ${this.data.name}'s new ${platform.name} API keys. Its products, edits, conflicts and history are kept.` }),
      inputs.map((i) => i.el),
      error,
      h("div", { class: "buttons" }, go),
    );
    const el = dialog(`Reconnect ${this.data.name}`, form, { onClose: () => el.remove() });
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      const missing = inputs.find((i) => i.f.required && !i.input.value.trim());
      if (missing) {
        missing.input.setAttribute("aria-invalid", "true");
        fill(error, h("p", { class: "error-text", role: "alert", text: `${missing.f.label} is required.` }));
        missing.input.focus();
        return;
      }
      const credentials = {};
      for (const i of inputs) if (i.input.value.trim()) credentials[i.f.name] = i.input.value.trim();
      busy(
        go,
        async () => {
          await api(`mutation ReconnectKeys($id: ID!, $credentials: JSON) { reconnectIntegration(integrationId: $id, credentials: $credentials) { id status } }`, { id: this.id, credentials });
          el.close();
          this.scheduleRefresh();
          notice(`Reconnected ${this.data.name}. A full sync catches up what changed meanwhile.`);
        },
        error,
      );
    });
    openDialog(el, opener);
  }

  confirmDisconnect(opener) {
    if (!this.disconnectDialog) {
      const error = h("div", { class: "inline-error" });
      const confirm = h("button", { type: "button", class: "danger", text: "Disconnect" });
      const text = h("p");
      const body = h(
        "div",
        {},
        text,
        h("p", { text: "Syncing stops, Alana removes the webhooks it registered on your store, and deletes the stored credentials and the synced products. Your store itself is not changed." }),
        error,
        h("div", { class: "buttons" }, confirm, h("button", { type: "button", class: "primary", onclick: () => this.disconnectDialog.close(), text: "Keep connected" })),
      );
      confirm.addEventListener("click", () =>
        busy(confirm, async () => {
          await api(`mutation Disconnect($id: ID!) { disconnectIntegration(integrationId: $id) }`, { id: this.id });
          const name = this.data.name;
          this.disconnectDialog.opener = document.querySelector("#integrations .toolbar button");
          this.disconnectDialog.close();
          removeCard(this.id);
          notice(`Disconnected ${name}.`);
          state.activity.stale();
        }, error),
      );
      this.disconnectDialog = dialog("Disconnect this store?", body);
      this.disconnectText = text;
    }
    setText(this.disconnectDialog.querySelector("h2"), `Disconnect ${this.data.name}?`);
    setText(this.disconnectText, `${this.data.name} (${this.platformName}, ${this.data.storeUrl}) will no longer sync to Alana.`);
    openDialog(this.disconnectDialog, opener);
    this.disconnectDialog.querySelector("button.primary").focus();
  }

  destroy() {
    if (this.stopProgress) this.stopProgress();
    clearTimeout(this.refreshTimer);
    for (const d of [this.settingsDialog, this.disconnectDialog]) if (d) d.remove();
  }
}

// ---- activity log ----------------------------------------------------------------------------------
const ACTIVITY_WORDS = {
  INTEGRATION_CONNECTED: "Connected",
  INTEGRATION_RECONNECTED: "Reconnected",
  INTEGRATION_DISCONNECTED: "Disconnected",
  CREDENTIALS_REJECTED: "Credentials rejected",
  APP_UNINSTALLED: "App removed",
  WEBHOOKS_REREGISTERED: "Notifications restored",
  SETTINGS_CHANGED: "Settings",
  SYNC_QUEUED: "Sync queued",
  SYNC_STARTED: "Sync started",
  SYNC_SUCCEEDED: "Sync succeeded",
  SYNC_FAILED: "Sync failed",
  SYNC_CANCELLED: "Sync cancelled",
  CONFLICT: "Conflict",
  CHANGE_REAPPLIED: "Change re-applied",
  WEBHOOK_REJECTED: "Webhook rejected",
  WEBHOOK_CHANGES_APPLIED: "Store changes",
  PRODUCT_EDITED: "Product edited",
};

class ActivityLog {
  constructor(integrationId, label) {
    this.integrationId = integrationId;
    this.entries = new Map();
    this.loaded = false;
    this.isStale = false;
    this.cursor = null;
    this.timer = null;
    this.list = h("ol", { class: "activity" });
    this.more = h("button", { type: "button", class: "small", hidden: true, onclick: (e) => this.load(e.currentTarget), text: "Show older entries" });
    this.status = h("p", { class: "muted", text: "Loading…" });
    this.el = h("details", { class: "section activity-section" }, h("summary", { text: label }), this.status, this.list, this.more);
    this.el.addEventListener("toggle", () => {
      if (!this.el.open) return;
      if (!this.loaded) this.load();
      else if (this.isStale) this.refresh();
    });
  }

  stale() {
    this.isStale = true;
    if (!this.el.open || !this.loaded || this.timer) return;
    this.timer = setTimeout(() => {
      this.timer = null;
      this.refresh();
    }, 700);
  }

  async load(button) {
    const work = async () => {
      const d = await api(`query Activity($id: ID, $after: String) { activityLog(integrationId: $id, first: 30, after: $after) { edges { node { ${ACTIVITY} } } pageInfo { hasNextPage endCursor } } }`, { id: this.integrationId, after: this.cursor });
      const conn = d.activityLog;
      for (const e of conn.edges) this.add(e.node, false);
      this.cursor = conn.pageInfo.endCursor;
      this.more.hidden = !conn.pageInfo.hasNextPage;
      this.loaded = true;
      this.isStale = false;
      this.showStatus();
    };
    if (button) await busy(button, work);
    else await work().catch((exc) => setText(this.status, explain(exc)));
  }

  async refresh() {
    // Newer entries go on top; the ones on screen (and anything opened among them) stay as they are.
    this.isStale = false;
    try {
      const d = await api(`query ActivityHead($id: ID) { activityLog(integrationId: $id, first: 30) { edges { node { ${ACTIVITY} } } } }`, { id: this.integrationId });
      const fresh = d.activityLog.edges.map((e) => e.node).filter((n) => !this.entries.has(n.id));
      for (const node of fresh.reverse()) this.add(node, true);
      this.showStatus();
    } catch (exc) {
      setText(this.status, explain(exc));
    }
  }

  showStatus() {
    this.status.hidden = this.entries.size > 0;
    setText(this.status, "Nothing has happened yet.");
  }

  add(entry, onTop) {
    if (this.entries.has(entry.id)) return;
    let where = "";
    if (!this.integrationId && entry.integrationId) {
      const card = state.cards.get(entry.integrationId);
      if (card) where = `${card.data.name}: `;
    }
    const li = h(
      "li",
      { class: "entry", dataset: { kind: entry.kind } },
      timeEl(entry.at),
      " ",
      h("span", { class: "kind", text: ACTIVITY_WORDS[entry.kind] || entry.kind }),
      " ",
      h("span", { class: "message", text: `${where}${entry.message}` }),
    );
    this.entries.set(entry.id, li);
    if (onTop) this.list.prepend(li);
    else this.list.append(li);
  }
}

// ---- connecting a store ---------------------------------------------------------------------------
function returnUrl() {
  const url = new URL(window.location.href);
  url.search = "";
  url.hash = "";
  return url.toString();
}

class ConnectForm {
  constructor() {
    this.error = h("div", { class: "inline-error" });
    this.platformSelect = h("select", { id: "connect-platform", name: "platform", required: true });
    for (const p of state.platforms.values()) this.platformSelect.append(h("option", { value: p.id, text: p.name }));
    this.platformSelect.addEventListener("change", () => this.renderPlatform());
    this.name = h("input", { id: "connect-name", name: "name", required: true, autocomplete: "off", maxlength: "200" });
    this.storeUrl = h("input", { id: "connect-store-url", name: "storeUrl", type: "url", required: true, autocomplete: "off", "aria-describedby": "connect-store-hint" });
    this.storeHint = h("p", { id: "connect-store-hint", class: "hint" });
    this.credentials = h("div", { class: "credentials" });
    this.install = h("div", { class: "install" });
    this.mode = h("select", { id: "connect-mode", name: "mode" }, Object.entries(MODES).map(([v, m]) => h("option", { value: v, text: m.label })));
    this.frequency = h(
      "select",
      { id: "connect-frequency", name: "frequency" },
      Object.entries(FREQUENCIES).map(([v, f]) => h("option", { value: v, text: v === "EVERY_HOUR" ? `${f.label} (recommended)` : f.label })),
    );
    this.frequency.value = "EVERY_HOUR";
    this.mode.addEventListener("change", () => {
      this.frequency.disabled = this.mode.value === "MANUAL";
    });
    this.submit = h("button", { type: "submit", class: "primary", text: "Connect" });
    this.keysPart = h(
      "div",
      { class: "keys" },
      h("h3", { class: "keys-title", text: "Connect with API keys" }),
      field("connect-store-url", "Store URL", this.storeUrl, this.storeHint),
      this.credentials,
      h("div", { class: "row two" }, field("connect-mode", "Sync mode", this.mode), field("connect-frequency", "Sync frequency", this.frequency)),
      h("div", { class: "buttons" }, this.submit),
    );
    this.form = h(
      "form",
      { class: "connect-form", novalidate: true },
      field("connect-platform", "Platform", this.platformSelect),
      field("connect-name", "Name in Alana", this.name, h("p", { class: "hint", text: "How this store is called on this page." })),
      this.install,
      this.keysPart,
      this.error,
    );
    this.form.addEventListener("submit", (event) => {
      event.preventDefault();
      this.connect();
    });
    this.dialog = dialog("Connect a store", this.form);
    this.renderPlatform();
  }

  get platform() {
    return state.platforms.get(this.platformSelect.value);
  }

  prefill({ platform, name, storeUrl }) {
    if (platform) this.platformSelect.value = platform;
    this.renderPlatform();
    if (name) this.name.value = name;
    if (storeUrl) this.storeUrl.value = storeUrl;
  }

  renderPlatform() {
    const p = this.platform;
    if (!p) return;
    const hints = {
      shopify: "Your shop's address, e.g. https://your-shop.myshopify.com",
      woocommerce: "Your WordPress site's address, e.g. https://shop.example.com",
      bigcommerce: "https://api.bigcommerce.com/stores/{store hash}",
    };
    setText(this.storeHint, hints[p.id] || "The address of the store's API.");
    // Keys typed for one platform stay in their inputs if the merchant switches back and forth.
    this.keyInputs = this.keyInputs || new Map();
    const inputs = p.credentialFields.map((f) => {
      const key = `${p.id}:${f.name}`;
      if (!this.keyInputs.has(key)) {
        const id = uid("cred");
        const input = h("input", {
          id,
          name: f.name,
          type: f.secret ? "password" : "text",
          required: f.required,
          autocomplete: "off",
          spellcheck: "false",
        });
        this.keyInputs.set(key, field(id, f.label + (f.required ? "" : " (optional)"), input));
      }
      return this.keyInputs.get(key);
    });
    fill(this.credentials, inputs);
    const methods = p.connectMethods || ["CREDENTIALS"];
    const canInstall = state.caps.beginConnect && methods.includes("INSTALL_FLOW");
    this.keysPart.hidden = !methods.includes("CREDENTIALS");
    if (canInstall) {
      const go = h("button", { type: "button", class: "primary", text: `Continue to ${p.name}` });
      go.addEventListener("click", () => this.beginInstall(go));
      // What beginConnect's `store` is for this platform's flow (BigCommerce: the merchant picks it there).
      const stores = {
        shopify: ["Shop", "Your shop's myshopify.com domain, e.g. your-shop.myshopify.com"],
        woocommerce: ["Store URL", "Your WordPress site's address, e.g. https://shop.example.com"],
        bigcommerce: null,
      };
      const asked = p.id in stores ? stores[p.id] : ["Store (if the platform asks for one)", "The store's address"];
      this.installStore = null;
      let storeField = null;
      if (asked) {
        this.installStore = h("input", { id: "connect-install-store", name: "store", autocomplete: "off", spellcheck: "false", "aria-describedby": "connect-install-store-hint" });
        storeField = field("connect-install-store", asked[0], this.installStore, h("p", { id: "connect-install-store-hint", class: "hint", text: asked[1] }));
      }
      fill(
        this.install,
        h("h3", { text: `Connect through ${p.name}` }),
        h("p", { class: "hint", text: `You approve Alana on ${p.name}'s own page, then come back here connected.` }),
        storeField,
        h("div", { class: "buttons" }, go),
        methods.includes("CREDENTIALS") ? h("p", { class: "or", text: "or" }) : null,
      );
    } else {
      this.installStore = null;
      fill(this.install);
    }
  }

  values() {
    const credentials = {};
    for (const input of this.credentials.querySelectorAll("input")) if (input.value.trim()) credentials[input.name] = input.value.trim();
    return {
      platform: this.platformSelect.value,
      name: this.name.value.trim(),
      storeUrl: this.storeUrl.value.trim(),
      credentials,
      settings: { mode: this.mode.value, frequency: this.frequency.value },
    };
  }

  showError(exc) {
    const field = exc.errors && exc.errors[0] && exc.errors[0].extensions ? exc.errors[0].extensions.field : null;
    for (const el of this.form.querySelectorAll("[aria-invalid]")) el.removeAttribute("aria-invalid");
    const target =
      field === "storeUrl" ? this.storeUrl : field === "store" ? this.installStore : field === "name" ? this.name : field === "credentials" ? this.credentials.querySelector("input") : null;
    if (target) target.setAttribute("aria-invalid", "true");
    fill(this.error, h("p", { class: "error-text", role: "alert", text: explain(exc) }));
    if (target) target.focus();
  }

  async connect() {
    for (const input of [this.name, this.storeUrl, ...this.credentials.querySelectorAll("input[required]")]) {
      if (!input.value.trim()) {
        input.setAttribute("aria-invalid", "true");
        const label = this.form.querySelector(`label[for="${input.id}"]`);
        fill(this.error, h("p", { class: "error-text", role: "alert", text: `${label ? label.textContent : "This field"} is required.` }));
        input.focus();
        return;
      }
    }
    const v = this.values();
    await busy(this.submit, async () => {
      let d;
      try {
        d = await api(`mutation Connect($input: ConnectIntegrationInput!) { connectIntegration(input: $input) { ${INTEGRATION} } }`, { input: v });
      } catch (exc) {
        this.showError(exc);
        return;
      }
      this.reset();
      this.dialog.close();
      const card = addCard(d.connectIntegration);
      card.followCurrent();
      card.el.querySelector("h3").scrollIntoView({ block: "nearest" });
      notice(`Connected ${d.connectIntegration.name}. The first sync has started.`);
    });
  }

  async beginInstall(button) {
    const v = this.values();
    if (!v.name) {
      this.name.setAttribute("aria-invalid", "true");
      fill(this.error, h("p", { class: "error-text", role: "alert", text: "Name in Alana is required." }));
      this.name.focus();
      return;
    }
    for (const el of this.form.querySelectorAll("[aria-invalid]")) el.removeAttribute("aria-invalid");
    await busy(button, async () => {
      let d;
      try {
        d = await api(`mutation Begin($input: BeginConnectInput!) { beginConnect(input: $input) { id status authorizeUrl error } }`, {
          input: { platform: v.platform, name: v.name, store: (this.installStore && this.installStore.value.trim()) || null, settings: v.settings, returnUrl: returnUrl() },
        });
      } catch (exc) {
        this.showError(exc);
        return;
      }
      if (d.beginConnect.authorizeUrl) window.location.assign(d.beginConnect.authorizeUrl);
      else this.showError(new GraphQLRequestError(d.beginConnect.error || "The platform did not offer a way to continue.", "BAD_USER_INPUT"));
    });
  }

  reset() {
    this.form.reset();
    this.keyInputs = new Map();
    this.frequency.value = "EVERY_HOUR";
    this.frequency.disabled = false;
    fill(this.error);
    this.renderPlatform();
  }
}

function field(id, label, control, hint) {
  return h("div", { class: "field" }, h("label", { for: id, text: label }), control, hint || null);
}

function openConnect(opener, prefill) {
  if (!state.connect) state.connect = new ConnectForm();
  if (prefill) state.connect.prefill(prefill);
  openDialog(state.connect.dialog, opener);
}

/** Back from a platform's install page (?connectAttempt=&status=) or sent to claim an install (?claimInstall=). */
async function handleReturnParameters() {
  const params = new URLSearchParams(window.location.search);
  const attempt = params.get("connectAttempt");
  const status = params.get("status");
  const claim = params.get("claimInstall");
  if (!attempt && !claim) return;
  window.history.replaceState(null, "", returnUrl());
  if (attempt) {
    if (status === "CONNECTED") notice("Your store is connected. The first sync has started.");
    else {
      let why = status === "EXPIRED" ? "The connection attempt expired. Please try again." : "The store was not connected.";
      if (state.caps.connectAttempt) {
        try {
          const d = await api(`query Attempt($id: ID!) { connectAttempt(id: $id) { status error } }`, { id: attempt });
          if (d.connectAttempt && d.connectAttempt.error) why = d.connectAttempt.error;
        } catch (exc) {
          // keep the generic words
        }
      }
      notice(why, "error");
    }
    return;
  }
  if (claim && state.caps.claimInstall) {
    const name = h("input", { id: "claim-name", name: "name", autocomplete: "off" });
    const go = h("button", { type: "submit", class: "primary", text: "Add to my account" });
    const error = h("div", { class: "inline-error" });
    const form = h("form", {}, h("p", { text: "A store was installed from its platform's app store. Add it to this Alana account?" }), field("claim-name", "Name in Alana (optional)", name), error, h("div", { class: "buttons" }, go));
    const el = dialog("Finish connecting your store", form);
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      busy(go, async () => {
        const d = await api(`mutation Claim($token: String!, $name: String) { claimInstall(token: $token, name: $name) { ${INTEGRATION} } }`, { token: claim, name: name.value.trim() || null });
        el.close();
        addCard(d.claimInstall).followCurrent();
        notice(`Connected ${d.claimInstall.name}. The first sync has started.`);
      }, error);
    });
    openDialog(el, document.getElementById("main"));
  }
}

// ---- boot -----------------------------------------------------------------------------------------
setInterval(() => tickTimes(), 30000);
const saved = sessionStorage.getItem(TOKEN_KEY);
if (saved) start(saved);
else showSignIn();
