/*
 * WhatsApp Web simulator: the phone's history on the page, and the conversation modules whatsapp-web.js
 * 1.34.7 reads (Client.js getChats/getContacts/getContactById/getNumberId/sendSeen/getProfilePicUrl/
 * getContactLidAndPhone, util/Injected/Utils.js getChatModel/getContactModel/enforceLidAndPnRetrieval/
 * sendChatstate, structures/Chat.js fetchMessages):
 * - `history` frames (conversations.py) fill WAWebCollections Contact, GroupMetadata, Chat and Msg before
 *   the page hears paired/connected, so before hasSynced; each chat holds only its latest messages (~50),
 * - WAWebChatLoadMessages.loadEarlierMsgs({chat}) asks the phone for the 50 before the oldest one held,
 *   adds them to Msg and to the front of chat.msgs, and resolves to them ([] when there are none),
 * - WAWebQueryExistsJob.queryWidExists, WAWebContactProfilePicThumbBridge.requestProfilePicFromServer,
 *   WAWebApiContact (lid <-> phone), WAWebLidMigrationUtils.toPn, WAWebContactGetters,
 *   WAWebFrontendContactGetters, WAWebChatStateBridge, Blocklist and BusinessProfile collections,
 * - WAWebUpdateUnreadChatAction.sendSeen, which also tells the phone which unread messages it read.
 * Every structure is a Map or an array walked once: 5,000 chats load and list without quadratic work.
 * Registered through window.__waSimExtensions, so it is loaded before app.js.
 */
(() => {
  'use strict';

  (window.__waSimExtensions = window.__waSimExtensions || []).push((x) => {
    const { Collections, MsgModel, MsgKey, ContactModel, ChatModel, GroupMetadataModel, Model, Collection, createWid,
      transport, helloHooks, handlers, render, UserPrefsMeUser } = x;
    const { Msg, Chat, Contact, GroupMetadata } = Collections;

    // ------------------------------------------------------- asking the phone
    let seq = 0;
    const waiting = new Map();
    const ask = (frame, timeoutMs = 15000) => new Promise((resolve, reject) => {
      const req = 'c' + (++seq);
      if (!transport.send({ ...frame, req })) { reject(new Error('not connected')); return; }
      const timer = setTimeout(() => { if (waiting.delete(req)) reject(new Error('phone did not answer')); }, timeoutMs);
      waiting.set(req, (d) => { clearTimeout(timer); resolve(d); });
    });
    handlers.reply = (d) => {
      const done = waiting.get(d.req);
      if (!done) return;
      waiting.delete(d.req);
      done(d);
    };

    // ----------------------------------------------------------- lid <-> pn
    const lidPn = new Map(); // lid -> phone Wid, only where the page knows it
    const pnLid = new Map(); // phone -> lid Wid
    const learnLid = (lid, pn) => {
      const l = createWid(lid);
      const p = createWid(pn);
      if (!l || !p) return;
      lidPn.set(l._serialized, p);
      pnLid.set(p._serialized, l);
    };
    const sameWid = (a, b) => !!a && !!b && a._serialized === b._serialized;
    const ApiContact = {
      getPhoneNumber(w) {
        const wid = createWid(w);
        if (!wid) return null;
        if (!wid.isLid()) return wid.server === 'c.us' ? wid : null;
        if (sameWid(wid, UserPrefsMeUser.getMaybeMeLidUser())) return UserPrefsMeUser.getMaybeMePnUser() || null;
        return lidPn.get(wid._serialized) || null;
      },
      getCurrentLid(w) {
        const wid = createWid(w);
        if (!wid) return null;
        if (wid.isLid()) return wid;
        if (sameWid(wid, UserPrefsMeUser.getMaybeMePnUser())) return UserPrefsMeUser.getMaybeMeLidUser() || null;
        return pnLid.get(wid._serialized) || null;
      },
      getAlternateUserWid(w) {
        const wid = createWid(w);
        if (!wid) return null;
        return wid.isLid() ? ApiContact.getPhoneNumber(wid) : ApiContact.getCurrentLid(wid);
      },
    };
    const toPn = (w) => {
      const wid = createWid(w);
      if (!wid) return null;
      return wid.isLid() ? ApiContact.getPhoneNumber(wid) : wid.server === 'c.us' ? wid : null;
    };

    // A live message from a lid names the phone behind it only when the sender shares it (the stanza's
    // sender_pn, or participant_pn in a group): the page learns the mapping and the lid contact's phoneNumber
    // before the message lands; without it the lid stays unresolved, as on the real page.
    const receiveLive = handlers.msg;
    handlers.msg = (d) => {
      const m = (d && d.msg) || {};
      const sender = m.author || m.from;
      const pn = m.author ? m.participant_pn : m.sender_pn;
      const lid = typeof sender === 'string' && sender.endsWith('@lid') ? createWid(sender) : null;
      const pnWid = lid && typeof pn === 'string' ? createWid(pn) : null;
      if (lid && pnWid && pnWid.server === 'c.us') {
        learnLid(lid, pnWid);
        const contact = Contact.get(lid);
        if (contact) contact.set('phoneNumber', pnWid, { silent: true });
        else Contact.add(new ContactModel({ id: lid, phoneNumber: pnWid }), { silent: true });
      }
      return receiveLive(d);
    };

    // ------------------------------------------------------------- history
    let held = null; // the version this page holds completely
    let loading = null;
    const fromHistory = { chats: new Set(), msgs: new Set(), contacts: new Set() };
    const earliest = new Map(); // chat id -> {id: oldest loaded history message id, more, pending}
    helloHooks.push(() => ({ history: held }));

    // Models of an older history leave when a new one arrives; what the page got live stays.
    const dropPrevious = () => {
      for (const id of fromHistory.msgs) { const m = Msg.get(id); if (m) Msg.remove(m, { silent: true }); }
      for (const id of fromHistory.chats) {
        const chat = Chat.get(id);
        if (!chat) continue;
        const live = chat.msgs.filter((m) => !fromHistory.msgs.has(m.id._serialized));
        if (!live.length) { Chat.remove(chat, { silent: true }); continue; }
        for (const m of chat.msgs.getModelsArray()) if (fromHistory.msgs.has(m.id._serialized)) chat.msgs.remove(m, { silent: true });
      }
      for (const id of fromHistory.contacts) { const c = Contact.get(id); if (c && !c.isMe) Contact.remove(c, { silent: true }); }
      fromHistory.chats.clear(); fromHistory.msgs.clear(); fromHistory.contacts.clear();
      earliest.clear();
    };

    const toMsg = (m, chatWid) => {
      const fromMe = !!m.fromMe;
      const author = m.author ? createWid(m.author) : undefined;
      const attrs = { ...(m.attrs || {}) };
      if (attrs.directPath) {
        attrs.mediaData = { mediaStage: 'INIT', type: m.type };
        attrs.deprecatedMms3Url = location.origin + attrs.directPath;
      }
      const key = new MsgKey({ fromMe, remote: chatWid, id: m.id, participant: fromMe ? undefined : author });
      const existing = Msg.get(key);
      if (existing) return existing;
      const msg = new MsgModel({
        id: key, body: m.body, type: m.type || 'chat', t: m.t, from: m.from, to: m.to, author,
        self: fromMe ? 'out' : 'in', ack: fromMe ? (m.ack ?? 3) : 1, isNewMsg: false, local: false, ...attrs,
      });
      fromHistory.msgs.add(key._serialized);
      return Msg.add(msg, { silent: true });
    };

    // Older messages go in front of what the chat holds, in their own order (oldest first).
    const prepend = (coll, models) => {
      const fresh = models.filter((m) => !coll.get(m.id));
      if (!fresh.length) return;
      const rest = coll._models;
      coll._models = [];
      coll.add(fresh, { silent: true });
      coll._models.push(...rest);
    };

    const addContacts = (list) => {
      for (const c of list) {
        const attrs = { ...c, id: createWid(c.id), phoneNumber: c.phoneNumber ? createWid(c.phoneNumber) : undefined };
        const existing = Contact.get(attrs.id);
        if (existing) { existing.set(attrs, { silent: true }); continue; }
        Contact.add(new ContactModel(attrs), { silent: true });
        fromHistory.contacts.add(attrs.id._serialized);
      }
    };

    const addChat = (c) => {
      const wid = createWid(c.id);
      if (c.group && !GroupMetadata.get(wid)) {
        const gm = GroupMetadata.add(new GroupMetadataModel({ id: wid, subject: c.group.subject, owner: createWid(c.group.owner),
          creation: c.group.creation, announce: !!c.group.announce, restrict: !!c.group.restrict }), { silent: true });
        gm.participants.add(c.group.participants.map((p) => ({ ...p, id: createWid(p.id) })), { silent: true });
      }
      const attrs = { name: c.name || undefined, t: c.t, unreadCount: c.unreadCount, archive: !!c.archive, pin: c.pin || 0,
        muteExpiration: c.muteExpiration || 0, isReadOnly: !!c.isReadOnly };
      let chat = Chat.get(wid);
      if (chat) chat.set({ ...attrs, t: Math.max(chat.t || 0, c.t) }, { silent: true });
      else chat = Chat.add(new ChatModel({ id: wid, ...attrs }), { silent: true });
      fromHistory.chats.add(wid._serialized);
      const msgs = c.msgs.map((m) => toMsg(m, wid));
      prepend(chat.msgs, msgs);
      if (c.msgs.length) earliest.set(wid._serialized, { id: c.msgs[0].id, more: !!c.more, pending: null });
    };

    handlers.history = (d) => {
      if (d.part === 'contacts') {
        if (held !== null && held !== d.version) dropPrevious();
        loading = d.version;
        for (const [lid, pn] of Object.entries(d.lid_pn || {})) learnLid(lid, pn);
        addContacts(d.contacts || []);
      } else if (d.part === 'chats' && loading === d.version) {
        for (const c of d.chats || []) addChat(c);
      } else if (d.part === 'done' && loading === d.version) {
        held = d.version;
        loading = null;
        render();
      }
    };

    const loadEarlierMsgs = async ({ chat } = {}) => {
      if (!chat || !chat.id) return [];
      const e = earliest.get(chat.id._serialized);
      if (!e || !e.more) return [];
      if (!e.pending) {
        e.pending = ask({ type: 'load_earlier', chat: chat.id._serialized, before: e.id }).then((r) => {
          const msgs = (r.msgs || []).map((m) => toMsg(m, chat.id));
          prepend(chat.msgs, msgs);
          e.more = !!r.more && msgs.length > 0;
          if (r.msgs && r.msgs.length) e.id = r.msgs[0].id;
          return msgs;
        }).finally(() => { e.pending = null; });
      }
      return e.pending;
    };

    // ----------------------------------------------------- contacts, chats
    if (!Object.getOwnPropertyDescriptor(ContactModel.prototype, 'isContactBlocked')) {
      Object.defineProperty(ContactModel.prototype, 'isContactBlocked', { get() { return !!this.isBlocked; } });
    }
    const isMe = (c) => !!c && (!!c.isMe || UserPrefsMeUser.isMeAccount(c.id));
    const ContactGetters = {
      getIsMe: isMe,
      getIsUser: (c) => !!c && c.id.isUser(),
      getIsGroup: (c) => !!c && c.id.isGroup(),
      getIsWAContact: (c) => !!c && c.id.isUser(),
      getUserid: (c) => (c ? (c.phoneNumber || c.id).user : undefined),
      getVerifiedName: (c) => c && c.verifiedName,
      getVerifiedLevel: (c) => c && c.verifiedLevel,
      getStatusMute: (c) => !!(c && c.statusMute),
      getName: (c) => c && c.name,
      getShortName: (c) => c && c.shortName,
      getPushname: (c) => c && c.pushname,
      getIsEnterprise: (c) => !!(c && c.isEnterprise),
    };

    const Blocklist = new Collection(Model);
    const BusinessProfile = new Collection(Model);
    BusinessProfile.find = async (id) => {
      const wid = createWid(id);
      const found = BusinessProfile.get(wid);
      if (found) return found;
      const contact = Contact.get(wid);
      const attrs = { id: wid };
      if (contact && contact.isBusiness) Object.assign(attrs, { profileOptions: { commerceExperience: 'none' }, description: contact.verifiedName || '', categories: [] });
      return BusinessProfile.add(new Model(attrs), { silent: true });
    };
    Collections.Blocklist = Blocklist;
    Collections.BusinessProfile = BusinessProfile;

    // ------------------------------------------------------- server queries
    const queryWidExists = async (w) => {
      const wid = createWid(w);
      if (!wid) return null;
      const r = await ask({ type: 'query_exists', wid: wid._serialized });
      if (r.error) throw new Error(r.error);
      if (!r.wid) return null;
      if (r.lid && !wid.isLid()) learnLid(r.lid, r.wid);
      return { wid: createWid(r.wid), lid: r.lid ? createWid(r.lid) : undefined };
    };

    const requestProfilePicFromServer = async (target) => {
      const wid = createWid(target && target.id ? target.id : target);
      const r = wid ? await ask({ type: 'profile_pic', wid: wid._serialized }) : {};
      if (!r.eurl) {
        const err = new Error('profile picture not found');
        err.name = 'ServerStatusCodeError';
        err.statusCode = 404;
        throw err;
      }
      return { eurl: location.origin + r.eurl };
    };

    // --------------------------------------------------------- chat actions
    // The read receipt names the messages read: the chat's last `unreadCount` messages from others.
    const sendSeen = async (arg) => {
      const chat = arg && arg.chat ? arg.chat : arg;
      if (!chat || !chat.id) return;
      const unread = chat.unreadCount || 0;
      const ids = [];
      const loaded = chat.msgs.getModelsArray();
      for (let i = loaded.length - 1; i >= 0 && ids.length < unread; i--) {
        const m = loaded[i];
        if (!m.id.fromMe) ids.push({ id: m.id.id, author: m.author ? m.author._serialized : null });
      }
      chat.set('unreadCount', 0);
      transport.send({ type: 'seen', chat: chat.id._serialized, ids: ids.reverse() });
    };

    const chatState = (state) => async (w) => {
      const wid = createWid(w);
      if (wid) transport.send({ type: 'chatstate', chat: wid._serialized, state });
    };

    return {
      WAWebChatLoadMessages: { loadEarlierMsgs },
      WAWebQueryExistsJob: { queryWidExists },
      WAWebContactProfilePicThumbBridge: { requestProfilePicFromServer },
      WAWebApiContact: ApiContact,
      WAWebLidMigrationUtils: { toPn },
      WAWebContactGetters: ContactGetters,
      WAWebFrontendContactGetters: { getIsMyContact: (c) => !!(c && c.isMyContact) },
      WAWebChatStateBridge: {
        sendChatStateComposing: chatState('composing'),
        sendChatStateRecording: chatState('recording'),
        sendChatStatePaused: chatState('paused'),
      },
      WAWebUpdateUnreadChatAction: { sendSeen },
    };
  });
})();
