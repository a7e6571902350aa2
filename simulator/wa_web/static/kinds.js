/*
 * WhatsApp Web simulator: the non-media modules whatsapp-web.js 1.34.x reads to send kinds
 * (src/util/Injected/Utils.js sendMessage, Client.sendReaction): WAWebMsgReply (quoted messages),
 * WAWebSendReactionMsgAction, WAWebFrontendVcardUtils / WAWebVcardParsingUtils /
 * WAWebVcardGetNameFromParsed (contact cards), WAWebLinkPreviewChatAction (link previews, made up
 * from the link alone: the simulator fetches nothing).
 *
 * Registers with app.js through window.__waSimExtensions (loaded before it), and adds the wire
 * fields of a location, a contact card, a poll, a quote and a link preview to a sent message.
 */
(() => {
  'use strict';

  const serialized = (x) => (x == null ? undefined : typeof x === 'string' ? x : x._serialized);

  // ------------------------------------------------------------------ vCards
  const escapeV = (s) => String(s ?? '').replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/([,;])/g, '\\$1');

  const vcardFromContactModel = (contact) => {
    const name = contact.formattedName;
    const user = contact.id.user;
    const vcard = ['BEGIN:VCARD', 'VERSION:3.0', `N:;${escapeV(name)};;;`, `FN:${escapeV(name)}`,
      `TEL;type=CELL;type=VOICE;waid=${user}:+${user}`, 'END:VCARD'].join('\n');
    return { displayName: name, vcard };
  };

  // Unfolded lines -> {PROP: [{params, value}]}; enough to name a card.
  const parseVcard = (text) => {
    const lines = String(text).replace(/\r\n/g, '\n').replace(/\n[ \t]/g, '').split('\n');
    if (!/^BEGIN:VCARD$/i.test(lines[0] || '')) throw new Error('not a vcard');
    const props = {};
    for (const line of lines) {
      const i = line.indexOf(':');
      if (i <= 0) continue;
      const [prop, ...params] = line.slice(0, i).split(';');
      (props[prop.toUpperCase()] = props[prop.toUpperCase()] || []).push({ params, value: line.slice(i + 1) });
    }
    return props;
  };
  const unescapeV = (s) => String(s).replace(/\\n/gi, '\n').replace(/\\([,;\\])/g, '$1');
  const vcardGetNameFromParsed = (parsed) => {
    if (parsed.FN && parsed.FN[0].value) return unescapeV(parsed.FN[0].value);
    if (parsed.N && parsed.N[0].value) return unescapeV(parsed.N[0].value.split(';').filter(Boolean).reverse().join(' '));
    return undefined;
  };

  // --------------------------------------------------------------- reactions
  const reactionSender = ({ MsgKey, transport, pendingResults }) => async (msg, reactionText) => {
    const chatWid = msg.id.remote;
    const key = new MsgKey({ fromMe: true, remote: chatWid, id: await MsgKey.newId() });
    const result = new Promise((resolve) => {
      const list = pendingResults.get(key._serialized) || [];
      list.push(resolve);
      pendingResults.set(key._serialized, list);
    });
    transport.sendMsg({
      key: key._serialized, id: key.id, to: serialized(chatWid), body: '', type: 'reaction', t: Math.floor(Date.now() / 1000),
      reactionParentKey: msg.id._serialized, reactionParentId: msg.id.id, reactionParentFromMe: !!msg.id.fromMe,
      reactionText: String(reactionText ?? ''),
    });
    msg.set('hasReaction', reactionText !== '');
    return result;
  };

  // -------------------------------------------------------------- wire hook
  const wireKinds = (m) => {
    const out = {};
    if (m.quotedStanzaID) {
      out.quotedStanzaID = m.quotedStanzaID;
      out.quotedRemoteJid = serialized(m.quotedRemoteJid);
      out.quotedParticipant = serialized(m.quotedParticipant);
    }
    if (m.type === 'location') Object.assign(out, { lat: m.lat, lng: m.lng, loc: m.loc, clientUrl: m.clientUrl });
    if (m.type === 'vcard') out.vcardFormattedName = m.vcardFormattedName;
    if (m.type === 'multi_vcard') out.vcardList = (m.vcardList || []).map((v) => ({ displayName: v.displayName, vcard: v.vcard }));
    if (m.type === 'poll_creation') {
      Object.assign(out, { pollName: m.pollName, pollOptions: (m.pollOptions || []).map((o) => ({ name: o.name, localId: o.localId })),
        pollSelectableOptionsCount: m.pollSelectableOptionsCount });
    }
    if (m.preview && m.subtype === 'url') Object.assign(out, { preview: true, matchedText: m.matchedText, canonicalUrl: m.canonicalUrl, title: m.title });
    return out;
  };

  (window.__waSimExtensions = window.__waSimExtensions || []).push((internals) => {
    internals.wireHooks.push(wireKinds);
    return {
      WAWebMsgReply: { canReplyMsg: (m) => !!m && m.type !== 'revoked' && m.type !== 'ciphertext' },
      WAWebSendReactionMsgAction: { sendReactionToMsg: reactionSender(internals) },
      WAWebFrontendVcardUtils: { vcardFromContactModel },
      WAWebVcardParsingUtils: { parseVcard },
      WAWebVcardGetNameFromParsed: { vcardGetNameFromParsed },
      WAWebLinkPreviewChatAction: {
        getLinkPreview: async (link) => (link ? { data: { title: link.domain, description: '', canonicalUrl: link.href, matchedText: link.url, richPreviewType: 0 } } : null),
      },
    };
  });
})();
