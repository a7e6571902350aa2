"""Every Redis key name in one place, so ownership and layout are reviewable.

The layout is ready for a Redis Cluster (issue 16): every key that one Lua script or one MULTI touches hashes to
one slot, through a hash tag.

- A workspace's keys are `wa:{<ws>}:<kind>[:<rest>]`. Workspace ids are `[a-z0-9][a-z0-9_-]*` (wa_ray/ids.py),
  so `{<ws>}` is always a valid tag, and `wa:{<ws>}:` is exactly that workspace's prefix: no other key starts
  with it, which is what a purge deletes.
- What one API key owns (its record, generation, revocation, nonces, rate limit, stream slots) is
  `wa:{k:<key id>}:<kind>`. The `:` in the tag means it can never equal a workspace's.
- Global keys that one transaction reads together share a tag of their own (`{g:wh}`: the dispatcher's lanes;
  `{g:metrics}`: the metric fold). Every other global key is untagged and only ever touched by single-key
  commands; a global index is written before the per-workspace write and removed after it, so a crash leaves
  at worst a stale member, and its readers treat it as a hint.

`LAYOUT` names this layout; storage/layout_migration.py moves a Redis written by an older one.
"""

from __future__ import annotations

PREFIX = "wa"
PRIORITIES: tuple[str, ...] = ("urgent", "high", "normal", "bulk")
LAYOUT = "2"


def tag(ws: str) -> str:
    """The hash tag of a workspace: all its keys share one slot of a Redis Cluster."""
    return "{" + ws + "}"


def _w(ws: str) -> str:
    return f"{PREFIX}:{{{ws}}}"


def _k(key_id: str) -> str:
    return f"{PREFIX}:{{k:{key_id}}}"


_WEBHOOK_LANES = f"{PREFIX}:{{g:wh}}"
_METRICS = f"{PREFIX}:{{g:metrics}}"


def workspace_prefix(ws: str) -> str:
    """Every key of the workspace starts with this, and no other key does."""
    return f"{_w(ws)}:"


def workspace_of(name: str) -> str | None:
    """The workspace a key name belongs to, read back from the name: `<ws>` of `wa:{<ws>}:...`; None for a key
    of an API key (`wa:{k:<id>}:...`), of a global tag (`{g:wh}`, `{g:metrics}`) or untagged.

    It relies on the layout's invariant: the hash tag runs from `wa:{` to the first `}`, which a `:` follows,
    and a workspace's tag holds no `:` while every other tag does. It does not check the tag against the id
    rule (wa_ray/ids.py): a caller that builds on the id as a valid one checks it."""
    opening = f"{PREFIX}:{{"
    if not name.startswith(opening):
        return None
    ws, closed, rest = name[len(opening):].partition("}")
    if not closed or not rest.startswith(":") or not ws or ":" in ws:
        return None
    return ws


def api_key_prefix(key_id: str) -> str:
    """Every key of the API key starts with this (`wa:{k:<id>}:`), and no other key does."""
    return f"{_k(key_id)}:"


def layout() -> str:
    """The layout the data is written in (`LAYOUT`); absent in a Redis written before layouts had a name."""
    return f"{PREFIX}:layout"


def events(ws: str) -> str:
    return f"{_w(ws)}:events"


def workspaces() -> str:
    return f"{PREFIX}:workspaces"


def session(ws: str, sid: str) -> str:
    return f"{_w(ws)}:session:{sid}"


def session_index(ws: str) -> str:
    return f"{_w(ws)}:sessions"


def all_sessions() -> str:
    return f"{PREFIX}:sessions:all"


def queue(ws: str, sid: str, priority: str) -> str:
    return f"{_w(ws)}:q:{sid}:{priority}"


def message(ws: str, mid: str) -> str:
    """A message's record. It names the workspace so that the accept script, which writes it with the queue
    and the events of the workspace, stays in one slot; every caller has the workspace at hand."""
    return f"{_w(ws)}:msg:{mid}"


def message_history(ws: str, mid: str) -> str:
    return f"{_w(ws)}:msg-history:{mid}"


def wa_message(ws: str, wa_id: str) -> str:
    """WhatsApp message id -> our message id, within the workspace that sent it: an ack or a Meta status
    reaching one workspace can never name another workspace's message."""
    return f"{_w(ws)}:wamsg:{wa_id}"


def idempotency(ws: str, key: str) -> str:
    return f"{_w(ws)}:idem:{key}"


def api_key(key_id: str) -> str:
    return f"{_k(key_id)}:apikey"


def nonce(key_id: str, value: str) -> str:
    return f"{_k(key_id)}:nonce:{value}"


def webhook(ws: str) -> str:
    return f"{_w(ws)}:webhook"


def webhook_workspaces() -> str:
    return f"{_WEBHOOK_LANES}:webhook-workspaces"


def webhook_attempts(ws: str) -> str:
    return f"{_w(ws)}:webhook-attempts"


def dead_letters(ws: str) -> str:
    return f"{_w(ws)}:dead-letters"


def auth_state(ws: str, sid: str) -> str:
    return f"{_w(ws)}:auth:{sid}"


QUEUE_GROUP = "senders"
WEBHOOK_GROUP = "webhooks"


# --- API edge: keys, tokens, rate limits, audit, metrics (owned by serve_app) ---


def api_key_index() -> str:
    return f"{PREFIX}:apikeys"


def api_key_generation(key_id: str) -> str:
    """A key id's generation, bumped by every create and never deleted: a re-created id is new."""
    return f"{_k(key_id)}:apikey-gen"


def api_key_revoked(key_id: str) -> str:
    """revoked_at of a key: the service's bootstrap key is not re-created over one of these."""
    return f"{_k(key_id)}:apikey-revoked"


def key_stream_slots(key_id: str) -> str:
    """Sorted set lease id -> lease expiry (ms): the open SSE streams of one API key."""
    return f"{_k(key_id)}:streams"


def token_stream_slots(key_id: str, jti: str) -> str:
    """The open SSE streams of one stream token, in the slot of the key that issued it: a stream holds a slot
    of both, in one script."""
    return f"{_k(key_id)}:streams:token:{jti}"


def key_rate_limit(key_id: str) -> str:
    """The request rate limit of one API key, in its slot: the nonce check and the limit are one script."""
    return f"{_k(key_id)}:rl"


def revoked_token(jti: str) -> str:
    return f"{PREFIX}:token-revoked:{jti}"


def rate_limit(subject: str) -> str:
    return f"{PREFIX}:rl:{subject}"


def audit() -> str:
    return f"{PREFIX}:audit"


def audit_anonymous() -> str:
    """Mutating calls refused before authentication: capped on its own, so they never push audit() entries out."""
    return f"{PREFIX}:audit:anonymous"


def admission() -> str:
    """Hash: run-time overrides of the ingress's load-shedding limits (serve_app/admission.py)."""
    return f"{PREFIX}:cfg:admission"


def metrics_cursor() -> str:
    """Hash ws -> the last event id folded into the metric counters."""
    return f"{_METRICS}:cursor"


def metrics_counters() -> str:
    return f"{_METRICS}:counters"


def metrics_histogram(name: str) -> str:
    return f"{_METRICS}:hist:{name}"


def metrics_qr_started() -> str:
    """Hash "{ws}/{sid}" -> ts of the session's last `initializing`, until its first QR is seen."""
    return f"{_METRICS}:qr-started"


def webhook_stats() -> str:
    """Hash of webhook delivery counters (delivered, failed, retried), written by the dispatcher."""
    return f"{_METRICS}:webhook-stats"


# --- message pipeline: providers, pacing, sender liveness, webhook outbox (owned by messages) ---


def cloud_queue(ws: str, priority: str) -> str:
    """Messages routed to the Cloud API, one stream per priority (same group as the session queues)."""
    return f"{_w(ws)}:cq:{priority}"


def provider(ws: str) -> str:
    """Hash: the workspace's provider config (priority, override, Cloud API credentials encrypted)."""
    return f"{_w(ws)}:provider"


def provider_workspaces() -> str:
    """Set of workspaces with a provider config: the selector watches these."""
    return f"{PREFIX}:provider-workspaces"


def cloud_workspaces() -> str:
    """Set of workspaces with Cloud API credentials: the cloud sender reads their queues."""
    return f"{PREFIX}:cloud-workspaces"


def provider_current(ws: str) -> str:
    """The provider the selector last announced (provider.changed fires when this flips)."""
    return f"{_w(ws)}:provider-current"


def breaker(ws: str) -> str:
    """Hash: the Cloud API circuit breaker of a workspace (state, failures, opened_at)."""
    return f"{_w(ws)}:breaker"


def meta_number(phone_number_id: str) -> str:
    """phone_number_id -> the one workspace that owns it, so a Meta webhook finds its workspace (and app secret).

    Global, not workspace-tagged: Meta's ids are one namespace (storage/providers.py claims them)."""
    return f"{PREFIX}:meta-number:{phone_number_id}"


def meta_verify(token_digest: str) -> str:
    """sha256(verify token) -> workspace: the older single-owner form, still read and released."""
    return f"{PREFIX}:meta-verify:{token_digest}"


def meta_verifiers(token_digest: str) -> str:
    """Set of the workspaces that configured sha256(verify token), for the GET subscription handshake."""
    return f"{PREFIX}:meta-verifiers:{token_digest}"


def pacing(ws: str) -> str:
    """JSON of a workspace's pacing overrides."""
    return f"{_w(ws)}:pacing"


def pace_log(ws: str, sid: str) -> str:
    """Sorted set of a session's send times over the last hour (the pacing windows)."""
    return f"{_w(ws)}:pace:{sid}"


def session_paused(ws: str, sid: str) -> str:
    """Present (with the resume time) while a session is paused by its hourly cap."""
    return f"{_w(ws)}:paused:{sid}"


def sender_alive(epoch: str) -> str:
    """Heartbeat of one sender incarnation; its absence means an intent it left is orphaned."""
    return f"{PREFIX}:sender:{epoch}"


def seen(ws: str, wa_id: str) -> str:
    """Inbound dedupe by WhatsApp message id (web and Cloud API)."""
    return f"{_w(ws)}:seen:{wa_id}"


def webhook_replay(ws: str) -> str:
    """Dead letters put back for delivery; read by the dispatcher like the event stream."""
    return f"{_w(ws)}:webhook-replay"


def webhook_endpoints(ws: str) -> str:
    """Hash: a workspace's webhook endpoints, endpoint id -> its record (storage/webhook_endpoints.py)."""
    return f"{_w(ws)}:webhook-endpoints"


def webhook_endpoint_lanes() -> str:
    """Set of "{ws}/{endpoint id}": every endpoint the dispatcher delivers to."""
    return f"{_WEBHOOK_LANES}:webhook-endpoint-lanes"


def webhook_lanes_version() -> str:
    """Counter: bumped when a workspace gets its first endpoint; the dispatcher writes the value it has read
    to `webhook_lanes_seen`, so a create can wait until the dispatcher copies that workspace's events."""
    return f"{_WEBHOOK_LANES}:webhook-lanes-version"


def webhook_lanes_seen() -> str:
    return f"{_WEBHOOK_LANES}:webhook-lanes-seen"


def webhook_queue(ws: str, endpoint: str) -> str:
    """Stream: the events fanned out to one endpoint, each entry a copy of the event, deleted once settled."""
    return f"{_w(ws)}:webhook-queue:{endpoint}"


def endpoint_dead_letters(ws: str, endpoint: str) -> str:
    return f"{_w(ws)}:dead-letters:{endpoint}"


def endpoint_replay(ws: str, endpoint: str) -> str:
    """Stream: one endpoint's dead letters put back for delivery."""
    return f"{_w(ws)}:webhook-replay:{endpoint}"


def webhook_policy(ws: str) -> str:
    """Hash: a workspace's webhook retry policy overrides (max_attempts, base_delay_s, max_delay_s)."""
    return f"{_w(ws)}:webhook-policy"


def media_policy(ws: str) -> str:
    """JSON of a workspace's inbound media policy (download, max_bytes)."""
    return f"{_w(ws)}:media-policy"


def media(ws: str, media_id: str) -> str:
    """JSON of one stored media file's metadata (storage/media.py); expires with the retention period."""
    return f"{_w(ws)}:media:{media_id}"


def media_pending(ws: str, media_id: str) -> str:
    """JSON of a received media allotted an id but not downloaded yet (lazy policy, storage/media_pending.py)."""
    return f"{_w(ws)}:media-pending:{media_id}"


def media_pending_lock(ws: str, media_id: str) -> str:
    """Held (SET NX, with a TTL) by the one request downloading a pending media."""
    return f"{_w(ws)}:media-pending-lock:{media_id}"


def media_expiry() -> str:
    """Sorted set `ws/media_id` -> expiry time: what the media sweep deletes from disk."""
    return f"{PREFIX}:media-expiry"


def sync_policy(ws: str) -> str:
    """JSON of a workspace's history sync policy (days, max_chats, messages_per_chat, on_link)."""
    return f"{_w(ws)}:sync-policy"


# --- tallies: per-number daily counts and campaign counts (storage/tallies.py) ---


def service_alive() -> str:
    """Epoch seconds the session supervisor last saw the service running (written every few seconds): where a
    connected stretch that a whole-service stop cut short really ended (storage/uptime.py)."""
    return f"{PREFIX}:service-alive"


def session_day_stats(ws: str, day: str) -> str:
    """Hash `{sid}|{metric}` -> count for one UTC day (`YYYYMMDD`): what each of the workspace's numbers did."""
    return f"{_w(ws)}:stats:{day}"


def campaign_counts(ws: str) -> str:
    """Hash `{campaign}|{sid or 'meta'}|{status}` -> how many of the campaign's messages are in that status
    on that number now (the message scripts move a message's count with its status, in the same step)."""
    return f"{_w(ws)}:cmp-n"


def contacts(ws: str, sid: str) -> str:
    """Sorted set contact chat id -> when this number first sent to it (0: the contact wrote first, so it
    is never a new contact of ours): the daily cap on new unique contacts counts the last 24 h of it."""
    return f"{_w(ws)}:contacts:{sid}"


def campaign_contact(ws: str, sid: str, contact: str) -> str:
    """The campaign that last wrote to `contact` from number `sid` (a reply from the contact counts for it)."""
    return f"{_w(ws)}:cmp-contact:{sid}:{contact}"


def campaign_replied(ws: str, campaign: str, contact: str) -> str:
    """Present once `contact` has replied to `campaign`: a reply counts once however many follow."""
    return f"{_w(ws)}:cmp-replied:{campaign}:{contact}"


# --- numbers and plan limits (storage/numbers.py, storage/plan_limits.py) ---


def primary(ws: str) -> str:
    """The workspace's primary number: the session id the default sender prefers while it can send."""
    return f"{_w(ws)}:primary"


def plan_limits(ws: str) -> str:
    """Hash of the workspace's plan limits set by an admin (`max_numbers`, `messages_per_day`; absent: none)."""
    return f"{_w(ws)}:plan"


def plan_messages(ws: str, day: str) -> str:
    """Messages charged against the workspace's `messages_per_day` on one UTC day (`YYYYMMDD`)."""
    return f"{_w(ws)}:plan-msgs:{day}"


# --- ban risk (storage/ban_risk.py) ---


def ban_risk_policy(ws: str) -> str:
    """JSON of a workspace's ban-risk policy (daily new-contacts cap, warning thresholds, automatic pause)."""
    return f"{_w(ws)}:ban-risk"


def risk(ws: str, sid: str) -> str:
    """JSON of a number's last ban-risk evaluation: score, level, factors, at."""
    return f"{_w(ws)}:risk:{sid}"


def risk_above(ws: str, sid: str) -> str:
    """Set of the warning thresholds a number's score is at or above now (an event per upward crossing)."""
    return f"{_w(ws)}:risk-above:{sid}"


def risk_paused(ws: str, sid: str) -> str:
    """Present while a number is paused by its ban-risk score; only an operator's resume clears it."""
    return f"{_w(ws)}:risk-paused:{sid}"


def risk_cooldown(ws: str, sid: str) -> str:
    """Present for the cool-down after an operator's resume: no automatic pause of the number meanwhile."""
    return f"{_w(ws)}:risk-cooldown:{sid}"


def repliers(ws: str, sid: str, day: str) -> str:
    """Set of the contacts whose reply to a number was counted on UTC day `day` (one reply per contact a day)."""
    return f"{_w(ws)}:repliers:{sid}:{day}"


# --- data protection (storage/workspace_purge.py, storage/retention.py) ---


def purged_workspaces() -> str:
    """Hash ws -> JSON {at, endpoints} of a deleted workspace, for an hour: the supervisor's sweep deletes what
    a delivery in flight at the delete still wrote for it (dead letters, attempt counters)."""
    return f"{PREFIX}:purged-workspaces"


def retention(ws: str) -> str:
    """JSON of a workspace's retention policy (days per data kind), within the operator's bounds."""
    return f"{_w(ws)}:retention"
