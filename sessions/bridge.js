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

  const serializeMsg = (m) => ({
    id: m.id._serialized, key: m.id.id, from: (m.from && m.from._serialized) || String(m.from),
    to: (m.to && m.to._serialized) || String(m.to), body: m.body, type: m.type, t: m.t,
    fromMe: !!m.id.fromMe, author: m.author ? (m.author._serialized || String(m.author)) : null,
  });

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
