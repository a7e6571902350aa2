// wa-ray console: plain JS, no build step. Auth is an HttpOnly cookie set by POST /console/session;
// this script never sees an API secret, and drops the token from the URL as soon as it has used it.
"use strict";

(function () {
  const $ = (id) => document.getElementById(id);
  const HEADERS = { "X-WA-Console": "1", "Content-Type": "application/json" };
  const STATUS_RANK = { queued: 0, sending: 1, sent: 2, delivered: 3, read: 4, failed: 5 };
  let current = null; // {ws, sid}
  let source = null; // EventSource

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
      const e = new Error(`${response.status} ${err.code || ""}: ${err.message || response.statusText}`);
      e.status = response.status;
      throw e;
    }
    return data;
  }

  const enc = encodeURIComponent;
  const sessionPath = () => `/v1/workspaces/${enc(current.ws)}/sessions/${enc(current.sid)}`;

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

  function signedIn(who) {
    showError("");
    $("login").hidden = true;
    $("app").hidden = false;
    $("signout").hidden = false;
    const until = who.expires_at ? new Date(who.expires_at * 1000).toLocaleTimeString() : "?";
    $("whoami").textContent = `${who.role}${who.workspace_id ? " · " + who.workspace_id : " · all workspaces"}` +
      ` · until ${until}`;
    const list = $("workspaces");
    list.replaceChildren(...who.workspaces.map((ws) => Object.assign(document.createElement("option"), { value: ws })));
    if (who.workspace_id) {
      $("workspace").value = who.workspace_id;
      $("workspace").readOnly = true;
    }
  }

  async function signOut() {
    closeStream();
    try { await api("DELETE", "/console/session"); } catch (e) { /* already gone */ }
    current = null;
    showLogin();
  }

  // --- session ---------------------------------------------------------------------------------

  async function connect() {
    showError("");
    const ws = $("workspace").value.trim();
    const sid = $("session").value.trim();
    if (!ws || !sid) { showError("Pick a workspace and a session id."); return; }
    closeStream();
    current = { ws, sid };
    delete $("qr-img").dataset.seq;
    $("connect").disabled = true;
    try {
      openStream(); // before creating: the first QR must not be missed
      const session = await api("POST", `/v1/workspaces/${enc(ws)}/sessions`, { session_id: sid });
      renderSession(session);
      $("disconnect").disabled = false;
    } catch (e) {
      showError(`Connect failed: ${e.message}`);
      closeStream();
    } finally {
      $("connect").disabled = false;
    }
  }

  async function disconnect() {
    if (!current) return;
    showError("");
    try {
      renderSession(await api("POST", `${sessionPath()}/logout`));
    } catch (e) {
      showError(`Disconnect failed: ${e.message}`);
    }
  }

  function renderSession(s) {
    setState(s.state, s.reason || "");
    if (s.me && s.state === "connected") $("phone").textContent = s.me; // a stale number is not shown
    if (s.state === "qr_required" && !$("qr-img").dataset.seq) showQr(null); // the QR event may have come first
  }

  function setState(state, reason) {
    const el = $("state");
    el.textContent = state;
    el.dataset.state = state;
    $("state-reason").textContent = reason ? `(${reason})` : "";
    $("send-btn").disabled = state !== "connected";
    if (state !== "qr_required") $("qr-box").hidden = true;
    if (state === "logged_out" || state === "stopped") $("phone").textContent = "–";
  }

  function showQr(data) {
    // Rendered by the service from the raw string (segno); seq busts the browser cache per code.
    const seq = data ? data.seq : Date.now();
    const img = $("qr-img");
    img.dataset.seq = String(seq);
    img.src = `${sessionPath()}/qr?format=png&seq=${seq}`;
    $("qr-meta").textContent = data ? `code #${data.seq}, expires in ${data.expires_in}s` : "";
    $("qr-box").hidden = false;
  }

  // --- events ------------------------------------------------------------------------------------

  function openStream() {
    const url = `/v1/workspaces/${enc(current.ws)}/events?session_id=${enc(current.sid)}`;
    source = new EventSource(url); // same origin: the console cookie goes along
    $("stream").textContent = "connecting";
    source.onopen = () => { $("stream").textContent = "open"; };
    source.onerror = () => { $("stream").textContent = source && source.readyState === 2 ? "closed" : "reconnecting"; };
    const on = (type, fn) => source.addEventListener(type, (m) => {
      const event = JSON.parse(m.data);
      logEvent(event);
      fn(event.data || {}, event);
    });
    on("session.status", (d) => setState(d.state, d.reason));
    on("session.qr", (d) => { setState("qr_required", ""); showQr(d); });
    on("session.ready", (d) => { $("phone").textContent = (d.me && d.me.number) || "?"; });
    on("session.disconnected", (d) => setState(d.state, d.reason));
    on("message.queued", (d) => upsertMessage(d.message_id, { status: "queued", to: d.to }));
    on("message.sent", (d) => upsertMessage(d.message_id, { status: "sent" }));
    on("message.ack", (d) => upsertMessage(d.message_id, { status: d.status }));
    on("message.failed", (d) => upsertMessage(d.message_id, { status: "failed" }));
    on("message.received", (d) => addInbound(d));
  }

  function closeStream() {
    if (source) source.close();
    source = null;
    $("stream").textContent = "closed";
  }

  function logEvent(event) {
    const li = document.createElement("li");
    li.textContent = `${event.id}  ${event.type}`;
    const log = $("events-log");
    log.prepend(li);
    while (log.children.length > 50) log.lastChild.remove();
  }

  // --- messages ----------------------------------------------------------------------------------

  async function send() {
    showError("");
    const to = $("send-to").value.trim();
    const text = $("send-text").value;
    try {
      const accepted = await api("POST", `/v1/workspaces/${enc(current.ws)}/messages`,
        { session_id: current.sid, to, text });
      upsertMessage(accepted.message_id, { status: accepted.status, to, text });
    } catch (e) {
      showError(`Send failed: ${e.message}`);
    }
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
    }
    if (fields.to) row.cells[1].textContent = fields.to;
    if (fields.text) row.cells[2].textContent = fields.text;
    const old = row.dataset.status;
    if (fields.status && (old === undefined || STATUS_RANK[fields.status] > STATUS_RANK[old])) {
      row.dataset.status = fields.status; // statuses only move forward, whatever order events arrive in
      row.cells[3].textContent = fields.status;
    }
  }

  function addInbound(d) {
    const li = document.createElement("li");
    li.dataset.waMessageId = d.wa_message_id || "";
    li.textContent = `${d.from}: ${d.text == null ? `[${d.type}]` : d.text}`;
    $("inbound").prepend(li);
  }

  // --- wiring ------------------------------------------------------------------------------------

  $("login-btn").addEventListener("click", () => signIn($("token-input").value.trim()));
  $("signout").addEventListener("click", signOut);
  $("connect").addEventListener("click", connect);
  $("disconnect").addEventListener("click", disconnect);
  $("send-btn").addEventListener("click", send);
  start();
})();
