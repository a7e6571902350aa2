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

  // The phone wid behind a @lid, as whatsapp-web.js's enforceLidAndPnRetrieval reads it
  // (WAWebApiContact.getPhoneNumber); null for any other wid, or a lid whose phone the page does not know.
  const pnOf = (w) => {
    const s = widOf(w);
    if (!s || !s.endsWith('@lid')) return null;
    try {
      const ApiContact = req('WAWebApiContact');
      if (!ApiContact || typeof ApiContact.getPhoneNumber !== 'function') return null;
      const wid = typeof w === 'object' ? w : req('WAWebWidFactory').createWid(s);
      return widOf(ApiContact.getPhoneNumber(wid)) || null;
    } catch (e) { return null; }
  };

  // What a received message carries, read from the fields whatsapp-web.js 1.34.7's Message reads
  // (src/structures/Message.js): media (directPath, mimetype, filename, size, filehash, caption), a
  // location (lat, lng, loc), contact cards (body of a vcard, vcardList of a multi_vcard), and the
  // quoted message of a reply (quotedStanzaID, quotedParticipant, quotedRemoteJid) as its serialized id.
  const serializeMsg = (m) => {
    const out = {
      id: m.id._serialized, key: m.id.id, from: widOf(m.from), to: widOf(m.to),
      body: m.directPath || m.type === 'location' ? null : m.body, type: m.type, t: m.t,
      fromMe: !!m.id.fromMe, author: widOf(m.author), from_pn: pnOf(m.from), author_pn: pnOf(m.author),
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
            emoji: r.reactionText || '', from: widOf(r.author || r.from), from_pn: pnOf(r.author || r.from), t: Math.floor((r.reactionTimestamp || 0) / 1000) });
        }
      } catch (e) { emit('error', { where: 'reaction', message: String(e) }); }
      return original.apply(this, args);
    };
  };

  // Shared with the other bridge files (bridge_conversations.js): one serializer of page messages.
  api.serializeMsg = serializeMsg;
  api.widOf = widOf;

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
      if (m.type === 'revoked' && !m.id.fromMe) emit('revoke', { id: m.id._serialized, from: widOf(m.author || m.from), from_pn: pnOf(m.author || m.from), t: m.revokeTimestamp || null });
    });
    // Edited: body (or a media caption) changes with latestEditMsgKey set (whatsapp-web.js: message_edit).
    Msg.on('change:body change:caption', (m, text) => {
      if (m.id.fromMe || m.type === 'revoked' || !m.latestEditMsgKey) return;
      emit('edit', { id: m.id._serialized, edit_id: widOf(m.latestEditMsgKey), from: widOf(m.author || m.from),
        from_pn: pnOf(m.author || m.from),
        text: text == null ? null : String(text), t: m.latestEditSenderTimestampMs ? Math.floor(m.latestEditSenderTimestampMs / 1000) : null });
    });
    hookReactions();

    // A restored session may have synced before we attached: report where we are now.
    emit('state', { state: Socket.state, hasSynced: !!Socket.hasSynced });
    if (Socket.hasSynced) emit('ready', { me: me(), pushname: Conn.pushname || null });
    else if (Socket.state === 'UNPAIRED' || Socket.state === 'UNPAIRED_IDLE') reportQr();
  };

  // Sending mirrors whatsapp-web.js 1.34.7 (src/util/Injected/Utils.js sendMessage, processMediaData,
  // processStickerData; Client.sendReaction): the same page modules, read the same way, so the bridge
  // runs on the real site. One difference: we mint the MsgKey id ourselves so the caller can record it
  // before the send and check it after a crash (the page never sends a key it already holds).
  api.newKey = async () => req('WAWebMsgKey').newId();

  const findMsg = async (id) => {
    const { Msg } = req('WAWebCollections');
    return Msg.get(id) || ((await Msg.getMessagesById([id])) || {}).messages?.[0];
  };

  const chatOf = async (to) => {
    const wid = req('WAWebWidFactory').createWid(to);
    return req('WAWebCollections').Chat.get(wid) || (await req('WAWebFindChatAction').findOrCreateLatestChat(wid)).chat;
  };

  // The media file the caller put into a file input of ours (disk-backed on the browser side, never
  // base64 through evaluate), renamed and typed as whatsapp-web.js's mediaInfoToFile makes its File.
  const slots = new Map();
  api.fileSlot = (token) => {
    const input = document.createElement('input');
    input.type = 'file';
    input.hidden = true;
    (document.body || document.documentElement).appendChild(input);
    slots.set(token, input);
    return input;
  };
  const takeFile = ({ slot, mimetype, filename }) => {
    const input = slots.get(slot);
    slots.delete(slot);
    const picked = input && input.files && input.files[0];
    if (input) input.remove();
    if (!picked) throw new Error('media file missing from its slot');
    return new File([picked], filename || picked.name, { type: mimetype, lastModified: Date.now() });
  };

  // processMediaData of whatsapp-web.js: opaque data -> prep -> media object -> mms upload.
  const processMediaData = async (file, mimetype, { isPtt, asDocument }) => {
    const OpaqueData = req('WAWebMediaOpaqueData');
    const opaqueData = await OpaqueData.createFromData(file, mimetype);
    const mediaData = await req('WAWebPrepRawMedia').prepRawMedia(opaqueData, { isPtt, asDocument }).waitForPrep();
    const mediaObject = req('WAWebMediaStorage').getOrCreateMediaObject(mediaData.filehash);
    const MediaTypes = req('WAWebMmsMediaTypes');
    const mediaType = MediaTypes.msgToMediaType({ type: mediaData.type, isGif: mediaData.isGif, isNewsletter: false });
    if (!mediaData.filehash) throw new Error('media-fault: sendToChat filehash undefined');
    if (isPtt && mediaData.type === 'ptt') mediaData.waveform = mediaObject.contentInfo.waveform;
    if (!(mediaData.mediaBlob instanceof OpaqueData)) {
      mediaData.mediaBlob = await OpaqueData.createFromData(mediaData.mediaBlob, mediaData.mediaBlob.type);
    }
    mediaData.renderableUrl = mediaData.mediaBlob.url();
    mediaObject.consolidate(mediaData.toJSON());
    mediaData.mediaBlob.autorelease();
    if (req('WAWebMediaDataUtils').shouldUseMediaCache(MediaTypes.castToV4(mediaObject.type))
        && mediaData.mediaBlob instanceof OpaqueData) {
      req('WAWebMediaInMemoryBlobCache').InMemoryMediaBlobCache.put(mediaObject.filehash, mediaData.mediaBlob.formData());
    }
    const uploaded = await req('WAWebMediaMmsV4Upload').uploadMedia({ mimetype: mediaData.mimetype, mediaObject, mediaType });
    const entry = uploaded.mediaEntry;
    if (!entry) throw new Error('upload failed: media entry was not created');
    mediaData.set({
      clientUrl: entry.mmsUrl, deprecatedMms3Url: entry.deprecatedMms3Url, directPath: entry.directPath,
      mediaKey: entry.mediaKey, mediaKeyTimestamp: entry.mediaKeyTimestamp, filehash: mediaObject.filehash,
      encFilehash: entry.encFilehash, uploadhash: entry.uploadHash, size: mediaObject.size,
      streamingSidecar: entry.sidecar, firstFrameSidecar: entry.firstFrameSidecar, mediaHandle: null,
    });
    return mediaData;
  };

  // processStickerData of whatsapp-web.js (a webp, uploaded as is).
  const processStickerData = async (file) => {
    if (file.type !== 'image/webp') throw new Error('Invalid media type');
    const buffer = await file.arrayBuffer();
    const digest = new Uint8Array(await crypto.subtle.digest('SHA-256', buffer));
    const filehash = btoa(String.fromCharCode(...digest));
    const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';
    const mediaKey = Array.from(crypto.getRandomValues(new Uint8Array(32)), (b) => alphabet[b % alphabet.length]).join('');
    const uploaded = await req('WAWebUploadManager').encryptAndUpload({
      blob: file, type: 'sticker', signal: new AbortController().signal, mediaKey,
      uploadQpl: req('WAWebStartMediaUploadQpl').startMediaUploadQpl({ entryPoint: 'MediaUpload' }),
    });
    return { ...uploaded, clientUrl: uploaded.url, deprecatedMms3Url: uploaded.url, uploadhash: uploaded.encFilehash,
      size: file.size, type: 'sticker', filehash };
  };

  const MEDIA = new Set(['image', 'video', 'audio', 'voice', 'document', 'sticker']);

  // The message fields of one kind, as sendMessage spreads its options into the new message.
  const kindFields = async (kind, content, media, body) => {
    if (kind === 'text') {
      if (!content.preview_url) return { body };
      const link = req('WALinkify').findLink(body);
      const preview = link && await req('WAWebLinkPreviewChatAction').getLinkPreview(link);
      return preview && preview.data ? { body, ...preview.data, preview: true, subtype: 'url' } : { body };
    }
    if (MEDIA.has(kind)) {
      const file = takeFile(media);
      if (kind === 'sticker') return { body: undefined, ...(await processStickerData(file)) };
      const mediaData = await processMediaData(file, media.mimetype, { isPtt: kind === 'voice', asDocument: kind === 'document' });
      const fields = { ...mediaData, ...(mediaData.toJSON ? mediaData.toJSON() : {}), caption: content.caption || undefined };
      return { ...fields, body: mediaData.preview };
    }
    if (kind === 'location') {
      const { latitude, longitude, name, address } = content;
      const loc = name && address ? `${name}\n${address}` : name || address || '';
      return { body: '', type: 'location', loc, lat: latitude, lng: longitude, clientUrl: undefined };
    }
    if (kind === 'contacts') {
      const vcards = content.vcards;
      if (vcards.length === 1) {
        const parsed = req('WAWebVcardParsingUtils').parseVcard(vcards[0].vcard);
        return { body: vcards[0].vcard, type: 'vcard',
          vcardFormattedName: req('WAWebVcardGetNameFromParsed').vcardGetNameFromParsed(parsed) };
      }
      return { body: null, type: 'multi_vcard', vcardList: vcards };
    }
    if (kind === 'poll') {
      return { body: '', kind: 'pollCreation', type: 'poll_creation', pollName: content.name.trim(),
        pollOptions: content.options.map((name, localId) => ({ name: name.trim(), localId })),
        pollSelectableOptionsCount: content.allow_multiple ? 0 : 1,
        messageSecret: window.crypto.getRandomValues(new Uint8Array(32)) };
    }
    throw new Error(`kind ${kind} is not sent from WhatsApp Web`);
  };

  // A reaction goes through the page's own action, as Client.sendReaction does; "" removes ours.
  const sendReaction = async ({ targetId, content }) => {
    const target = targetId && await findMsg(targetId);
    if (!target) return { error: 'target_not_found' };
    const result = await req('WAWebSendReactionMsgAction').sendReactionToMsg(target, content.emoji || '');
    return { id: null, duplicate: false, result: (result && result.messageSendResult) || 'OK' };
  };

  // One message: {to, keyId, kind, content, quotedId?, targetId?, media?: {slot, mimetype, filename},
  // waitUntilMsgSent}. Answers {id, duplicate, result?} or {error: 'target_not_found'}.
  const sendOne = async (item) => {
    const { to, keyId, kind = 'text', content = {}, quotedId, media, waitUntilMsgSent } = item;
    if (kind === 'reaction') return sendReaction(item);
    const { Msg } = req('WAWebCollections');
    const MsgKey = req('WAWebMsgKey');
    const chat = await chatOf(to);
    const meUser = req('WAWebUserPrefsMeUser').getMaybeMePnUser();
    const key = new MsgKey({ from: meUser, to: chat.id, id: keyId || await MsgKey.newId(),
      participant: chat.id.isGroup() ? meUser : undefined, selfDir: 'out' });
    if (Msg.get(key._serialized)) return { id: key._serialized, duplicate: true };
    let quoted = {};
    if (quotedId) {
      const q = await findMsg(quotedId);
      if (!q) return { error: 'target_not_found' };
      const ReplyUtils = req('WAWebMsgReply');
      if (ReplyUtils ? ReplyUtils.canReplyMsg(q.unsafe()) : q.canReply()) quoted = q.msgContextInfo(chat);
    }
    const body = kind === 'text' ? (content.text ?? item.body ?? '') : '';
    const fields = await kindFields(kind, content, media, body);
    const eph = req('WAWebGetEphemeralFieldsMsgActionsUtils').getEphemeralFields(chat);
    const message = { id: key, ack: 0, from: meUser, to: chat.id, local: true, self: 'out',
      t: Math.floor(Date.now() / 1000), isNewMsg: true, type: 'chat', ...eph, ...fields, ...quoted };
    const [msgPromise, sendResult] = req('WAWebSendMsgChatAction').addAndSendMsgToChat(chat, message);
    await msgPromise;
    // As whatsapp-web.js's sendMessage({waitUntilMsgSent}): resolve once the server took it (ack 1) or refused it.
    if (waitUntilMsgSent) return { id: key._serialized, duplicate: false, result: (await sendResult).messageSendResult };
    return { id: key._serialized, duplicate: false };
  };

  // Several messages in one evaluate, in order; one failing does not stop the others.
  api.sendMany = async (items) => {
    const out = [];
    for (const item of items) {
      try {
        out.push(await sendOne(item));
      } catch (e) {
        out.push({ error: 'page_error', message: String((e && e.message) || e) });
      }
    }
    for (const input of slots.values()) input.remove();
    slots.clear();
    return out;
  };
  // A text, as before sendMany: {to, body, keyId, waitUntilMsgSent}; throws what the page throws.
  api.send = async (item) => {
    const [result] = await api.sendMany([{ ...item, kind: 'text', content: { text: item.body } }]);
    if (result.error === 'page_error') throw new Error(result.message);
    return result;
  };
  // Pairing-code login, as whatsapp-web.js's Client.requestPairingCode does in the page: wait for the
  // module, switch the page to ALT_DEVICE_LINKING, initialize it and start the flow for `phone` (digits);
  // answers the 8-character code. The caller renews it while the page stays unpaired.
  api.requestPairingCode = async (phone, showNotification) => {
    for (let i = 0; i < 120 && !req('WAWebAltDeviceLinkingApi'); i += 1) await new Promise((r) => setTimeout(r, 250));
    const linking = req('WAWebAltDeviceLinkingApi');
    if (!linking) throw new Error('pairing code linking is not available on this page');
    linking.setPairingType('ALT_DEVICE_LINKING');
    await linking.initializeAltDeviceLinking();
    return linking.startAltLinkingFlow(String(phone), showNotification !== false);
  };

  // Take the account back from another WhatsApp Web (CONFLICT, UNLAUNCHED), as whatsapp-web.js's
  // takeoverOnConflict does: Socket.takeover() of the page itself (window.Store.AppState). Not awaited:
  // the socket's next state (CONNECTED, or CONFLICT again) is the answer, through `state`.
  api.takeover = () => {
    const Socket = req('WAWebSocketModel') && req('WAWebSocketModel').Socket;
    if (!Socket || typeof Socket.takeover !== 'function') return false;
    Promise.resolve(Socket.takeover()).catch((e) => emit('error', { where: 'takeover', message: String(e) }));
    return true;
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
