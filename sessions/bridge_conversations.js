// wa-ray conversations bridge: chats, messages, contacts, number check, read, chat state, groups.
// Extends window.__waray (sessions/bridge.js, installed before this file). Reads only the page modules
// whatsapp-web.js 1.34.7 reads for the same jobs (src/util/Injected/Utils.js getChatModel,
// getContactModel, getContact, sendSeen, sendChatstate, getMessageModel; src/structures/Chat.js
// fetchMessages; Client.js getNumberId, getProfilePicUrl), so it runs on the real site as on the simulator.
// Every function takes plain JSON arguments and returns plain JSON; every message leaves through
// __waray.serializeMsg. An unknown chat or cursor is an answer ({error: ...}), never a throw.
(() => {
  const api = window.__waray;
  if (!api || api.chats) return;
  const req = (name) => { try { return window.require(name); } catch (e) { return undefined; } };
  const widOf = (w) => (w ? (w._serialized || String(w)) : null);
  const createWid = (id) => req('WAWebWidFactory').createWid(id);
  const collections = () => req('WAWebCollections');
  const clampLimit = (n, max) => Math.max(1, Math.min(max, Number.isInteger(n) ? n : 50));

  const chatById = (id) => {
    const wid = createWid(id);
    return wid ? collections().Chat.get(wid) : undefined;
  };

  // The message a chat shows last, as getChatModel finds it: lastReceivedKey, from Msg or fetched by id.
  const lastMessageOf = async (chat) => {
    const msgs = chat.msgs;
    if (!msgs || !msgs.length || !chat.lastReceivedKey) return null;
    const key = chat.lastReceivedKey._serialized;
    const { Msg } = collections();
    const m = Msg.get(key) || ((await Msg.getMessagesById([key])) || {}).messages?.[0];
    return m ? api.serializeMsg(m) : null;
  };

  // getChatModel's fields, for one chat of a page (the listing reads only `t`, `archive` and `id` of the rest).
  const chatOut = async (chat, { participants = false } = {}) => {
    const model = chat.serialize();
    const gm = chat.groupMetadata;
    const mute = chat.mute;
    const expiration = mute ? mute.expiration : model.muteExpiration;
    const out = {
      id: widOf(chat.id), name: chat.formattedTitle || model.name || null, is_group: !!gm,
      unread_count: Number(model.unreadCount || 0), archived: !!model.archive, pinned: !!model.pin,
      muted: !!expiration, timestamp: typeof model.t === 'number' ? model.t : null,
      read_only: gm ? !!gm.announce : !!model.isReadOnly, last_message: await lastMessageOf(chat),
    };
    if (participants && gm) out.participants_count = (gm.serialize().participants || []).length;
    return out;
  };

  // Chats ordered by t desc, then id asc; the cursor is [t, id] of the previous page's last chat. One
  // filter and one sort over the page's chat array per call; only the page's chats are serialized.
  api.chats = async ({ cursor = null, limit = 50, archived = null, groups = false } = {}) => {
    const n = clampLimit(limit, 500);
    const rows = [];
    for (const chat of collections().Chat.getModelsArray()) {
      if (groups && !chat.groupMetadata) continue;
      if (archived !== null && archived !== undefined && !!chat.archive !== !!archived) continue;
      rows.push([typeof chat.t === 'number' ? chat.t : 0, widOf(chat.id), chat]);
    }
    const total = rows.length;
    const after = Array.isArray(cursor) && cursor.length === 2 ? cursor : null;
    const picked = after ? rows.filter(([t, id]) => t < after[0] || (t === after[0] && id > after[1])) : rows;
    picked.sort((a, b) => (b[0] - a[0]) || (a[1] < b[1] ? -1 : a[1] > b[1] ? 1 : 0));
    const page = picked.slice(0, n);
    const items = [];
    for (const [, , chat] of page) items.push(await chatOut(chat, { participants: groups }));
    const last = page[page.length - 1];
    return { items, next: picked.length > n && last ? [last[0], last[1]] : null, total };
  };

  // fetchMessages' filter: no notification messages.
  const listable = (m) => !m.isNotification;

  // Messages of a chat, oldest to newest, as fetchMessages reads them: the chat's loaded messages, and
  // earlier ones from loadEarlierMsgs while more are needed. `before`/`after` are serialized message
  // ids of this chat; `sinceTs` stops loading at messages older than it.
  api.chatMessages = async (chatId, { before = null, after = null, limit = 50, sinceTs = null } = {}) => {
    const chat = chatById(chatId);
    if (!chat || !chat.msgs) return { error: 'chat_not_found' };
    const n = clampLimit(limit, 500);
    const since = typeof sinceTs === 'number' ? sinceTs : null;
    const idOf = (m) => m.id._serialized;
    let msgs = chat.msgs.getModelsArray().filter(listable);
    let exhausted = false;
    const loadEarlier = async () => {
      if (exhausted) return false;
      if (since !== null && msgs.length && msgs[0].t < since) { exhausted = true; return false; }
      const loaded = await req('WAWebChatLoadMessages').loadEarlierMsgs({ chat });
      if (!loaded || !loaded.length) { exhausted = true; return false; }
      const seen = new Set(msgs.map(idOf));
      msgs = [...loaded.filter((m) => listable(m) && !seen.has(idOf(m))), ...msgs];
      return true;
    };
    const known = async (id) => {
      const { Msg } = collections();
      const m = Msg.get(id) || ((await Msg.getMessagesById([id])) || {}).messages?.[0];
      return !!m && widOf(m.id.remote) === widOf(chat.id);
    };
    const inWindow = (m) => since === null || m.t >= since;
    if (after) {
      let at = msgs.findIndex((m) => idOf(m) === after);
      while (at < 0 && (await known(after)) && (await loadEarlier())) at = msgs.findIndex((m) => idOf(m) === after);
      if (at < 0) return { error: 'cursor_unknown' };
      const newer = msgs.slice(at + 1).filter(inWindow);
      return { items: newer.slice(0, n).map(api.serializeMsg), has_more: newer.length > n };
    }
    let end = msgs.length;
    if (before) {
      let at = msgs.findIndex((m) => idOf(m) === before);
      while (at < 0 && (await known(before)) && (await loadEarlier())) at = msgs.findIndex((m) => idOf(m) === before);
      if (at < 0) return { error: 'cursor_unknown' };
      end = at;
    }
    // one more than asked, to know whether an older page exists; a load prepends, so the cursor's
    // distance from the newest end (`tail`) is what stays fixed
    const tail = msgs.length - end;
    while (msgs.length - tail < n + 1 && (await loadEarlier())) { /* loaded more */ }
    end = msgs.length - tail;
    const older = msgs.slice(0, end).filter(inWindow);
    const items = older.slice(Math.max(0, older.length - n));
    return { items: items.map(api.serializeMsg), has_more: older.length > n };
  };

  // getContactModel's fields. `number` is the phone the page knows (a @c.us id's user, a lid contact's
  // phoneNumber or getPhoneNumber); a lid whose phone it does not know has none.
  const contactOut = (contact) => {
    const res = contact.serialize();
    const wid = req('WAWebWidFactory').createWidFromWidLike(contact.id);
    const getters = req('WAWebContactGetters');
    const apiContact = req('WAWebApiContact');
    let phone = null;
    if (wid.isLid()) {
      const pn = contact.phoneNumber || (apiContact && apiContact.getPhoneNumber ? apiContact.getPhoneNumber(wid) : null);
      phone = pn ? createWid(widOf(pn)) : null;
    } else if (wid.server === 'c.us') {
      phone = wid;
    }
    let blocked = !!contact.isContactBlocked;
    if (!blocked && apiContact && apiContact.getAlternateUserWid) {
      const alt = apiContact.getAlternateUserWid(wid);
      if (alt) blocked = !!collections().Blocklist?.get(alt);
    }
    const front = req('WAWebFrontendContactGetters');
    const str = (v) => (v == null || v === '' ? null : String(v));
    return {
      id: widOf(wid), number: phone && phone.server === 'c.us' ? String(phone.user) : null,
      name: str(getters ? getters.getName(contact) : res.name),
      short_name: str(getters ? getters.getShortName(contact) : res.shortName),
      push_name: str(getters ? getters.getPushname(contact) : res.pushname),
      is_business: res.isBusiness === undefined ? !!contact.isBusiness : !!res.isBusiness,
      is_enterprise: !!(getters ? getters.getIsEnterprise(contact) : res.isEnterprise),
      is_my_contact: !!(front ? front.getIsMyContact(contact) : res.isMyContact),
      is_blocked: blocked,
      verified_name: str(getters ? getters.getVerifiedName(contact) : res.verifiedName),
    };
  };

  const isPerson = (contact) => {
    const id = widOf(contact.id) || '';
    return id.endsWith('@c.us') || id.endsWith('@lid');
  };

  // Contacts (people: @c.us and @lid) ordered by id; `query` matches name, short name, push name or
  // number, case-insensitive; the cursor is the previous page's last id.
  api.contacts = async ({ query = null, cursor = null, limit = 50 } = {}) => {
    const n = clampLimit(limit, 500);
    const q = typeof query === 'string' && query ? query.toLowerCase() : null;
    const rows = [];
    for (const contact of collections().Contact.getModelsArray()) {
      if (!isPerson(contact)) continue;
      const id = widOf(contact.id);
      if (typeof cursor === 'string' && cursor && !(id > cursor)) continue;
      rows.push([id, contact]);
    }
    rows.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
    const items = [];
    let i = 0;
    for (; i < rows.length && items.length < n; i += 1) {
      const out = contactOut(rows[i][1]);
      if (q && ![out.name, out.short_name, out.push_name, out.number, out.id]
        .some((v) => v && String(v).toLowerCase().includes(q))) continue;
      items.push(out);
    }
    let more = false;
    if (items.length === n) {
      for (let j = i; j < rows.length && !more; j += 1) {
        if (!q) { more = true; break; }
        const out = contactOut(rows[j][1]);
        more = [out.name, out.short_name, out.push_name, out.number, out.id].some((v) => v && String(v).toLowerCase().includes(q));
      }
    }
    return { items, next: more ? items[items.length - 1].id : null };
  };

  // One contact, as getContact reads it (with the business profile of a business), plus the profile
  // picture URL as getProfilePicUrl asks the server for it; the URL is reported, never fetched here.
  api.contact = async (id) => {
    const wid = createWid(id);
    const { Contact, BusinessProfile } = collections();
    const contact = wid && Contact.get(wid);
    if (!contact) return { error: 'contact_not_found' };
    if ((contact.isBusiness || contact.isEnterprise) && BusinessProfile && BusinessProfile.find) {
      try { await BusinessProfile.find(wid); } catch (e) { /* no profile: the contact stands without it */ }
    }
    const out = contactOut(contact);
    out.profile_picture_url = null;
    try {
      const bridge = req('WAWebContactProfilePicThumbBridge');
      const pic = bridge && await bridge.requestProfilePicFromServer(collections().Chat.get(wid) || contact);
      if (pic && typeof pic.eurl === 'string') out.profile_picture_url = pic.eurl;
    } catch (e) { /* no picture, or the server refused: none */ }
    return out;
  };

  // getNumberId: {exists, id}.
  api.numberExists = async (number) => {
    const wid = createWid(`${number}@c.us`);
    const result = await req('WAWebQueryExistsJob').queryWidExists(wid);
    if (!result || result.wid === undefined || result.wid === null) return { exists: false, id: null };
    return { exists: true, id: widOf(result.wid) };
  };

  // sendSeen: the chat's unread count clears and the sender gets read receipts.
  api.markRead = async (chatId) => {
    const chat = chatById(chatId);
    if (!chat) return { error: 'chat_not_found' };
    const { Stream } = req('WAWebStreamModel');
    Stream.markAvailable();
    try {
      await req('WAWebUpdateUnreadChatAction').sendSeen({ chat, threadId: undefined });
    } finally {
      Stream.markUnavailable();
    }
    return { ok: true };
  };

  // sendChatstate: typing, recording or paused in a chat. `requireChat`: only in a chat the page holds.
  const STATES = { typing: 'sendChatStateComposing', recording: 'sendChatStateRecording', paused: 'sendChatStatePaused' };
  api.chatState = async (chatId, state, { requireChat = false } = {}) => {
    const fn = STATES[state];
    if (!fn) return { error: 'invalid_state' };
    if (requireChat && !chatById(chatId)) return { error: 'chat_not_found' };
    await req('WAWebChatStateBridge')[fn](createWid(chatId));
    return { ok: true };
  };

  // A group's participants as getChatModel reads them: metadata updated, each id through toPn (the
  // phone wid of a lid when the page knows it; the lid otherwise).
  api.groupParticipants = async (groupId) => {
    const chat = chatById(groupId);
    if (!chat || !chat.groupMetadata) return { error: 'chat_not_found' };
    const { GroupMetadata, WAWebGroupMetadataCollection } = collections();
    const metadata = GroupMetadata || WAWebGroupMetadataCollection;
    if (metadata && metadata.update) await metadata.update(createWid(groupId));
    const lidUtils = req('WAWebLidMigrationUtils');
    const items = [];
    for (const p of chat.groupMetadata.serialize().participants || []) {
      const own = widOf(p.id);
      const pn = lidUtils && lidUtils.toPn ? lidUtils.toPn(p.id) : null;
      const id = widOf(pn) || own;
      items.push({ id, number: id && id.endsWith('@c.us') ? id.split('@')[0] : null,
        is_admin: !!p.isAdmin || !!p.isSuperAdmin, is_super_admin: !!p.isSuperAdmin });
    }
    return { items };
  };
})();
