/*
 * WhatsApp Web simulator page.
 *
 * Exposes, through window.require(name), the module surface that
 * whatsapp-web.js 1.34.x reads from the real page (see
 * /work/shared/WWEBJS_SURFACE.md). Anything outside that surface is
 * deliberately absent: window.require returns undefined for unknown names,
 * exactly like the real loader does for modules that do not exist.
 *
 * Transport to the simulator server is one WebSocket (/ws) carrying JSON.
 * Device credentials live in IndexedDB ("wawc" / "user") so a saved browser
 * state reconnects without a QR code.
 */
(() => {
  'use strict';

  const VERSION = document.querySelector('meta[name="wa-sim-version"]')?.content || '2.3000.1019999999';

  // ------------------------------------------------------------------ events
  // Backbone-style events: space-separated names, (cb, ctx), 'all' catch-all.
  const splitNames = (names) => String(names ?? '').split(/\s+/).filter(Boolean);

  class Events {
    on(names, cb, ctx) {
      if (typeof cb !== 'function') return this;
      if (!this._events) Object.defineProperty(this, '_events', { value: Object.create(null), enumerable: false });
      for (const n of splitNames(names)) {
        (this._events[n] || (this._events[n] = [])).push({ cb, ctx, once: false });
        if (this._listenerAdded) this._listenerAdded(n);
      }
      return this;
    }
    once(names, cb, ctx) {
      this.on(names, cb, ctx);
      for (const n of splitNames(names)) {
        const list = this._events[n];
        list[list.length - 1].once = true;
      }
      return this;
    }
    off(names, cb, ctx) {
      const ev = this._events;
      if (!ev) return this;
      const list = names == null ? Object.keys(ev) : splitNames(names);
      for (const n of list) {
        if (!ev[n]) continue;
        ev[n] = ev[n].filter((l) => !((!cb || l.cb === cb) && (!ctx || l.ctx === ctx)));
        if (!ev[n].length) delete ev[n];
      }
      return this;
    }
    trigger(names, ...args) {
      if (!this._events) return this;
      for (const n of splitNames(names)) {
        this._fire(n, args);
        if (n !== 'all') this._fire('all', [n, ...args]);
      }
      return this;
    }
    _fire(name, args) {
      const list = this._events && this._events[name];
      if (!list) return;
      for (const l of list.slice()) {
        if (l.once) {
          const cur = this._events[name];
          const i = cur ? cur.indexOf(l) : -1;
          if (i >= 0) cur.splice(i, 1);
        }
        // One broken listener must not starve the others (the bridge's among them).
        try { l.cb.apply(l.ctx || this, args); } catch (e) { console.error('listener for', name, 'failed', e); }
      }
    }
    listenTo(obj, names, cb) { obj.on(names, cb, this); return this; }
    stopListening(obj, names, cb) { if (obj) obj.off(names, cb, this); return this; }
    listenerCount(name) { return (this._events && this._events[name] || []).length; }
  }

  // Turn models, wids and keys into plain data (what page.evaluate returns cleanly).
  const plain = (v) => {
    if (v == null) return v;
    if (typeof v.toPlain === 'function') return v.toPlain();
    if (v instanceof Model) return v.serialize();
    if (Array.isArray(v)) return v.map(plain);
    return v;
  };

  class Model extends Events {
    constructor(attrs) {
      super();
      Object.defineProperty(this, 'attributes', { value: {}, enumerable: false });
      this.set({ ...(this.defaults ? this.defaults() : {}), ...(attrs || {}) }, { silent: true });
    }
    get(k) { return this.attributes[k]; }
    has(k) { return this.attributes[k] != null; }
    set(key, val, opts) {
      let attrs;
      if (key !== null && typeof key === 'object') { attrs = key; opts = val; } else { attrs = { [key]: val }; }
      const changed = [];
      for (const [k, v] of Object.entries(attrs)) {
        this._accessor(k);
        const had = Object.prototype.hasOwnProperty.call(this.attributes, k);
        const prev = this.attributes[k];
        if (had && prev === v) continue;
        this.attributes[k] = v;
        changed.push([k, v, prev]);
      }
      if (!(opts && opts.silent) && changed.length) {
        // WhatsApp's models pass (model, value, prev): whatsapp-web.js reads newBody/prevBody that way.
        for (const [k, v, prev] of changed) this.trigger('change:' + k, this, v, prev);
        this.trigger('change', this);
      }
      return this;
    }
    // Attribute accessors live on the model's class prototype, defined once per key: per-instance
    // accessors make every model its own shape, and reading `t` of 5,000 chats then costs milliseconds.
    _accessor(k) {
      if (k in this) return; // an own field, a method or getter of the class, or an accessor made before
      Object.defineProperty(Object.getPrototypeOf(this), k, {
        get() { return this.attributes[k]; },
        set(v) { this.set(k, v); },
        enumerable: true,
        configurable: true,
      });
    }
    serialize() {
      const out = {};
      for (const [k, v] of Object.entries(this.attributes)) out[k] = plain(v);
      return out;
    }
    toJSON() { return this.serialize(); }
    unsafe() { return this; }
  }

  const keyOf = (x) => {
    if (x == null) return undefined;
    if (typeof x === 'string') return x;
    if (x instanceof Model) return keyOf(x.id);
    if (typeof x === 'object' && x._serialized) return x._serialized;
    return String(x);
  };

  class Collection extends Events {
    constructor(modelClass) {
      super();
      this.modelClass = modelClass;
      this._models = [];
      this._index = new Map();
      // Model events bubble to the collection unchanged (Backbone semantics).
      this._bubble = (name, ...args) => this.trigger(name, ...args);
    }
    get models() { return this._models; }
    get length() { return this._models.length; }
    get(x) { return this._index.get(keyOf(x)); }
    has(x) { return this._index.has(keyOf(x)); }
    add(items, opts) {
      const many = Array.isArray(items);
      const out = [];
      for (let m of many ? items : [items]) {
        if (!(m instanceof Model)) m = new this.modelClass(m);
        const k = keyOf(m.id);
        const existing = this._index.get(k);
        if (existing) {
          if (opts && opts.merge && existing !== m) existing.set(m.attributes);
          out.push(existing);
          continue;
        }
        this._index.set(k, m);
        this._models.push(m);
        m.on('all', this._bubble);
        if (!(opts && opts.silent)) this.trigger('add', m, this, opts || {});
        out.push(m);
      }
      return many ? out : out[0];
    }
    remove(items, opts) {
      const many = Array.isArray(items);
      const out = [];
      for (const x of many ? items : [items]) {
        const m = this.get(x);
        if (!m) continue;
        this._index.delete(keyOf(m.id));
        this._models.splice(this._models.indexOf(m), 1);
        m.off('all', this._bubble);
        if (!(opts && opts.silent)) this.trigger('remove', m, this, opts || {});
        out.push(m);
      }
      return many ? out : out[0];
    }
    reset() { for (const m of this._models.slice()) this.remove(m, { silent: true }); this.trigger('reset', this); }
    getModelsArray() { return this._models.slice(); }
    toArray() { return this._models.slice(); }
    forEach(fn) { this._models.slice().forEach(fn); }
    map(fn) { return this._models.map(fn); }
    filter(fn) { return this._models.filter(fn); }
    some(fn) { return this._models.some(fn); }
    every(fn) { return this._models.every(fn); }
    at(i) { return this._models.at(i); }
    head() { return this._models[0]; }
    last() { return this._models[this._models.length - 1]; }
    where(attrs) { return this._models.filter((m) => Object.entries(attrs).every(([k, v]) => m.get(k) === v)); }
    findFirst(fn) { return this._models.find(fn); }
    // WhatsApp's collections fetch by id asynchronously; a predicate keeps the array meaning.
    find(x) { return typeof x === 'function' ? this._models.find(x) : Promise.resolve(this.get(x)); }
    serialize() { return this._models.map((m) => m.serialize()); }
  }

  // ------------------------------------------------------------------- wids
  class Wid {
    constructor(s) {
      const str = String(s);
      const at = str.indexOf('@');
      const user = at >= 0 ? str.slice(0, at) : str;
      let server = at >= 0 ? str.slice(at + 1) : 'c.us';
      if (server === 's.whatsapp.net') server = 'c.us';
      this.server = server;
      this.user = user;
      this._serialized = user + '@' + server;
    }
    isLid() { return this.server === 'lid'; }
    isGroup() { return this.server === 'g.us'; }
    isUser() { return this.server === 'c.us' || this.server === 'lid'; }
    isStatus() { return this.user === 'status' && this.server === 'broadcast'; }
    isBroadcast() { return this.server === 'broadcast'; }
    isNewsletter() { return this.server === 'newsletter'; }
    isServer() { return this.server === 'c.us' && this.user === 'server'; }
    equals(o) { return o != null && keyOf(o) === this._serialized; }
    toString() { return this._serialized; }
    toJid() { return this.server === 'c.us' ? this.user + '@s.whatsapp.net' : this._serialized; }
    toPlain() { return { server: this.server, user: this.user, _serialized: this._serialized }; }
  }

  const createWid = (x) => {
    if (x == null || x === '') return undefined;
    if (x instanceof Wid) return x;
    if (typeof x === 'object' && x._serialized) return new Wid(x._serialized);
    return new Wid(x);
  };

  const WidFactory = {
    createWid,
    createWidFromWidLike: createWid,
    createUserWid: (user, server = 'c.us') => new Wid(String(user).split('@')[0] + '@' + server),
    toUserWid: (w) => createWid(w),
    asUserWidOrThrow: (w) => {
      const wid = createWid(w);
      if (!wid || !wid.isUser()) throw new Error('asUserWidOrThrow: not a user wid: ' + keyOf(w));
      return wid;
    },
    isWidlike: (x) => x instanceof Wid || (x && typeof x === 'object' && typeof x._serialized === 'string'),
  };

  // --------------------------------------------------------------- msg keys
  const hex = (n) => Array.from(crypto.getRandomValues(new Uint8Array(n)), (b) => b.toString(16).padStart(2, '0')).join('').toUpperCase();

  class MsgKey {
    // Accepts both shapes the real constructor takes:
    // {from, to, id, participant, selfDir} and {fromMe, remote, id, participant}.
    constructor(o) {
      if (o instanceof MsgKey) o = { fromMe: o.fromMe, remote: o.remote, id: o.id, participant: o.participant };
      let fromMe;
      let remote;
      if (o.fromMe === undefined && (o.selfDir !== undefined || o.from !== undefined)) {
        fromMe = o.selfDir === 'out';
        remote = fromMe ? o.to : o.from;
      } else {
        fromMe = !!o.fromMe;
        remote = o.remote;
      }
      this.fromMe = fromMe;
      this.remote = createWid(remote);
      this.id = String(o.id);
      this.participant = o.participant ? createWid(o.participant) : undefined;
      this._serialized = `${fromMe}_${this.remote._serialized}_${this.id}` + (this.participant ? `_${this.participant._serialized}` : '');
    }
    toString() { return this._serialized; }
    equals(o) { return o != null && keyOf(o) === this._serialized; }
    clone() { return new MsgKey(this); }
    toPlain() {
      return { fromMe: this.fromMe, remote: this.remote.toPlain(), id: this.id, participant: this.participant ? this.participant.toPlain() : undefined, _serialized: this._serialized };
    }
    // Real WhatsApp returns a promise here; callers await it.
    static async newId() { return '3EB0' + hex(8); }
    static newId_DEPRECATED() { return '3EB0' + hex(8); }
    static fromString(s) {
      const [fromMe, remote, id, participant] = String(s).split('_');
      return new MsgKey({ fromMe: fromMe === 'true', remote, id, participant });
    }
    static from(x) { return x instanceof MsgKey ? x : typeof x === 'string' ? MsgKey.fromString(x) : new MsgKey(x); }
  }

  // ----------------------------------------------------------------- models
  class MsgModel extends Model {
    defaults() {
      return { type: 'chat', ack: 0, isNewMsg: false, star: false, broadcast: false, isForwarded: false, forwardingScore: 0, mentionedJidList: [], groupMentions: [], hasReaction: false, isEphemeral: false, isStatusV3: false };
    }
    constructor(attrs) {
      const a = { ...(attrs || {}) };
      if (a.id && !(a.id instanceof MsgKey)) a.id = MsgKey.from(a.id);
      for (const f of ['from', 'to', 'author']) if (a[f] && !(a[f] instanceof Wid)) a[f] = createWid(a[f]);
      super(a);
    }
    get mediaObject() { return undefined; }
    get isNotification() { return false; }
    updateAck(ack) { this.set('ack', ack); }
    canReply() { return true; }
    msgContextInfo() {
      return { quotedMsg: this.serialize(), quotedStanzaID: this.id.id, quotedParticipant: this.author || this.from, quotedRemoteJid: this.id.remote };
    }
    avParams() { return {}; }
  }

  class ContactModel extends Model {
    defaults() { return { name: undefined, pushname: undefined, isMe: false, isMyContact: false, isBusiness: false, isEnterprise: false, verifiedLevel: 0, isBlocked: false }; }
    constructor(attrs) {
      const a = { ...(attrs || {}) };
      a.id = createWid(a.id);
      super(a);
    }
    get isUser() { return this.id.isUser(); }
    get isGroup() { return this.id.isGroup(); }
    get formattedName() { return this.name || this.pushname || '+' + this.id.user; }
    serialize() { return { ...super.serialize(), isUser: this.isUser, isGroup: this.isGroup, formattedName: this.formattedName }; }
  }

  class ParticipantModel extends Model {
    constructor(attrs) { super({ ...attrs, id: createWid(attrs.id) }); }
  }

  class GroupMetadataModel extends Model {
    defaults() { return { subject: '', announce: false, restrict: false, isLidAddressingMode: false, owner: undefined, creation: 0 }; }
    constructor(attrs) {
      const a = { ...(attrs || {}) };
      a.id = createWid(a.id);
      super(a);
      Object.defineProperty(this, 'participants', { value: new Collection(ParticipantModel), enumerable: false });
    }
    serialize() { return { ...super.serialize(), participants: this.participants.serialize() }; }
  }

  class ChatModel extends Model {
    defaults() { return { t: 0, unreadCount: 0, archive: false, isReadOnly: false, pin: 0, notSpam: true, muteExpiration: 0, name: undefined }; }
    constructor(attrs) {
      const a = { ...(attrs || {}) };
      a.id = createWid(a.id);
      super(a);
      Object.defineProperty(this, 'msgs', { value: new Collection(MsgModel), enumerable: false });
      if (this.id.isGroup()) {
        const gm = GroupMetadata.get(this.id) || GroupMetadata.add(new GroupMetadataModel({ id: this.id, subject: this.name || this.id.user }));
        Object.defineProperty(this, 'groupMetadata', { value: gm, enumerable: false });
      }
    }
    get isGroup() { return this.id.isGroup(); }
    get isUser() { return this.id.isUser(); }
    get formattedTitle() { return this.name || (this.groupMetadata && this.groupMetadata.subject) || Contact.get(this.id)?.formattedName || '+' + this.id.user; }
    get contact() { return Contact.get(this.id); }
    get lastReceivedKey() { const m = this.msgs.last(); return m ? m.id : undefined; }
    // muteExpiration: 0 not muted, -1 always, else the epoch second it ends.
    get mute() { const e = this.muteExpiration || 0; return { expiration: e, isMuted: e === -1 || e * 1000 > Date.now() }; }
    serialize() {
      return { ...super.serialize(), isGroup: this.isGroup, formattedTitle: this.formattedTitle, lastReceivedKey: plain(this.lastReceivedKey), msgs: this.msgs };
    }
  }

  // ------------------------------------------------------------ collections
  const GroupMetadata = new Collection(GroupMetadataModel);
  GroupMetadata.update = async () => undefined;
  GroupMetadata.find = async (id) => GroupMetadata.get(id) || GroupMetadata.add(new GroupMetadataModel({ id }));

  const Contact = new Collection(ContactModel);
  Contact.find = async (id) => Contact.get(id) || Contact.add(new ContactModel({ id }));

  const Msg = new Collection(MsgModel);
  Msg.getMessagesById = async (ids) => ({ messages: (ids || []).map((id) => Msg.get(id)).filter(Boolean) });
  Msg.search = async () => ({ messages: [] });

  const Chat = new Collection(ChatModel);
  const getOrCreateChat = (widLike) => {
    const wid = createWid(widLike);
    let chat = Chat.get(wid);
    let created = false;
    if (!chat) {
      chat = Chat.add(new ChatModel({ id: wid, t: Math.floor(Date.now() / 1000) }));
      created = true;
    }
    return { chat, created };
  };
  Chat.find = async (id) => getOrCreateChat(id).chat;

  const Call = new Collection(Model);
  const Label = new Collection(Model);
  const Presence = new Collection(Model);

  // ------------------------------------------------------- connection state
  class SocketModel extends Model {
    constructor() { super({ state: 'OPENING', stream: 'DISCONNECTED', hasSynced: false }); }
    _listenerAdded(name) { if (name === 'change:hasSynced') syncGate.onListener(); }
    logout() {
      transport.send({ type: 'logout' });
      return onLoggedOut({ local: true });
    }
    reconnect() { transport.reconnect(); }
    takeover() { transport.send({ type: 'takeover' }); }
    poke() {}
  }
  const Socket = new SocketModel();

  class ConnModel extends Model {
    constructor() { super({ ref: null, refTTL: 0, pushname: undefined, platform: undefined, wid: undefined, lid: undefined, battery: 100, plugged: true, connected: false, isSMB: false }); }
    get me() { return this.wid; }
    serialize() {
      const s = super.serialize();
      delete s.ref;
      delete s.refTTL;
      return s;
    }
  }
  const Conn = new ConnModel();

  class CmdEmitter extends Events {
    refreshQR() { return refreshQR(); }
    logout() { return Socket.logout(); }
  }
  const Cmd = new CmdEmitter();

  const Stream = new (class extends Model {
    constructor() { super({ available: false, displayInfo: 'NORMAL', mode: 'MAIN' }); }
    markAvailable() { this.set('available', true); }
    markUnavailable() { this.set('available', false); }
  })();

  let offlineProgress = 0;
  const OfflineMessageHandler = {
    getOfflineDeliveryProgress: () => offlineProgress,
    isResumeFromRestartComplete: () => offlineProgress >= 100,
  };

  // ------------------------------------------------------------- base64 etc
  const toBytes = (x) => {
    if (x instanceof Uint8Array) return x;
    if (x instanceof ArrayBuffer) return new Uint8Array(x);
    if (ArrayBuffer.isView(x)) return new Uint8Array(x.buffer, x.byteOffset, x.byteLength);
    if (Array.isArray(x)) return Uint8Array.from(x);
    if (typeof x === 'string') return new TextEncoder().encode(x);
    throw new TypeError('encodeB64: unsupported input');
  };
  const encodeB64 = (x) => {
    const bytes = toBytes(x);
    let s = '';
    for (let i = 0; i < bytes.length; i++) s += String.fromCharCode(bytes[i]);
    return btoa(s);
  };
  const decodeB64 = (s) => Uint8Array.from(atob(s), (c) => c.charCodeAt(0));
  const randomB64 = (n) => encodeB64(crypto.getRandomValues(new Uint8Array(n)));

  // --------------------------------------------------------------- indexedDB
  // Only strings and plain objects are stored so Playwright's storage_state
  // (indexed_db=True) round-trips them verbatim.
  const idb = {
    db: null,
    open() {
      return new Promise((resolve, reject) => {
        const req = indexedDB.open('wawc', 1);
        req.onupgradeneeded = () => { req.result.createObjectStore('user', { keyPath: 'key' }); };
        req.onsuccess = () => { this.db = req.result; resolve(this.db); };
        req.onerror = () => reject(req.error);
      });
    },
    _tx(mode, fn) {
      return new Promise((resolve, reject) => {
        const tx = this.db.transaction('user', mode);
        const req = fn(tx.objectStore('user'));
        tx.oncomplete = () => resolve(req ? req.result : undefined);
        tx.onerror = () => reject(tx.error);
      });
    },
    async get(key) { const r = await this._tx('readonly', (s) => s.get(key)); return r ? r.value : undefined; },
    put(key, value) { return this._tx('readwrite', (s) => s.put({ key, value })); },
    del(key) { return this._tx('readwrite', (s) => s.delete(key)); },
  };

  // Registration material: what the QR string carries besides the ref.
  let keys = null;
  const DEVICE_PLATFORM = 'WEB';
  const newKeys = () => ({ noisePub: randomB64(32), noisePriv: randomB64(32), identityPub: randomB64(32), identityPriv: randomB64(32), advSecret: randomB64(32), registrationId: 1 + Math.floor(Math.random() * 16380) });
  const loadKeys = async () => {
    keys = await idb.get('keys');
    if (!keys) { keys = newKeys(); await idb.put('keys', keys); }
  };

  const waNoiseInfo = {
    get: async () => keys && { staticKeyPair: { pubKey: decodeB64(keys.noisePub), privKey: decodeB64(keys.noisePriv) } },
  };
  const waSignalStore = {
    getRegistrationInfo: async () => keys && {
      registrationId: keys.registrationId,
      identityKeyPair: { pubKey: decodeB64(keys.identityPub), privKey: decodeB64(keys.identityPriv) },
    },
  };
  // Synchronous in WAWebUserPrefsMultiDevice (whatsapp-web.js awaits it anyway).
  const getADVSecretKey = () => keys && keys.advSecret;

  // -------------------------------------------------------------- me / user
  let creds = null; // {device_id, token, me}
  const me = () => Conn.wid;
  const UserPrefsMeUser = {
    getMaybeMePnUser: () => Conn.wid,
    getMaybeMeLidUser: () => Conn.lid,
    getMaybeMeUser: () => Conn.wid,
    getMeUser: () => { if (!Conn.wid) throw new Error('getMeUser: not logged in'); return Conn.wid; },
    getMePnUserOrThrow: () => UserPrefsMeUser.getMeUser(),
    getMaybeMeDevicePn: () => Conn.wid,
    isMeAccount: (w) => !!w && (keyOf(w) === keyOf(Conn.wid) || keyOf(w) === keyOf(Conn.lid)),
  };

  const applyIdentity = (m) => {
    Conn.set({ wid: createWid(m.wid), lid: createWid(m.lid), pushname: m.pushname, platform: m.platform, connected: true });
    const meContact = Contact.get(m.wid) || Contact.add(new ContactModel({ id: m.wid }));
    meContact.set({ isMe: true, pushname: m.pushname });
  };

  // ---------------------------------------------------------- sync gating
  // whatsapp-web.js turns the first change:hasSynced into `authenticated` +
  // `ready`, but only if it is already listening. So the flip waits for a
  // listener (or a generous fallback for plain humans watching the page).
  let pageConfig = { sync_delay_ms: 30, sync_fallback_ms: 10000, logout_reload_ms: 300, reconnect_ms: 500 };
  const syncGate = {
    armed: false,
    timer: null,
    arm() {
      if (Socket.hasSynced || this.armed) return;
      this.armed = true;
      if (Socket.listenerCount('change:hasSynced') > 0) this.fireSoon();
      else this.timer = setTimeout(() => this.fire(), pageConfig.sync_fallback_ms);
    },
    onListener() { if (this.armed) this.fireSoon(); },
    fireSoon() {
      clearTimeout(this.timer);
      this.timer = setTimeout(() => this.fire(), pageConfig.sync_delay_ms);
    },
    fire() {
      clearTimeout(this.timer);
      this.timer = null;
      if (!this.armed) return;
      this.armed = false;
      offlineProgress = 100;
      Cmd.trigger('offline_progress_update');
      Cmd.trigger('offline_progress_update_from_bridge');
      Socket.set('hasSynced', true);
      render();
    },
    reset() {
      clearTimeout(this.timer);
      this.timer = null;
      this.armed = false;
      offlineProgress = 0;
      // Silent: a change:hasSynced to false would read as "authenticated" to whatsapp-web.js.
      Socket.set('hasSynced', false, { silent: true });
    },
  };

  const setState = (state) => {
    Socket.set({ state, stream: state === 'CONNECTED' ? 'CONNECTED' : 'DISCONNECTED' });
    render();
  };

  // -------------------------------------------------------------- transport
  const transport = {
    ws: null,
    retry: null,
    outbox: [],
    connect() {
      clearTimeout(this.retry);
      const proto = location.protocol === 'https:' ? 'wss' : 'ws';
      const ws = new WebSocket(`${proto}://${location.host}/ws`);
      this.ws = ws;
      ws.onopen = () => sendHello();
      ws.onmessage = (e) => {
        let data;
        try { data = JSON.parse(e.data); } catch (_) { return; }
        Promise.resolve(handle(data)).catch((err) => console.error('handler failed', data.type, err));
      };
      ws.onclose = () => {
        if (this.ws !== ws) return;
        this.ws = null;
        onTransportClosed();
        this.retry = setTimeout(() => this.connect(), pageConfig.reconnect_ms);
      };
    },
    reconnect() { if (this.ws) this.ws.close(); else this.connect(); },
    send(obj) {
      if (this.ws && this.ws.readyState === WebSocket.OPEN) { this.ws.send(JSON.stringify(obj)); return true; }
      return false;
    },
    // Message sends survive a dropped connection: queued, flushed on reconnect.
    sendMsg(payload) {
      if (Socket.state === 'CONNECTED' && this.send({ type: 'send', msg: payload })) return;
      this.outbox.push(payload);
    },
    flush() {
      const queued = this.outbox;
      this.outbox = [];
      for (const p of queued) this.sendMsg(p);
    },
  };

  const sendHello = () => {
    transport.send({
      type: 'hello',
      creds: creds ? { device_id: creds.device_id, token: creds.token } : null,
      keys: { noise_pub: keys.noisePub, identity_pub: keys.identityPub, adv_secret: keys.advSecret, platform: DEVICE_PLATFORM },
      ...Object.assign({}, ...helloHooks.map((h) => h())),
    });
  };
  // Fields extensions add to the hello (history.js: the history version this page holds).
  const helloHooks = [];

  const onTransportClosed = () => {
    if (creds && (Socket.state === 'CONNECTED' || Socket.state === 'OPENING')) setState('TIMEOUT');
  };

  const refreshQR = () => {
    // The real page restarts ref rotation when asked (button or Cmd.refreshQR()).
    if (creds) return;
    transport.send({ type: 'refresh_qr' });
  };

  // Per-message send results: resolved by the first server ack (or -1).
  const pendingResults = new Map();
  // Kind-specific fields a sent message carries on the wire (media.js and others add theirs).
  const wireHooks = [];

  const handlers = {
    welcome(d) { pageConfig = { ...pageConfig, ...(d.config || {}) }; },
    config(d) { pageConfig = { ...pageConfig, ...(d.config || {}) }; }, // PUT /_sim/config while open
    ref(d) {
      // Conn.ref first: whatsapp-web.js reads it as soon as the state says UNPAIRED.
      Conn.set({ ref: d.ref, refTTL: d.ttl_ms });
      if (Socket.state !== 'UNPAIRED') setState('UNPAIRED');
      else render();
    },
    idle() { setState('UNPAIRED_IDLE'); },
    async paired(d) {
      creds = { ...d.creds, me: d.me };
      // Persist before announcing CONNECTED so a storage snapshot taken then has the creds.
      await idb.put('creds', creds);
      // Silent: an old-style change:ref listener would report a bogus QR.
      Conn.set({ ref: null }, { silent: true });
      applyIdentity(d.me);
      enterState(d.state || 'CONNECTED');
    },
    connected(d) {
      creds = { ...creds, me: d.me };
      applyIdentity(d.me);
      enterState(d.state || 'CONNECTED');
    },
    async logged_out() { await onLoggedOut({ local: false }); },
    msg(d) { receiveMsg(d.msg); },
    ack(d) { applyAck(d.key, d.ack); },
    state(d) { enterState(d.state); },
    pairing_code(d) {
      const p = pairingRequests.get(d.req);
      if (!p) return;
      pairingRequests.delete(d.req);
      if (d.error) p.reject(new Error(d.error)); else p.resolve(d.code);
      // A live code replaces the QR: the page is UNPAIRED (not idle) while the phone may enter it.
      if (!d.error && Socket.state === 'UNPAIRED_IDLE') setState('UNPAIRED');
      render(d.code);
    },
  };
  // CONNECTED (after a link, a restore, an unban or a takeover) starts the sync
  // gate and sends what was queued; TOS_BLOCK / CONFLICT keep the queue.
  const enterState = (state) => {
    setState(state);
    if (state === 'CONNECTED' && creds) {
      syncGate.arm();
      transport.flush();
    }
  };
  const handle = (d) => (handlers[d.type] ? handlers[d.type](d) : undefined);

  const onLoggedOut = async ({ local }) => {
    const wasLinked = !!creds && Socket.state !== 'OPENING';
    creds = null;
    await idb.del('creds');
    // Fresh registration material for the next link, as the real page does.
    keys = newKeys();
    await idb.put('keys', keys);
    Conn.set({ ref: null }, { silent: true });
    Conn.set({ wid: undefined, lid: undefined, connected: false });
    syncGate.reset();
    if (wasLinked || local) {
      Cmd.trigger('logout');
      setState('UNPAIRED');
      if (pageConfig.logout_reload_ms != null) {
        setTimeout(() => location.replace('/?post_logout=1'), pageConfig.logout_reload_ms);
        return;
      }
    }
    sendHello();
  };

  // ------------------------------------------------------------- messaging
  const applyAck = (key, ack) => {
    const m = Msg.get(key);
    if (m && (ack === -1 || ack > (m.ack ?? 0))) m.set('ack', ack);
    if (ack >= 1 || ack === -1) {
      const waiters = pendingResults.get(key);
      if (waiters) {
        pendingResults.delete(key);
        for (const w of waiters) w({ messageSendResult: ack === -1 ? 'ERROR' : 'OK', t: Math.floor(Date.now() / 1000) });
      }
    }
  };

  const addAndSendMsgToChat = (chat, attrs) => {
    const msg = attrs instanceof MsgModel ? attrs : new MsgModel({ ...attrs });
    if (!(msg.id instanceof MsgKey)) throw new Error('addAndSendMsgToChat: message needs an id (MsgKey)');
    const stored = Msg.add(msg);
    chat.msgs.add(stored);
    chat.set('t', stored.t || Math.floor(Date.now() / 1000));
    const key = stored.id._serialized;
    const result = new Promise((resolve) => {
      const list = pendingResults.get(key) || [];
      list.push(resolve);
      pendingResults.set(key, list);
    });
    const wire = { key, id: stored.id.id, to: chat.id._serialized, body: stored.body ?? '', type: stored.type || 'chat', t: stored.t };
    for (const hook of wireHooks) Object.assign(wire, hook(stored));
    transport.sendMsg(wire);
    render();
    return [Promise.resolve(stored), result];
  };

  const receiveMsg = (m) => {
    const chatWid = createWid(m.from);
    const author = m.author ? createWid(m.author) : undefined;
    const key = new MsgKey({ fromMe: false, remote: chatWid, id: m.id, participant: author });
    if (Msg.get(key)) return; // the same stanza twice is one message
    const sender = author || chatWid;
    const contact = Contact.get(sender) || Contact.add(new ContactModel({ id: sender }));
    if (m.notifyName) contact.set('pushname', m.notifyName);
    const { chat } = getOrCreateChat(chatWid);
    const msg = new MsgModel({
      id: key, body: m.body, type: m.type || 'chat', t: m.t, from: chatWid, to: me() || m.to, author,
      self: 'in', ack: 1, isNewMsg: true, local: false, notifyName: m.notifyName,
      ...(m.attrs || {}), // kind-specific fields, already shaped by static/inbound.js
    });
    Msg.add(msg);
    chat.msgs.add(msg);
    chat.set({ t: m.t, unreadCount: (chat.unreadCount || 0) + 1 });
    render();
  };

  // ------------------------------------------------------------ pairing code
  const pairingRequests = new Map();
  let pairingSeq = 0;
  let pairingType = 'QR';
  const AltDeviceLinkingApi = {
    setPairingType: (t) => { pairingType = t; },
    getPairingType: () => pairingType,
    initializeAltDeviceLinking: async () => undefined,
    initializeQRLinking: async () => { pairingType = 'QR'; refreshQR(); },
    startAltLinkingFlow: (phoneNumber, showNotification) => new Promise((resolve, reject) => {
      const req = ++pairingSeq;
      pairingRequests.set(req, { resolve, reject });
      if (!transport.send({ type: 'pairing_request', req, phone: String(phoneNumber), show_notification: !!showNotification })) {
        pairingRequests.delete(req);
        reject(new Error('not connected'));
      }
    }),
  };

  // --------------------------------------------------------------- linkify
  const URL_RE = /\b((?:https?:\/\/|www\.)[^\s<>"']+|[a-z0-9][a-z0-9-]*(?:\.[a-z0-9-]+)*\.(?:com|net|org|io|dev|app|info|co|br|in|uk|de|me|ly)(?:\/[^\s<>"']*)?)/gi;
  const findLinks = (s) => {
    if (typeof s !== 'string' || !s) return [];
    const out = [];
    for (const m of s.matchAll(URL_RE)) {
      const url = m[0].replace(/[.,!?;:)]+$/, '');
      const href = /^https?:\/\//i.test(url) ? url : 'http://' + url;
      let domain = '';
      try { domain = new URL(href).hostname; } catch (_) { /* keep empty */ }
      out.push({ url, href, domain, index: m.index, suspiciousCharacters: undefined });
    }
    return out;
  };

  // ---------------------------------------------------------------- modules
  const Collections = { Msg, Chat, Contact, Call, Label, GroupMetadata, Presence };
  const modules = {
    WAWebSocketModel: { Socket },
    WAWebCmd: { Cmd },
    WAWebConnModel: { Conn },
    WAWebOfflineHandler: { OfflineMessageHandler },
    WAWebAltDeviceLinkingApi: AltDeviceLinkingApi,
    WAWebLaunchSocketUtils: { refreshQR },
    WABase64: { encodeB64, decodeB64 },
    // The registration modules are spread into one object by whatsapp-web.js,
    // so every member is an own enumerable property.
    WAWebCompanionRegClientUtils: { DEVICE_PLATFORM },
    WAWebAdvSignatureApi: { getADVSecretKey: async () => getADVSecretKey() },
    WAWebUserPrefsInfoStore: { waNoiseInfo },
    WAWebSignalStoreApi: { waSignalStore, waNoiseInfo, DEVICE_PLATFORM },
    WAWebUserPrefsMultiDevice: { getADVSecretKey },
    WAWebUserPrefsMeUser: UserPrefsMeUser,
    WAWebCollections: Collections,
    WAWebWidFactory: WidFactory,
    WAWebWid: Wid,
    WAWebFindChatAction: { findOrCreateLatestChat: async (wid) => getOrCreateChat(wid) },
    WAWebStreamModel: { Stream },
    // WAWebUpdateUnreadChatAction (sendSeen with its read receipts) lives in static/history.js.
    WAWebChatGetters: {
      getIsNewsletter: (chat) => !!(chat && chat.id && chat.id.isNewsletter && chat.id.isNewsletter()),
      getIsBroadcast: (chat) => !!(chat && chat.id && chat.id.isBroadcast && chat.id.isBroadcast()),
      getIsGroup: (chat) => !!(chat && chat.id && chat.id.isGroup && chat.id.isGroup()),
      getIsUser: (chat) => !!(chat && chat.id && chat.id.isUser && chat.id.isUser()),
    },
    WALinkify: { findLink: (s) => findLinks(s)[0] || null, findLinks },
    WAWebMsgKey: MsgKey,
    WAWebGetEphemeralFieldsMsgActionsUtils: { getEphemeralFields: () => ({}) },
    WAWebSendMsgChatAction: { addAndSendMsgToChat },
    WAWebSyncGatingUtils: { isPlaceholderMessageResendEnabled: () => false, isSyncDEnabled: () => true },
    // Hooks whatsapp-web.js patches with injectToFunction; harmless identities here.
    WAWebBackendJobsCommon: { mediaTypeFromProtobuf: () => null },
    WAWebE2EProtoUtils: { typeAttributeFromProtobuf: () => 'text' },
    WAWebMiscBrowserUtils: { info: () => ({ name: 'Chrome', version: '130', os: 'Linux' }) },
  };

  // Page modules kept in their own files (static/media.js, ...) register in window.__waSimExtensions
  // before this file runs; each gets the internals it builds on and returns the modules it adds.
  const internals = { Collections, MsgModel, MsgKey, ContactModel, ChatModel, GroupMetadataModel, Model, Collection, createWid,
    transport, pendingResults, wireHooks, helloHooks, render, renderNow, handlers, receiveMsg, getOrCreateChat, me, UserPrefsMeUser };
  for (const extend of window.__waSimExtensions || []) Object.assign(modules, extend(internals) || {});

  const requireModule = (name) => (Object.prototype.hasOwnProperty.call(modules, name) ? modules[name] : undefined);
  window.require = requireModule;
  window.Debug = { VERSION };

  // -------------------------------------------------------------------- UI
  const $ = (id) => document.getElementById(id);
  const esc = (s) => String(s ?? '').replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' }[c]));
  let renderedRef = null;
  let renderQueued = false;

  const qrString = () => `${Conn.ref},${keys.noisePub},${keys.identityPub},${keys.advSecret},${DEVICE_PLATFORM}`;

  function render(pairingCode) {
    if (pairingCode) { renderNow(pairingCode); return; }
    if (renderQueued) return;
    renderQueued = true;
    queueMicrotask(() => { renderQueued = false; renderNow(); });
  }

  function renderNow(pairingCode) {
    const state = Socket.state;
    const landing = $('landing');
    const main = $('main');
    $('status').textContent = `state: ${state}${Socket.hasSynced ? ' (synced)' : ''}`;
    if (pairingCode) {
      landing.innerHTML = `<div data-pairing-code><p>Enter this code on your phone:</p><div id="pairing-code">${esc(pairingCode.slice(0, 4))}-${esc(pairingCode.slice(4))}</div></div>`;
      renderedRef = null;
      return;
    }
    if (state === 'UNPAIRED' && Conn.ref) {
      main.hidden = true;
      const full = qrString();
      if (renderedRef === full) return;
      renderedRef = full;
      // data-ref carries the whole QR string, as on the real page.
      landing.innerHTML = `<p>Scan the QR code with the phone.</p><div data-ref="${esc(full)}"><canvas width="264" height="264" aria-label="Scan this QR code to link a device!" role="img"></canvas></div>`;
      const img = new Image();
      img.onload = () => {
        const canvas = landing.querySelector('canvas');
        if (canvas) canvas.getContext('2d').drawImage(img, 0, 0, canvas.width, canvas.height);
      };
      img.src = '/_sim/qr.png?data=' + encodeURIComponent(full);
      return;
    }
    renderedRef = null;
    if (state === 'UNPAIRED_IDLE') {
      main.hidden = true;
      landing.innerHTML = '<div data-ref=""><span><button type="button">Click to reload QR code</button></span></div>';
      landing.querySelector('button').onclick = () => refreshQR();
      return;
    }
    if (state === 'CONNECTED' || state === 'TIMEOUT' || state === 'CONFLICT' || state === 'TOS_BLOCK') {
      landing.innerHTML = '';
      main.hidden = false;
      const chats = Chat.getModelsArray().sort((a, b) => (b.t || 0) - (a.t || 0)).slice(0, 50);
      main.innerHTML = `<div data-testid="intro-md-beta-logo-light" data-asset-intro-image-light="true" class="intro"></div>
        <p>Linked as <b>${esc(Conn.pushname)}</b> (${esc(Conn.wid && Conn.wid.user)})</p>
        <ul id="chats">${chats.map((c) => {
          const last = c.msgs.last();
          return `<li data-chat="${esc(c.id._serialized)}"><b>${esc(c.formattedTitle)}</b> ${c.unreadCount ? `(${c.unreadCount})` : ''}<br><small>${esc(last ? (last.id.fromMe ? 'you: ' : '') + last.body + (last.id.fromMe ? ` [ack ${last.ack}]` : '') : '')}</small></li>`;
        }).join('')}</ul>`;
      return;
    }
    main.hidden = true;
    landing.innerHTML = '';
  }

  // ------------------------------------------------------------------ boot
  (async () => {
    render();
    await idb.open();
    await loadKeys();
    creds = (await idb.get('creds')) || null;
    transport.connect();
  })().catch((err) => {
    console.error('simulator page failed to start', err);
    $('status').textContent = 'failed to start: ' + err;
  });
})();
