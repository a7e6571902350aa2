// wa-ray console: the numbers dashboard. Plain JS, no build step, no third-party assets.
// Auth is an HttpOnly cookie set by POST /console/session; this script never sees an API secret and drops
// the token from the URL as soon as it has used it. Unsafe calls carry X-WA-Console: 1 (CSRF guard).
// Invariant: data from the API or the events stream (push names, campaign names, message texts, reasons)
// reaches the page only through textContent / attributes, never through innerHTML: it is attacker-controlled.
// APIs that a service may not have yet (stats, campaigns, primary) are probed: a 404 hides what they would show.
"use strict";

(function () {
  const $ = (id) => document.getElementById(id);
  const enc = encodeURIComponent;
  const HEADERS = { "X-WA-Console": "1", "Content-Type": "application/json" };
  const ID_RE = /^[a-z0-9][a-z0-9_-]{0,63}$/;
  const PHONE_RE = /^[1-9][0-9]{6,14}$/;
  const STATUS_RANK = { queued: 0, sending: 1, sent: 2, delivered: 3, read: 4, failed: 5 };
  const GONE_STATES = new Set(["logged_out", "stopped"]); // a number shown in these would be stale
  const STREAM_TYPES = ["session.status", "session.qr", "session.pairing_code", "session.ready",
    "session.disconnected", "session.paused", "session.resumed", "session.ban_risk", "campaign.progress",
    "message.queued", "message.sent", "message.ack", "message.failed", "message.received"];

  let who = null; // the console session: {role, workspace_id, workspaces, expires_at}
  let ws = null; // the workspace on screen
  let source = null; // EventSource of ws
  let refreshTimer = null;
  let allTimer = null;
  const numbers = new Map(); // sid -> merged record (SessionOut + what the stream told since)
  const campaigns = new Map(); // campaign_id -> campaign
  const feature = { stats: null, risk: null, campaigns: null, primary: false }; // null = not probed yet
  let linking = null; // {sid, login, deadline, timer} while the add dialog links a number
  let statsSid = null;

  // --- small helpers -------------------------------------------------------------------------

  /** Element factory: props are properties/dataset/attributes; children are nodes or text (never HTML). */
  function h(tag, props, ...children) {
    const el = document.createElement(tag);
    for (const [k, v] of Object.entries(props || {})) {
      if (v === undefined || v === null) continue;
      if (k === "dataset") Object.assign(el.dataset, v);
      else if (k === "text") el.textContent = v;
      else if (k === "on") for (const [type, fn] of Object.entries(v)) el.addEventListener(type, fn);
      else if (k in el) el[k] = v;
      else el.setAttribute(k, v);
    }
    for (const c of children) if (c !== null && c !== undefined) el.append(c); // strings become text nodes
    return el;
  }

  function showError(message) {
    const el = $("error");
    el.textContent = message || "";
    el.hidden = !message;
  }

  async function api(method, path, body) {
    const response = await fetch(path, {
      method, headers: HEADERS, credentials: "same-origin",
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    if (response.status === 204) return null;
    const data = await response.json().catch(() => ({}));
    if (!response.ok) {
      const err = (data && data.error) || {};
      const e = new Error(`${response.status} ${err.code || ""}: ${err.message || data.detail || response.statusText}`);
      e.status = response.status;
      e.code = err.code || "";
      throw e;
    }
    return data;
  }

  const wsPath = () => `/v1/workspaces/${enc(ws)}`;
  const sessionPath = (sid) => `${wsPath()}/sessions/${enc(sid)}`;
  const writable = () => !!who && (who.role === "admin" || who.role === "workspace");
  const missing = (e) => e.status === 404 || e.status === 405; // the route is not on this service (yet)

  function when(ts) {
    if (!ts) return "never";
    const d = new Date(ts * 1000);
    const today = new Date().toDateString() === d.toDateString();
    return today ? d.toLocaleTimeString() : d.toLocaleString();
  }

  function duration(s) {
    s = Math.max(0, Math.round(Number(s) || 0));
    const hh = Math.floor(s / 3600), mm = Math.floor((s % 3600) / 60);
    return hh ? `${hh}h ${String(mm).padStart(2, "0")}m` : mm ? `${mm}m ${s % 60}s` : `${s}s`;
  }

  // --- sign in / out -------------------------------------------------------------------------

  async function start() {
    const fragment = new URLSearchParams(location.hash.slice(1));
    const token = fragment.get("token");
    if (token) {
      history.replaceState(null, "", location.pathname); // the token leaves the address bar at once
      await signIn(token);
      return;
    }
    try {
      signedIn(await api("GET", "/console/session"));
    } catch (e) {
      showLogin();
    }
  }

  async function signIn(token) {
    try {
      signedIn(await api("POST", "/console/session", { token }));
      $("token-input").value = "";
    } catch (e) {
      showLogin();
      showError(`Sign-in failed: ${e.message}`);
    }
  }

  function showLogin() {
    $("login").hidden = false;
    $("app").hidden = true;
    $("signout").hidden = true;
  }

  function signedIn(me) {
    who = me;
    showError("");
    $("login").hidden = true;
    $("app").hidden = false;
    $("signout").hidden = false;
    const until = who.expires_at ? new Date(who.expires_at * 1000).toLocaleTimeString() : "?";
    $("whoami").textContent = `${who.role}${who.workspace_id ? " · " + who.workspace_id : " · all workspaces"}` +
      ` · until ${until}`;
    $("workspaces").replaceChildren(...who.workspaces.map((w) => h("option", { value: w })));
    $("all-tab").hidden = !!who.workspace_id;
    if (who.workspace_id) {
      $("workspace").value = who.workspace_id;
      $("workspace").readOnly = true;
      $("open-ws").hidden = true;
      openWorkspace(who.workspace_id);
    } else {
      showView("all-view");
    }
  }

  async function signOut() {
    closeStream();
    clearInterval(allTimer);
    try { await api("DELETE", "/console/session"); } catch (e) { /* already gone */ }
    who = null;
    ws = null;
    showLogin();
  }

  // --- views ---------------------------------------------------------------------------------

  function showView(id) {
    for (const view of document.querySelectorAll(".view")) view.hidden = view.id !== id;
    for (const tab of document.querySelectorAll(".tab")) tab.setAttribute("aria-pressed", String(tab.dataset.view === id));
    clearInterval(allTimer);
    if (id === "all-view") {
      loadAll();
      allTimer = setInterval(loadAll, 10_000);
    }
    if (id === "campaigns-view" && ws) loadCampaigns();
  }

  async function openWorkspace(name) {
    name = (name || "").trim();
    if (!ID_RE.test(name)) { showError("A workspace id is lowercase letters, digits, '-' and '_'."); return; }
    showError("");
    ws = name;
    $("workspace").value = name;
    numbers.clear();
    campaigns.clear();
    feature.stats = feature.risk = feature.campaigns = null;
    $("numbers").replaceChildren();
    $("campaigns").replaceChildren();
    $("inbound").replaceChildren();
    $("outbound").tBodies[0].replaceChildren();
    closeStats();
    for (const b of document.querySelectorAll(".needs-write")) b.disabled = !writable();
    $("refresh-numbers").disabled = false;
    openStream();
    showView("numbers-view");
    await loadNumbers();
    loadCampaigns();
  }

  // --- numbers -------------------------------------------------------------------------------

  /** Only the newest list read paints: an older answer landing after a newer one (or after a change this page
   *  made itself, see `setPrimary`) would paint what was true before it. */
  let listGeneration = 0;
  async function loadNumbers() {
    if (!ws) return;
    const at = ws;
    const generation = ++listGeneration;
    let list;
    try {
      list = await api("GET", `${wsPath()}/sessions`);
    } catch (e) {
      if (generation === listGeneration) showError(`Could not list the numbers: ${e.message}`);
      return;
    }
    if (at !== ws || generation !== listGeneration) return;
    const seen = new Set();
    for (const s of list) {
      seen.add(s.session_id);
      numbers.set(s.session_id, merged(numbers.get(s.session_id), s));
      renderNumber(s.session_id);
    }
    for (const sid of [...numbers.keys()]) if (!seen.has(sid)) removeNumber(sid);
    $("numbers-empty").hidden = numbers.size > 0;
    sortCards();
    fillSendFrom();
    loadRisks(list.map((s) => s.session_id));
  }

  /** An API record read before a change the stream already told must not undo it. The registry's `since`
   *  (when the state was entered) older than the live one means the whole record is older: the live state,
   *  phone and name stay. A record of the same state may still lack what the page learnt at ready (the
   *  registry writes the phone and name just after the state): a missing value never erases a known one. */
  const LIVE_KEYS = ["state", "reason", "since", "me", "push_name", "last_connected_at"];
  const LEARNT_KEYS = new Set(["me", "push_name", "last_connected_at"]);
  function merged(live, record) {
    if ("primary" in record) feature.primary = true; // this service keeps a primary number (Part A)
    const out = Object.assign({}, live || {}, record);
    if (!live) return out;
    const stale = !!(live.since && record.since && record.since < live.since);
    for (const k of LIVE_KEYS) {
      if (stale && live[k] !== undefined) out[k] = live[k];
      else if (LEARNT_KEYS.has(k) && record[k] == null && live[k] != null && out.state === live.state) out[k] = live[k];
    }
    return out;
  }

  function scheduleRefresh() {
    clearTimeout(refreshTimer);
    refreshTimer = setTimeout(loadNumbers, 400);
  }

  /** Per number: today's counts (stats API, Part D) and the ban risk with its pause (ban-risk API, Part B).
   *  Each API is probed once per workspace; a 404/405 means this service lacks it and it is skipped. */
  async function loadRisks(sids) {
    for (const sid of sids) {
      if (feature.stats !== false) {
        try {
          const stats = await api("GET", `${sessionPath(sid)}/stats?days=1`);
          feature.stats = true;
          patchQuiet(sid, { today: stats.totals || null, ban_risk: stats.ban_risk || null });
        } catch (e) {
          if (missing(e) && feature.stats === null) feature.stats = false;
        }
      }
      if (feature.risk !== false) {
        try {
          const risk = await api("GET", `${sessionPath(sid)}/ban-risk`);
          feature.risk = true;
          const n = numbers.get(sid);
          const fields = { ban_risk: risk.risk || (n && n.ban_risk) || null };
          if (risk.paused) fields.paused = { reason: "ban_risk" };
          else if (n && n.paused && n.paused.reason === "ban_risk") fields.paused = null;
          patchQuiet(sid, fields);
        } catch (e) {
          if (missing(e) && feature.risk === null) feature.risk = false;
        }
      }
    }
  }

  /** A send, ack or failure changes the number's day and risk: re-read them, at most every 2 s per number. */
  const extrasTimers = new Map();
  function refreshExtrasSoon(sid) {
    if (!sid || !numbers.has(sid) || extrasTimers.has(sid) || (feature.stats === false && feature.risk === false)) return;
    const at = ws;
    extrasTimers.set(sid, setTimeout(async () => {
      if (at === ws) await loadRisks([sid]);
      extrasTimers.delete(sid);
    }, 2000));
  }

  function patchQuiet(sid, fields) {
    const n = numbers.get(sid);
    if (n) { Object.assign(n, fields); renderNumber(sid); }
  }

  function card(sid) {
    let li = $("numbers").querySelector(`li[data-session-id="${CSS.escape(sid)}"]`);
    if (li) return li;
    const action = (label, cls, fn) => h("button", { type: "button", className: cls, text: label, on: { click: () => fn(sid) } });
    li = h("li", { className: "card number", dataset: { sessionId: sid } },
      h("div", { className: "card-head" },
        h("strong", { className: "sid", text: sid }),
        h("span", { className: "badge state" }),
        h("span", { className: "badge primary-badge", text: "Primary", hidden: true }),
        h("span", { className: "badge risk", hidden: true }),
        h("span", { className: "badge paused", hidden: true })),
      h("dl", {},
        h("dt", { text: "Phone" }), h("dd", { className: "phone" }),
        h("dt", { text: "Name" }), h("dd", { className: "push-name" }),
        h("dt", { text: "Last connected" }), h("dd", { className: "last-connected" }),
        h("dt", { text: "Sent today", className: "today-label", hidden: true }), h("dd", { className: "today", hidden: true })),
      h("p", { className: "reason muted" }),
      h("div", { className: "actions" },
        action("Stats", "secondary act-stats", openStats),
        action("Set primary", "act-primary needs-write", setPrimary),
        action("Resume sending", "act-resume needs-write", resumeSending),
        action("Restart", "secondary act-restart needs-write", restart),
        action("Log out", "secondary act-logout needs-write", logout),
        action("Delete", "danger act-delete needs-write", askDelete)));
    $("numbers").append(li);
    return li;
  }

  function renderNumber(sid) {
    const n = numbers.get(sid);
    if (!n) return;
    const li = card(sid);
    const q = (sel) => li.querySelector(sel);
    const state = n.state || "initializing";
    q(".state").textContent = state;
    q(".state").dataset.state = state;
    q(".phone").textContent = (!GONE_STATES.has(state) && n.me) || "–";
    q(".push-name").textContent = n.push_name || "–";
    q(".last-connected").textContent = when(n.last_connected_at || (state === "connected" ? n.since : null));
    q(".reason").textContent = n.reason && state !== "connected" ? n.reason : "";
    q(".primary-badge").hidden = !n.primary;
    const risk = n.ban_risk;
    q(".risk").hidden = !risk;
    if (risk) {
      q(".risk").textContent = `ban risk ${Math.round(risk.score)}`;
      q(".risk").dataset.level = risk.level || "ok";
    }
    q(".paused").hidden = !n.paused;
    q(".paused").textContent = n.paused ? `paused${n.paused.reason ? ": " + n.paused.reason : ""}` : "";
    q(".today").hidden = q(".today-label").hidden = !n.today;
    if (n.today) q(".today").textContent = `${n.today.sent || 0} sent · ${n.today.delivered || 0} delivered · ${n.today.failed || 0} failed`;
    q(".act-primary").hidden = !feature.primary || !!n.primary;
    // only an operator ends these pauses; the hourly cap's ends by itself
    q(".act-resume").hidden = !(n.paused && ["ban_risk", "daily_contacts_cap"].includes(n.paused.reason));
    for (const b of li.querySelectorAll(".needs-write")) b.disabled = !writable();
    li.dataset.primary = n.primary ? "1" : "";
  }

  function sortCards() {
    const list = $("numbers");
    const cards = [...list.children].sort((a, b) =>
      (b.dataset.primary ? 1 : 0) - (a.dataset.primary ? 1 : 0) || a.dataset.sessionId.localeCompare(b.dataset.sessionId));
    if (cards.some((c, i) => list.children[i] !== c)) {
      const focused = document.activeElement;
      list.append(...cards); // moves nodes, keeps their listeners
      if (focused && list.contains(focused)) focused.focus();
    }
  }

  function removeNumber(sid) {
    numbers.delete(sid);
    const li = $("numbers").querySelector(`li[data-session-id="${CSS.escape(sid)}"]`);
    if (li) li.remove();
    if (statsSid === sid) closeStats();
    $("numbers-empty").hidden = numbers.size > 0;
    fillSendFrom();
  }

  /** A live change to one number; an unknown number (made elsewhere) triggers a listing. */
  function patchNumber(sid, fields) {
    if (!sid) return;
    const n = numbers.get(sid);
    if (!n) { // keep what the event says; the listing fills in the rest (or removes a number that is gone)
      numbers.set(sid, Object.assign({ session_id: sid, workspace_id: ws }, fields));
      $("numbers-empty").hidden = true;
      scheduleRefresh();
    } else {
      Object.assign(n, fields);
    }
    renderNumber(sid);
    sortCards();
    fillSendFrom();
  }

  function fillSendFrom() {
    const select = $("send-from");
    const keep = select.value;
    const connected = [...numbers.values()].filter((n) => n.state === "connected").map((n) => n.session_id).sort();
    select.replaceChildren(...connected.map((sid) => h("option", { value: sid, text: sid })));
    if (connected.includes(keep)) select.value = keep;
    $("send-btn").disabled = !writable() || !connected.length;
  }

  async function act(label, fn) {
    showError("");
    try {
      return await fn();
    } catch (e) {
      showError(`${label} failed: ${e.message}`);
      return undefined;
    }
  }

  function applyRecord(s) {
    if (!numbers.has(s.session_id)) return;
    numbers.set(s.session_id, merged(numbers.get(s.session_id), s));
    renderNumber(s.session_id);
    fillSendFrom();
  }

  async function restart(sid) {
    const s = await act("Restart", () => api("POST", `${sessionPath(sid)}/restart`));
    if (s) applyRecord(s);
  }

  async function logout(sid) {
    const s = await act("Log out", () => api("POST", `${sessionPath(sid)}/logout`));
    if (s) applyRecord(s);
  }

  async function resumeSending(sid) {
    const ok = await act("Resume", () => api("POST", `${sessionPath(sid)}/resume`));
    if (ok !== undefined) patchNumber(sid, { paused: null });
  }

  async function setPrimary(sid) {
    showError("");
    try {
      await api("PUT", sessionPath(sid), { primary: true });
    } catch (e) {
      showError(missing(e) && e.code !== "not_found" ? "This service cannot set a primary number yet."
        : `Set primary failed: ${e.message}`);
      return;
    }
    listGeneration++; // a list read before the PUT must not paint the old primary back
    for (const [other, n] of numbers) { n.primary = other === sid; renderNumber(other); }
    sortCards();
  }

  function askDelete(sid) {
    const dialog = $("confirm-dialog");
    $("confirm-text").textContent = `Delete the number "${sid}"? Its WhatsApp link and saved login are deleted; ` +
      "linking again needs a new QR or pairing code.";
    dialog.returnValue = "";
    dialog.onclose = async () => {
      dialog.onclose = null;
      if (dialog.returnValue !== "yes") return;
      const done = await act("Delete", () => api("DELETE", sessionPath(sid)));
      if (done !== undefined) removeNumber(sid);
    };
    dialog.showModal();
  }

  // --- adding a number (QR or pairing code) ----------------------------------------------------

  function openAdd() {
    stopLinking();
    $("add-form").hidden = false;
    $("link-box").hidden = true;
    $("add-sid").value = "";
    $("add-phone").value = "";
    document.querySelector('input[name="login"][value="qr"]').checked = true;
    $("add-phone-label").hidden = true;
    $("add-dialog").showModal();
    $("add-sid").focus();
  }

  function loginKind() {
    return document.querySelector('input[name="login"]:checked').value;
  }

  async function submitAdd(event) {
    event.preventDefault();
    const sid = $("add-sid").value.trim();
    const login = loginKind();
    const phone = $("add-phone").value.trim().replace(/^\+/, "");
    if (!ID_RE.test(sid)) { setLinkError("The name is lowercase letters, digits, '-' and '_' (up to 64)."); return; }
    if (login === "code" && !PHONE_RE.test(phone)) { setLinkError("The phone is 7 to 15 digits with the country code."); return; }
    setLinkError("");
    linking = { sid, login, deadline: 0, timer: setInterval(tick, 500) };
    $("add-form").hidden = true;
    $("link-box").hidden = false;
    $("qr-box").hidden = $("code-box").hidden = true;
    delete $("qr-img").dataset.seq;
    $("pairing-code").textContent = "";
    $("link-countdown").textContent = "";
    $("link-state").textContent = login === "code" ? "Asking WhatsApp for a pairing code…" : "Waiting for a QR code…";
    try {
      const body = login === "code" ? { session_id: sid, login, phone } : { session_id: sid };
      const s = await api("POST", `${wsPath()}/sessions`, body);
      numbers.set(sid, merged(numbers.get(sid), s));
      renderNumber(sid);
      sortCards();
      $("numbers-empty").hidden = true;
      const now = numbers.get(sid);
      onLinkState(sid, now.state, now.reason);
      if (linking && now.state === "qr_required" && login === "qr" && !$("qr-img").dataset.seq) showQr(null);
    } catch (e) {
      if (linking && linking.sid === sid) $("link-state").textContent = `Could not add the number: ${e.message}`;
    }
  }

  function setLinkError(message) {
    let p = $("add-form").querySelector(".form-error");
    if (!p) $("add-form").append(p = h("p", { className: "form-error", role: "alert" }));
    p.textContent = message;
    p.hidden = !message;
  }

  function showQr(d) {
    if (!linking || linking.login !== "qr") return;
    const seq = d ? d.seq : Date.now();
    const img = $("qr-img");
    img.dataset.seq = String(seq);
    img.src = `${sessionPath(linking.sid)}/qr?format=png&seq=${enc(seq)}`; // rendered by the service (segno)
    $("qr-box").hidden = false;
    $("link-state").textContent = d ? `Scan code #${d.seq}` : "Scan the code";
    if (d) linking.deadline = Date.now() + d.expires_in * 1000;
    tick();
  }

  function showCode(d) {
    if (!linking || linking.login !== "code") return;
    $("pairing-code").textContent = d.code;
    $("code-box").hidden = false;
    $("link-state").textContent = `Pairing code #${d.seq}`;
    linking.deadline = Date.now() + d.expires_in * 1000;
    tick();
  }

  function tick() {
    if (!linking || !linking.deadline) return;
    const left = Math.ceil((linking.deadline - Date.now()) / 1000);
    const el = $("link-countdown");
    el.dataset.left = String(Math.max(0, left));
    el.textContent = left > 0 ? `Expires in ${left}s` : "Expired: waiting for a new code…";
  }

  function onLinkState(sid, state, reason) {
    if (!linking || linking.sid !== sid) return;
    if (state === "connected") {
      stopLinking();
      $("add-dialog").close();
    } else if (state === "failed" || state === "blocked" || state === "logged_out") {
      $("link-state").textContent = `Linking ended: ${state}${reason ? " (" + reason + ")" : ""}`;
      $("qr-box").hidden = $("code-box").hidden = true;
      linking.deadline = 0;
      $("link-countdown").textContent = "";
    }
  }

  function stopLinking() {
    if (linking) clearInterval(linking.timer);
    linking = null;
  }

  // --- per-number stats ------------------------------------------------------------------------

  async function openStats(sid) {
    statsSid = sid;
    const panel = $("stats-panel");
    panel.hidden = false;
    $("stats-title").textContent = `Stats · ${sid}`;
    const note = $("stats-note");
    note.hidden = true;
    const body = $("stats-table").tBodies[0];
    body.replaceChildren();
    $("stats-table").tFoot.replaceChildren();
    $("stats-risk").hidden = true;
    let stats;
    try {
      stats = await api("GET", `${sessionPath(sid)}/stats?days=${enc($("stats-days").value)}`);
    } catch (e) {
      note.textContent = missing(e) ? "Stats are not available on this service yet." : `Stats failed: ${e.message}`;
      note.hidden = false;
      $("stats-panel").scrollIntoView({ block: "nearest" });
      return;
    }
    if (statsSid !== sid) return;
    const cells = (r, first) => [first, r.sent, r.delivered, r.read, r.failed, r.received, r.replies]
      .map((v) => h("td", { text: String(v ?? 0) })).concat(h("td", { text: duration(r.uptime_s) }));
    for (const day of stats.days || []) body.append(h("tr", {}, ...cells(day, day.day)));
    if (stats.totals) $("stats-table").tFoot.append(h("tr", {}, ...cells(stats.totals, "total")));
    const risk = stats.ban_risk;
    if (risk) {
      const box = $("stats-risk");
      const factors = Object.entries(risk.factors || {}).map(([k, v]) =>
        h("li", { text: `${k}: ${typeof v === "number" ? Math.round(v * 100) / 100 : JSON.stringify(v)}` }));
      box.replaceChildren(h("p", {}, "Ban risk ", h("span", { className: "badge risk", dataset: { level: risk.level || "ok" },
        text: `${Math.round(risk.score)} ${risk.level || ""}`.trim() })), h("ul", { className: "factors" }, ...factors));
      box.hidden = false;
    }
    $("stats-panel").scrollIntoView({ block: "nearest" });
  }

  function closeStats() {
    statsSid = null;
    $("stats-panel").hidden = true;
  }

  // --- campaigns -------------------------------------------------------------------------------

  async function loadCampaigns() {
    if (!ws || feature.campaigns === false) return;
    const at = ws;
    const note = $("campaigns-note");
    let data;
    try {
      data = await api("GET", `${wsPath()}/campaigns`);
    } catch (e) {
      if (missing(e)) feature.campaigns = false;
      note.textContent = missing(e) ? "Campaigns are not available on this service yet." : `Campaigns failed: ${e.message}`;
      note.hidden = false;
      return;
    }
    if (at !== ws) return;
    feature.campaigns = true;
    const list = Array.isArray(data) ? data : data.campaigns || data.items || [];
    campaigns.clear();
    for (const c of list) campaigns.set(c.campaign_id, c);
    note.textContent = list.length ? "" : "No campaigns yet.";
    note.hidden = !!list.length;
    renderCampaigns();
  }

  const CAMPAIGN_ORDER = { running: 0, paused: 1, scheduled: 2, draft: 3, completed: 4, cancelled: 5 };

  function renderCampaigns() {
    const list = [...campaigns.values()].sort((a, b) =>
      (CAMPAIGN_ORDER[a.status] ?? 9) - (CAMPAIGN_ORDER[b.status] ?? 9) || (b.created_at || 0) - (a.created_at || 0));
    // a progress event rebuilds the cards: keep the keyboard focus on the same button of the same campaign
    const focused = document.activeElement;
    const holder = focused && focused.closest && focused.closest("#campaigns li");
    const keep = holder && [holder.dataset.campaignId, [...focused.classList].find((k) => k.startsWith("act-"))];
    $("campaigns").replaceChildren(...list.map(campaignCard));
    if (keep && keep[1]) {
      const again = [...$("campaigns").children].find((li) => li.dataset.campaignId === keep[0]);
      const button = again && again.querySelector(`.${keep[1]}`);
      if (button) button.focus();
    }
  }

  function campaignCard(c) {
    const t = c.totals || {};
    const total = t.recipients || 0;
    const done = (t.sent || 0) + (t.delivered || 0) + (t.read || 0) + (t.failed || 0) + (t.cancelled || 0);
    const button = (label, verb, cls) => h("button", { type: "button", className: `${cls} needs-write`, text: label,
      disabled: !writable(), on: { click: () => campaignAction(c.campaign_id, verb) } });
    const perNumber = Object.entries(c.numbers || {});
    const eta = c.status === "running" && c.eta_s != null ? ` · ETA ${duration(c.eta_s)}` : "";
    return h("li", { className: "card campaign", dataset: { campaignId: c.campaign_id, status: c.status || "" } },
      h("div", { className: "card-head" },
        h("strong", { className: "campaign-name", text: c.name || c.campaign_id }),
        h("span", { className: "badge campaign-status", dataset: { state: c.status || "" }, text: c.status || "?" })),
      h("progress", { className: "campaign-progress", max: Math.max(total, 1), value: Math.min(done, total),
        "aria-label": `progress of ${c.name || c.campaign_id}` }),
      h("p", { className: "campaign-counts", text: `${done} / ${total} done · ${t.delivered || 0} delivered · ` +
        `${t.read || 0} read · ${t.failed || 0} failed · ${t.replied || 0} replied${eta}` +
        (c.waiting && c.status === "running" ? ` · waiting: ${c.waiting}` : "") }),
      perNumber.length ? h("div", { className: "scroll" }, h("table", { className: "campaign-numbers" },
        h("thead", {}, h("tr", {}, ...["number", "queued", "sent", "delivered", "read", "failed", "replied"].map((x) => h("th", { text: x })))),
        h("tbody", {}, ...perNumber.map(([sid, n]) => h("tr", {}, h("td", { text: sid }),
          ...["queued", "sent", "delivered", "read", "failed", "replied"].map((k) => h("td", { text: String(n[k] || 0) }))))))) : null,
      h("div", { className: "actions" },
        c.status === "running" ? button("Pause", "pause", "secondary act-pause") : null,
        c.status === "paused" ? button("Resume", "resume", "act-resume") : null));
  }

  async function campaignAction(cid, verb) {
    const path = `${wsPath()}/campaigns/${enc(cid)}`;
    const answer = await act(verb === "pause" ? "Pause" : "Resume", () => api("POST", `${path}/${verb}`));
    if (answer === undefined) return;
    const fresh = answer && answer.campaign_id ? answer : await act("Refresh", () => api("GET", path));
    if (fresh && fresh.campaign_id) campaigns.set(cid, fresh);
    renderCampaigns();
    refreshCampaignSoon(cid); // an event may have passed the action's answer on the way
  }

  function onProgress(d) {
    const c = campaigns.get(d.campaign_id);
    if (!c) { if (feature.campaigns) loadCampaigns(); return; }
    Object.assign(c, { status: d.status || c.status, totals: d.totals || c.totals });
    if ("eta_s" in d) c.eta_s = d.eta_s;
    c.waiting = d.waiting || null;
    if (d.numbers) c.numbers = d.numbers;
    renderCampaigns();
    refreshCampaignSoon(d.campaign_id);
  }

  /** Progress events carry totals only; the per-number counts come from GET .../{id}, at most once a second.
   *  Invariant: the last read of a campaign starts after its last event. A read that an event overtook (its
   *  answer may say `running` after the `completed` event was painted) is followed by another read. */
  const campaignTimers = new Map();
  const campaignsTold = new Set(); // campaigns with an event since their read in flight started
  function refreshCampaignSoon(cid) {
    campaignsTold.add(cid);
    if (campaignTimers.has(cid)) return;
    const at = ws;
    campaignTimers.set(cid, setTimeout(async () => {
      campaignsTold.delete(cid);
      try {
        const fresh = await api("GET", `${wsPath()}/campaigns/${enc(cid)}`);
        if (at === ws && campaigns.has(cid)) { campaigns.set(cid, fresh); renderCampaigns(); }
      } catch (e) { /* the next event tries again */ }
      campaignTimers.delete(cid);
      if (at === ws && campaignsTold.has(cid)) refreshCampaignSoon(cid);
    }, 1000));
  }

  // --- every workspace (all-workspace tokens) ----------------------------------------------------

  async function loadAll() {
    if (!who || who.workspace_id) return;
    const note = $("all-note");
    let names;
    try {
      names = (await api("GET", "/v1/workspaces")).workspaces;
    } catch (e) {
      note.textContent = `Could not list the workspaces: ${e.message}`;
      return;
    }
    const rows = [];
    for (let i = 0; i < names.length; i += 6) { // a few at a time: the service rate-limits each key
      const batch = await Promise.all(names.slice(i, i + 6).map((w) =>
        api("GET", `/v1/workspaces/${enc(w)}/sessions`).then((l) => [w, l], () => [w, null])));
      rows.push(...batch);
    }
    const body = $("all-sessions").tBodies[0];
    let count = 0;
    body.replaceChildren(...rows.flatMap(([w, list]) => {
      const open = () => h("button", { type: "button", className: "link", text: w, on: { click: () => openWorkspace(w) } });
      if (!list) return [h("tr", {}, h("td", {}, open()), h("td", { colSpan: 5, className: "muted", text: "could not list" }))];
      if (!list.length) return [h("tr", {}, h("td", {}, open()), h("td", { colSpan: 5, className: "muted", text: "no numbers" }))];
      count += list.length;
      return list.map((s) => h("tr", { dataset: { workspaceId: w, sessionId: s.session_id } },
        h("td", {}, open()), h("td", { text: s.session_id }),
        h("td", {}, h("span", { className: "badge state", dataset: { state: s.state }, text: s.state })),
        h("td", { text: (!GONE_STATES.has(s.state) && s.me) || "–" }), h("td", { text: s.push_name || "–" }),
        h("td", { text: s.primary ? "primary" : "" })));
    }));
    note.textContent = `${count} numbers in ${names.length} workspaces · updated ${new Date().toLocaleTimeString()}`;
  }

  // --- events --------------------------------------------------------------------------------

  function openStream() {
    closeStream();
    source = new EventSource(`${wsPath()}/events`); // same origin: the console cookie goes along
    const mine = source;
    $("stream").textContent = "stream connecting";
    source.onopen = () => { $("stream").textContent = "stream open"; };
    source.onerror = () => {
      $("stream").textContent = mine.readyState === 2 ? "stream closed" : "stream reconnecting";
    };
    for (const type of STREAM_TYPES) {
      source.addEventListener(type, (m) => {
        let event;
        try { event = JSON.parse(m.data); } catch (e) { return; }
        onEvent(type, event.session_id, event.data || {}, event.ts);
      });
    }
  }

  function closeStream() {
    if (source) source.close();
    source = null;
    $("stream").textContent = "stream closed";
  }

  function onEvent(type, sid, d, ts) {
    switch (type) {
      case "session.status":
      case "session.disconnected":
        patchNumber(sid, Object.assign({ state: d.state, reason: d.reason || null, since: ts },
          d.state === "connected" ? { last_connected_at: ts } : {}));
        onLinkState(sid, d.state, d.reason);
        break;
      case "session.qr":
        patchNumber(sid, { state: "qr_required", reason: null });
        if (linking && linking.sid === sid) showQr(d);
        break;
      case "session.pairing_code":
        if (linking && linking.sid === sid) showCode(d);
        break;
      case "session.ready": {
        const fields = { state: "connected", reason: null, last_connected_at: ts };
        if (d.me && d.me.number) fields.me = d.me.number;
        if (d.pushname) fields.push_name = d.pushname;
        patchNumber(sid, fields);
        onLinkState(sid, "connected");
        break;
      }
      case "session.paused":
        patchNumber(sid, { paused: { reason: d.reason || "", resume_at: d.resume_at } });
        break;
      case "session.resumed":
        patchNumber(sid, { paused: null });
        break;
      case "session.ban_risk":
        patchNumber(sid, { ban_risk: { score: d.score, level: d.level, factors: d.factors } });
        break;
      case "campaign.progress":
        onProgress(d);
        break;
      case "message.queued": upsertMessage(d.message_id, { status: "queued", to: d.to }); break;
      case "message.sent": upsertMessage(d.message_id, { status: "sent" }); refreshExtrasSoon(sid); break;
      case "message.ack": upsertMessage(d.message_id, { status: d.status }); refreshExtrasSoon(sid); break;
      case "message.failed": upsertMessage(d.message_id, { status: "failed" }); refreshExtrasSoon(sid); break;
      case "message.received": addInbound(sid, d); break;
      default: break;
    }
  }

  // --- test message ------------------------------------------------------------------------------

  async function send() {
    const sid = $("send-from").value;
    const to = $("send-to").value.trim();
    const text = $("send-text").value;
    const accepted = await act("Send", () => api("POST", `${wsPath()}/messages`, { session_id: sid, to, text }));
    if (accepted) upsertMessage(accepted.message_id, { status: accepted.status, to, text });
  }

  function upsertMessage(id, fields) {
    if (!id) return;
    const body = $("outbound").tBodies[0];
    let row = body.querySelector(`tr[data-message-id="${CSS.escape(id)}"]`);
    if (!row) {
      row = body.insertRow(0);
      row.dataset.messageId = id;
      for (let i = 0; i < 4; i++) row.insertCell();
      row.cells[0].textContent = id;
      while (body.rows.length > 50) body.deleteRow(-1);
    }
    if (fields.to) row.cells[1].textContent = fields.to;
    if (fields.text) row.cells[2].textContent = fields.text;
    const old = row.dataset.status;
    if (fields.status && (old === undefined || STATUS_RANK[fields.status] > STATUS_RANK[old])) {
      row.dataset.status = fields.status; // statuses only move forward, whatever order events arrive in
      row.cells[3].textContent = fields.status;
    }
  }

  function addInbound(sid, d) {
    const li = h("li", { dataset: { waMessageId: d.wa_message_id || "", sessionId: sid || "" },
      text: `${d.from}: ${d.text == null ? `[${d.type}]` : d.text}` });
    $("inbound").prepend(li);
    while ($("inbound").children.length > 50) $("inbound").lastChild.remove();
  }

  // --- wiring ----------------------------------------------------------------------------------

  $("login-btn").addEventListener("click", () => signIn($("token-input").value.trim()));
  $("token-input").addEventListener("keydown", (e) => { if (e.key === "Enter") signIn($("token-input").value.trim()); });
  $("signout").addEventListener("click", signOut);
  $("open-ws").addEventListener("click", () => openWorkspace($("workspace").value));
  $("workspace").addEventListener("keydown", (e) => {
    if (e.key === "Enter" && !$("workspace").readOnly) openWorkspace($("workspace").value);
  });
  for (const tab of document.querySelectorAll(".tab")) tab.addEventListener("click", () => showView(tab.dataset.view));
  $("add-number").addEventListener("click", openAdd);
  $("refresh-numbers").addEventListener("click", loadNumbers);
  $("refresh-campaigns").addEventListener("click", () => { feature.campaigns = null; loadCampaigns(); });
  $("refresh-all").addEventListener("click", loadAll);
  $("add-form").addEventListener("submit", submitAdd);
  for (const radio of document.querySelectorAll('input[name="login"]')) {
    radio.addEventListener("change", () => { $("add-phone-label").hidden = loginKind() !== "code"; });
  }
  $("add-cancel").addEventListener("click", () => $("add-dialog").close());
  $("link-close").addEventListener("click", () => $("add-dialog").close());
  $("add-dialog").addEventListener("close", stopLinking);
  $("stats-close").addEventListener("click", closeStats);
  $("stats-days").addEventListener("change", () => { if (statsSid) openStats(statsSid); });
  $("send-btn").addEventListener("click", send);
  start();
})();
