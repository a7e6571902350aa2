// wa-ray page bridge. Talks only to the module surface whatsapp-web.js reads
// from the real WhatsApp Web page (window.require + window.Debug.VERSION), so
// the same bridge runs on the simulator and on web.whatsapp.com.
// Reports go through the exposed binding window.__warayEmit(kind, payload).
(() => {
  if (window.__waray) return;
  const emit = (kind, payload) => {
    try { window.__warayEmit(kind, payload || {}); } catch (e) { /* binding not ready on about:blank */ }
  };
  const req = (name) => { try { return window.require(name); } catch (e) { return undefined; } };
  const api = { hooked: false };
  window.__waray = api;

  const buildQr = async () => {
    const Conn = req('WAWebConnModel').Conn;
    const reg = Object.assign({}, req('WAWebCompanionRegClientUtils'), req('WAWebAdvSignatureApi'),
      req('WAWebUserPrefsInfoStore'), req('WAWebSignalStoreApi'));
    const b64 = req('WABase64').encodeB64;
    const info = await reg.waSignalStore.getRegistrationInfo();
    const noise = await reg.waNoiseInfo.get();
    const adv = req('WAWebUserPrefsMultiDevice').getADVSecretKey();
    return [Conn.ref, b64(noise.staticKeyPair.pubKey), b64(info.identityKeyPair.pubKey), adv, reg.DEVICE_PLATFORM].join(',');
  };

  const me = () => {
    const user = req('WAWebUserPrefsMeUser');
    const wid = user && user.getMaybeMePnUser && user.getMaybeMePnUser();
    return wid ? { id: wid._serialized, number: wid.user } : null;
  };

  const widOf = (w) => (w ? (w._serialized || String(w)) : null);
  const isMe = (w) => {
    const user = req('WAWebUserPrefsMeUser');
    return !!w && !!user && (user.isMeAccount ? user.isMeAccount(w) : widOf(user.getMaybeMePnUser()) === widOf(w));
  };

  // What a received message carries, read from the fields whatsapp-web.js 1.34.7's Message reads
  // (src/structures/Message.js): media (directPath, mimetype, filename, size, filehash, caption), a
  // location (lat, lng, loc), contact cards (body of a vcard, vcardList of a multi_vcard), and the
  // quoted message of a reply (quotedStanzaID, quotedParticipant, quotedRemoteJid) as its serialized id.
  const serializeMsg = (m) => {
    const out = {
      id: m.id._serialized, key: m.id.id, from: widOf(m.from), to: widOf(m.to),
      body: m.directPath || m.type === 'location' ? null : m.body, type: m.type, t: m.t,
      fromMe: !!m.id.fromMe, author: widOf(m.author),
    };
    if (m.directPath) {
      out.media = { mimetype: m.mimetype || null, filename: m.filename || null, size: typeof m.size === 'number' ? m.size : null,
        filehash: m.filehash || null, caption: m.caption == null ? null : String(m.caption) };
    }
    if (m.type === 'location') out.location = { lat: m.lat, lng: m.lng, loc: m.loc || null };
    if (m.type === 'vcard') out.vcards = [String(m.body || '')];
    if (m.type === 'multi_vcard') out.vcards = (m.vcardList || []).map((c) => String(c.vcard || ''));
    if (m.quotedStanzaID) {
      const remote = m.quotedRemoteJid || m.id.remote;
      const participant = m.quotedParticipant;
      const MsgKey = req('WAWebMsgKey');
      const key = new MsgKey({ fromMe: isMe(participant), remote, id: m.quotedStanzaID,
        participant: remote && remote.isGroup && remote.isGroup() ? participant : undefined });
      out.quoted = { id: key._serialized, fromMe: key.fromMe };
    }
    return out;
  };

  // Media of a received message, for the host to pull in chunks: downloaded and decrypted in the page as
  // whatsapp-web.js's Message.downloadMedia does (resolve mediaData, then the DownloadManager), held
  // until closed. Inbound media is capped by the workspace's policy before anyone opens it.
  const heldMedia = new Map();
  api.mediaOpen = async (id) => {
    const { Msg } = req('WAWebCollections');
    const msg = Msg.get(id) || ((await Msg.getMessagesById([id])) || {}).messages?.[0];
    if (!msg || !msg.mediaData || msg.mediaData.mediaStage === 'REUPLOADING') return null;
    if (msg.mediaData.mediaStage !== 'RESOLVED') await msg.downloadMedia({ downloadEvenIfExpensive: true, rmrReason: 1 });
    const stage = String(msg.mediaData.mediaStage || '');
    if (stage.includes('ERROR') || stage === 'FETCHING') return null;
    const mockQpl = { addAnnotations() { return this; }, addPoint() { return this; } };
    const data = await req('WAWebDownloadManager').downloadManager.downloadAndMaybeDecrypt({
      directPath: msg.directPath, encFilehash: msg.encFilehash, filehash: msg.filehash, mediaKey: msg.mediaKey,
      mediaKeyTimestamp: msg.mediaKeyTimestamp, type: msg.type, signal: new AbortController().signal, downloadQpl: mockQpl });
    const handle = Math.random().toString(36).slice(2) + Date.now().toString(36);
    heldMedia.set(handle, new Uint8Array(data));
    return { handle, size: data.byteLength };
  };
  api.mediaChunk = (handle, offset, length) => {
    const bytes = heldMedia.get(handle);
    if (!bytes) throw new Error('media handle unknown');
    const part = bytes.subarray(offset, offset + length);
    let s = '';
    for (let i = 0; i < part.length; i += 0x8000) s += String.fromCharCode.apply(null, part.subarray(i, i + 0x8000));
    return btoa(s);
  };
  api.mediaClose = (handle) => { heldMedia.delete(handle); };

  // Reactions reach the page's reaction table (WAWebAddonReactionTableMode.reactionTableMode.bulkUpsert),
  // where whatsapp-web.js hooks them too (injectToFunction); ours are reported by the send, not here.
  const hookReactions = () => {
    const mod = req('WAWebAddonReactionTableMode');
    const table = mod && mod.reactionTableMode;
    if (!table || typeof table.bulkUpsert !== 'function') return;
    const original = table.bulkUpsert;
    table.bulkUpsert = function bulkUpsert(...args) {
      try {
        for (const r of args[0] || []) {
          if (!r || !r.id || r.id.fromMe) continue;
          emit('reaction', { id: r.id._serialized, target: r.reactionParentKey && r.reactionParentKey._serialized,
            emoji: r.reactionText || '', from: widOf(r.author || r.from), t: Math.floor((r.reactionTimestamp || 0) / 1000) });
        }
      } catch (e) { emit('error', { where: 'reaction', message: String(e) }); }
      return original.apply(this, args);
    };
  };

  let lastQr = null;  // state and ref changes both announce a code: report each code once
  const reportQr = async () => {
    const Conn = req('WAWebConnModel').Conn;
    if (!Conn.ref) return;
    try {
      const qr = await buildQr();
      if (qr !== lastQr) { lastQr = qr; emit('qr', { qr }); }
    } catch (e) { emit('error', { where: 'qr', message: String(e) }); }
  };

  const hook = () => {
    const Socket = req('WAWebSocketModel').Socket;
    const Conn = req('WAWebConnModel').Conn;
    const Cmd = req('WAWebCmd').Cmd;
    const { Msg } = req('WAWebCollections');
    api.hooked = true;
    emit('boot', { version: window.Debug.VERSION });

    Socket.on('change:state', (_m, state) => {
      emit('state', { state, hasSynced: !!Socket.hasSynced });
      if (state === 'UNPAIRED' || state === 'UNPAIRED_IDLE') reportQr();
    });
    Conn.on('change:ref', () => { if (!Socket.hasSynced) reportQr(); });
    Socket.on('change:hasSynced', (_m, synced) => { if (synced) emit('ready', { me: me(), pushname: Conn.pushname || null }); });
    Cmd.on('logout', () => emit('logout', {}));
    Cmd.on('logout_from_bridge', () => emit('logout', {}));
    Msg.on('add', (m) => {
      if (m.isNewMsg && !m.id.fromMe && m.type !== 'ciphertext') emit('message', serializeMsg(m));
    });
    Msg.on('change:ack', (m, ack) => { if (m.id.fromMe) emit('ack', { id: m.id._serialized, ack }); });
    // Deleted for everyone: the message's type turns to 'revoked' (whatsapp-web.js: message_revoke_everyone).
    Msg.on('change:type', (m) => {
      if (m.type === 'revoked' && !m.id.fromMe) emit('revoke', { id: m.id._serialized, from: widOf(m.author || m.from), t: m.revokeTimestamp || null });
    });
    // Edited: body (or a media caption) changes with latestEditMsgKey set (whatsapp-web.js: message_edit).
    Msg.on('change:body change:caption', (m, text) => {
      if (m.id.fromMe || m.type === 'revoked' || !m.latestEditMsgKey) return;
      emit('edit', { id: m.id._serialized, edit_id: widOf(m.latestEditMsgKey), from: widOf(m.author || m.from),
        text: text == null ? null : String(text), t: m.latestEditSenderTimestampMs ? Math.floor(m.latestEditSenderTimestampMs / 1000) : null });
    });
    hookReactions();

    // A restored session may have synced before we attached: report where we are now.
    emit('state', { state: Socket.state, hasSynced: !!Socket.hasSynced });
    if (Socket.hasSynced) emit('ready', { me: me(), pushname: Conn.pushname || null });
    else if (Socket.state === 'UNPAIRED' || Socket.state === 'UNPAIRED_IDLE') reportQr();
  };

  // Mirrors whatsapp-web.js's sendMessage: we mint the MsgKey id ourselves so
  // the caller can record it before the send and check it after a crash.
  api.newKey = async () => req('WAWebMsgKey').newId();
  api.send = async ({ to, body, keyId, waitUntilMsgSent }) => {
    const WidFactory = req('WAWebWidFactory');
    const { Chat, Msg } = req('WAWebCollections');
    const MsgKey = req('WAWebMsgKey');
    const wid = WidFactory.createWid(to);
    const chat = Chat.get(wid) || (await req('WAWebFindChatAction').findOrCreateLatestChat(wid)).chat;
    const meUser = req('WAWebUserPrefsMeUser').getMaybeMePnUser();
    const key = new MsgKey({ from: meUser, to: chat.id, id: keyId || await MsgKey.newId(),
      participant: chat.id.isGroup() ? meUser : undefined, selfDir: 'out' });
    if (Msg.get(key._serialized)) return { id: key._serialized, duplicate: true };
    const eph = req('WAWebGetEphemeralFieldsMsgActionsUtils').getEphemeralFields(chat);
    const message = { id: key, ack: 0, body, from: meUser, to: chat.id, local: true, self: 'out',
      t: Math.floor(Date.now() / 1000), isNewMsg: true, type: 'chat', ...eph };
    const [msgPromise, sendResult] = req('WAWebSendMsgChatAction').addAndSendMsgToChat(chat, message);
    await msgPromise;
    // As whatsapp-web.js's sendMessage({waitUntilMsgSent}): resolve once the server took it (ack 1) or refused it.
    if (waitUntilMsgSent) return { id: key._serialized, duplicate: false, result: (await sendResult).messageSendResult };
    return { id: key._serialized, duplicate: false };
  };
  api.state = () => {
    const Socket = req('WAWebSocketModel') && req('WAWebSocketModel').Socket;
    return Socket ? { state: Socket.state, hasSynced: !!Socket.hasSynced, me: me() } : null;
  };

  const waitForStore = () => {
    if (window.Debug && window.Debug.VERSION && typeof window.require === 'function' && req('WAWebSocketModel')) hook();
    else setTimeout(waitForStore, 50);
  };
  if (location.protocol === 'http:' || location.protocol === 'https:') waitForStore();
})();
