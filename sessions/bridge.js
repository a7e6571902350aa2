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
