/*
 * WhatsApp Web simulator: what the page does with the kinds a phone sends (phone_kinds.py).
 *
 * Mirrors what whatsapp-web.js 1.34.7 reads from the real page for inbound messages:
 * - a media Msg carries mimetype, filename, size, caption, mediaKey, mediaKeyTimestamp,
 *   directPath, filehash, encFilehash and a mediaData whose stage is resolved by msg.downloadMedia();
 *   WAWebDownloadManager.downloadManager.downloadAndMaybeDecrypt fetches the directPath and undoes
 *   WhatsApp's media encryption (HKDF/AES-CBC/HMAC, media_crypto.py), checking both hashes;
 * - a location Msg carries lat/lng/loc, a contact card body (vcard) or vcardList (multi_vcard);
 * - a reply carries quotedMsg/quotedStanzaID/quotedParticipant/quotedRemoteJid, and
 *   WAWebQuotedMsgModelUtils.getQuotedMsgObj(msg) answers the quoted Msg;
 * - a reaction goes through WAWebAddonReactionTableMode.reactionTableMode.bulkUpsert (looked up at
 *   each call, so a wrapper installed with injectToFunction sees it) and marks its Msg hasReaction;
 * - a revoke turns the Msg's type to 'revoked' (change:type, protocolMessageKey);
 * - an edit sets body (or caption) with latestEditMsgKey (change:body / change:caption).
 * Registered through window.__waSimExtensions, so it is loaded before app.js.
 */
(() => {
  'use strict';

  const HKDF_INFO = {
    image: 'WhatsApp Image Keys', sticker: 'WhatsApp Image Keys', video: 'WhatsApp Video Keys',
    audio: 'WhatsApp Audio Keys', ptt: 'WhatsApp Audio Keys', document: 'WhatsApp Document Keys',
  };
  const MAC_LEN = 10;

  const b64 = (buf) => {
    const bytes = new Uint8Array(buf);
    let s = '';
    for (let i = 0; i < bytes.length; i += 0x8000) s += String.fromCharCode.apply(null, bytes.subarray(i, i + 0x8000));
    return btoa(s);
  };
  const unb64 = (s) => Uint8Array.from(atob(s), (c) => c.charCodeAt(0));
  const sha256b64 = async (buf) => b64(await crypto.subtle.digest('SHA-256', buf));

  class MediaError extends Error {
    constructor(message, status) { super(message); this.status = status; }
  }

  // The real downloadAndMaybeDecrypt resolves to the plain bytes (an ArrayBuffer).
  const downloadAndMaybeDecrypt = async ({ directPath, encFilehash, filehash, mediaKey, type, signal }) => {
    const resp = await fetch(directPath, { signal });
    if (!resp.ok) throw new MediaError('media download failed: ' + resp.status, resp.status);
    const enc = new Uint8Array(await resp.arrayBuffer());
    if (encFilehash && (await sha256b64(enc)) !== encFilehash) throw new MediaError('encFilehash mismatch');
    const info = HKDF_INFO[type];
    if (!info || !mediaKey) throw new MediaError('no media key for type ' + type);
    const base = await crypto.subtle.importKey('raw', unb64(mediaKey), 'HKDF', false, ['deriveBits']);
    const expanded = new Uint8Array(await crypto.subtle.deriveBits(
      { name: 'HKDF', hash: 'SHA-256', salt: new Uint8Array(0), info: new TextEncoder().encode(info) }, base, 112 * 8));
    const iv = expanded.slice(0, 16);
    const cipherKey = await crypto.subtle.importKey('raw', expanded.slice(16, 48), 'AES-CBC', false, ['decrypt']);
    const macKey = await crypto.subtle.importKey('raw', expanded.slice(48, 80), { name: 'HMAC', hash: 'SHA-256' }, false, ['sign']);
    const body = enc.subarray(0, enc.length - MAC_LEN);
    const macInput = new Uint8Array(iv.length + body.length);
    macInput.set(iv, 0);
    macInput.set(body, iv.length);
    const mac = new Uint8Array(await crypto.subtle.sign('HMAC', macKey, macInput)).subarray(0, MAC_LEN);
    const got = enc.subarray(enc.length - MAC_LEN);
    if (mac.some((b, i) => b !== got[i])) throw new MediaError('media MAC mismatch');
    const plain = await crypto.subtle.decrypt({ name: 'AES-CBC', iv }, cipherKey, body);
    if (filehash && (await sha256b64(plain)) !== filehash) throw new MediaError('filehash mismatch');
    return plain;
  };

  (window.__waSimExtensions = window.__waSimExtensions || []).push((x) => {
    const { Collections, MsgModel, MsgKey, createWid, handlers, receiveMsg, getOrCreateChat, me } = x;
    const { Msg } = Collections;

    // A message of the chat with `chatWid` by its stanza id, whichever side sent it.
    const inChat = (chatWid, stanzaId) => {
      const { chat } = getOrCreateChat(chatWid);
      return chat.msgs.findFirst((m) => m.id.id === stanzaId);
    };

    if (!MsgModel.prototype.downloadMedia) {
      // The real msg.downloadMedia resolves mediaData (download, decrypt, cache); whatsapp-web.js then
      // downloads again through the DownloadManager and reads only the stage.
      MsgModel.prototype.downloadMedia = async function downloadMedia() {
        if (!this.mediaData) return;
        this.mediaData.mediaStage = 'FETCHING';
        try {
          await downloadAndMaybeDecrypt({ directPath: this.directPath, encFilehash: this.encFilehash, filehash: this.filehash, mediaKey: this.mediaKey, type: this.type });
          this.mediaData.mediaStage = 'RESOLVED';
        } catch (e) {
          this.mediaData.mediaStage = e.status === 404 ? 'ERROR_MISSING' : 'ERROR_UNKNOWN';
        }
      };
    }

    // What a reply's quotedMsg holds of the quoted message: its content, not its identity.
    const QUOTED_FIELDS = ['type', 'body', 'caption', 'mimetype', 'filename', 'lat', 'lng', 'loc', 'vcardFormattedName'];
    const quotedFields = (q) => {
      const out = {};
      for (const f of QUOTED_FIELDS) if (q.get(f) !== undefined) out[f] = q.get(f);
      return out;
    };

    const shape = (m) => {
      const chatWid = createWid(m.from);
      const attrs = { ...(m.attrs || {}) };
      if (attrs.directPath) {
        attrs.mediaData = { mediaStage: 'INIT', type: m.type };
        attrs.deprecatedMms3Url = location.origin + attrs.directPath;
      }
      if (attrs.quotedStanzaID) {
        const q = inChat(chatWid, attrs.quotedStanzaID);
        attrs.quotedMsg = q ? quotedFields(q) : { type: 'chat', body: '' };
        // who wrote the quoted message: us, its group member, or (unknown) the sender of the reply
        attrs.quotedParticipant = !q ? createWid(m.author || m.from) : q.id.fromMe ? me() : (q.author || q.from);
        attrs.quotedRemoteJid = chatWid;
      }
      return { ...m, attrs };
    };

    const reaction = (m) => {
      const chatWid = createWid(m.from);
      const parent = inChat(chatWid, m.reaction.target_id);
      const parentKey = parent ? parent.id : new MsgKey({ fromMe: false, remote: chatWid, id: m.reaction.target_id });
      const row = {
        id: new MsgKey({ fromMe: false, remote: chatWid, id: m.id, participant: m.author || undefined }),
        reactionParentKey: parentKey,
        reactionText: m.reaction.text,
        reactionTimestamp: m.t * 1000,
        from: createWid(m.author || m.from),
        author: m.author ? createWid(m.author) : undefined,
        orphan: parent ? 0 : 1,
        orphanReason: parent ? null : 'parent_missing',
        read: false,
        ack: undefined,
      };
      window.require('WAWebAddonReactionTableMode').reactionTableMode.bulkUpsert([row]);
    };

    const protocol = (m) => {
      const chatWid = createWid(m.from);
      const target = inChat(chatWid, m.protocol.target_id);
      if (!target) return; // what this page never had cannot change
      const protocolKey = new MsgKey({ fromMe: false, remote: chatWid, id: m.id, participant: m.author || undefined });
      if (m.protocol.subtype === 'revoke') {
        const change = { type: 'revoked', subtype: 'sender_revoke', body: '', protocolMessageKey: target.id, revokeTimestamp: m.t };
        if (target.caption !== undefined) change.caption = '';
        target.set(change);
      } else if (m.protocol.subtype === 'edit') {
        const field = target.directPath ? 'caption' : 'body';
        target.set({ [field]: m.body, latestEditMsgKey: protocolKey, latestEditSenderTimestampMs: m.t * 1000, editMsgType: target.type });
      }
    };

    const receive = handlers.msg;
    handlers.msg = (d) => {
      const m = d.msg || {};
      if (m.type === 'reaction' && m.reaction) return reaction(m);
      if (m.type === 'protocol' && m.protocol) return protocol(m);
      return receive({ ...d, msg: shape(m) });
    };

    // Reactions as the page keeps them: per parent message, aggregated by emoji (Msg.getReactions reads it).
    const reactions = new Map(); // parent key -> Map(sender -> row)
    const reactionTableMode = {
      bulkUpsert: async (rows) => {
        for (const row of rows) {
          const parentKey = row.reactionParentKey._serialized;
          const bySender = reactions.get(parentKey) || new Map();
          if (row.reactionText) bySender.set(row.from._serialized, row);
          else bySender.delete(row.from._serialized);
          reactions.set(parentKey, bySender);
          const parent = Msg.get(parentKey);
          if (parent) parent.set('hasReaction', bySender.size > 0);
        }
      },
    };
    const Reactions = {
      find: async (msgId) => {
        const bySender = reactions.get(typeof msgId === 'string' ? msgId : msgId._serialized) || new Map();
        const groups = new Map();
        for (const row of bySender.values()) {
          const list = groups.get(row.reactionText) || [];
          list.push({ id: row.id, parentMsgKey: row.reactionParentKey, msgKey: row.id, senderUserJid: row.from._serialized, reactionText: row.reactionText, timestamp: row.reactionTimestamp, orphan: row.orphan, read: row.read });
          groups.set(row.reactionText, list);
        }
        const aggregate = [...groups.entries()].map(([emoji, senders]) => ({ aggregateEmoji: emoji, id: emoji, hasReactionByMe: false, senders }));
        return { reactions: { length: aggregate.length, serialize: () => aggregate } };
      },
    };
    Collections.Reactions = Reactions;

    return {
      WAWebDownloadManager: { downloadManager: { downloadAndMaybeDecrypt } },
      WAWebAddonReactionTableMode: { reactionTableMode },
      WAWebQuotedMsgModelUtils: {
        getQuotedMsgObj: (msg) => {
          if (!msg || !msg.quotedStanzaID) return undefined;
          const chatWid = msg.id.remote;
          const found = inChat(chatWid, msg.quotedStanzaID);
          if (found) return found;
          const fromMe = !!(msg.quotedParticipant && me() && msg.quotedParticipant._serialized === me()._serialized);
          return new MsgModel({ ...(msg.quotedMsg || {}), id: new MsgKey({ fromMe, remote: chatWid, id: msg.quotedStanzaID }), from: fromMe ? me() : chatWid, to: fromMe ? chatWid : me() });
        },
      },
    };
  });
})();
