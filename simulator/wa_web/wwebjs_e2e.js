/*
 * End-to-end check of the simulator with the unmodified whatsapp-web.js
 * library as the client: QR -> authenticated -> ready, send + acks, inbound
 * message, every kind received (in_*) and sent (out_*), the conversation calls
 * against a seeded history (conv_*), a second client linked with a pairing code
 * (code_*), restore from LocalAuth without QR, phone-side unlink -> disconnected.
 *
 * Usage: SIM=http://127.0.0.1:PORT AUTH_DIR=/tmp/x NODE_PATH=<dir>/node_modules node wwebjs_e2e.js
 * Prints one JSON object per line ({"ev": ...}); exits 0 on success.
 */
'use strict';

const SIM = process.env.SIM;
const AUTH_DIR = process.env.AUTH_DIR;
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const ME = process.env.ME || '15550900';
const PEER = process.env.PEER || '15550901';
const ME2 = process.env.ME2 || '15550902'; // linked by pairing code
const UNREGISTERED = '4915199999999';
// The history ME's phone holds before the library links (conversations.py / history.py).
const HISTORY = { chats: 30, messages_per_chat: 80, groups: 3, contacts: 10, lid_contacts: 2, lid_unknown: 1, seed: 14 };

// Must happen before whatsapp-web.js itself is loaded: Client.js copies it.
require('whatsapp-web.js/src/util/Constants').WhatsWebURL = SIM + '/';
const { Client, LocalAuth, Location, MessageMedia } = require('whatsapp-web.js');

const emit = (ev, data = {}) => console.log(JSON.stringify({ ev, ...data }));
const post = async (path, body) => {
  const r = await fetch(SIM + path, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  return { status: r.status, body: await r.json() };
};
const within = (p, ms, what) => Promise.race([p, new Promise((_, rej) => setTimeout(() => rej(new Error('timeout: ' + what)), ms))]);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// A 1x1 PNG and a small PDF-ish document: the bytes must come back identical through downloadMedia().
const PNG_B64 = 'iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==';
const DOC_B64 = Buffer.from('%PDF-1.4\n% wa-ray invoice 42\n' + 'x'.repeat(3000) + '\n%%EOF\n').toString('base64');
const VCARD = 'BEGIN:VCARD\nVERSION:3.0\nFN:Ada Lovelace\nTEL;type=CELL;waid=15550777:+1 555 50777\nEND:VCARD';

// The next event `name` of `client` that satisfies `pred`, within `ms`.
const next = (client, name, pred, ms, what) => within(new Promise((resolve) => {
  const f = (...args) => { if (pred(...args)) { client.off(name, f); resolve(args); } };
  client.on(name, f);
}), ms, what);

// Every kind the phone sends arrives as the library's own events, with its content (issue 13 proof, inbound).
const receiveKinds = async (client, sent) => {
  const phone = (path, body) => post(`/_phone/${PEER}/${path}`, { to: ME, ...body });
  const fromPeer = (type) => (m) => m.from === `${PEER}@c.us` && m.type === type;

  let wait = next(client, 'message', fromPeer('image'), 5000, 'image');
  const image = await phone('kinds', { kind: 'image', data_b64: PNG_B64, mimetype: 'image/png', caption: 'a picture' });
  let [m] = await wait;
  let media = await m.downloadMedia();
  emit('in_image', { id: image.body.id, hasMedia: m.hasMedia, body: m.body, mimetype: media.mimetype, same: media.data === PNG_B64 });

  wait = next(client, 'message', fromPeer('document'), 5000, 'document');
  await phone('kinds', { kind: 'document', data_b64: DOC_B64, mimetype: 'application/pdf', filename: 'invoice-42.pdf', caption: 'your invoice' });
  [m] = await wait;
  media = await m.downloadMedia();
  emit('in_document', { body: m.body, filename: media.filename, mimetype: media.mimetype, size: media.filesize, same: media.data === DOC_B64 });

  wait = next(client, 'message', fromPeer('location'), 5000, 'location');
  await phone('kinds', { kind: 'location', latitude: 52.52, longitude: 13.405, name: 'Brandenburger Tor', address: 'Pariser Platz, Berlin' });
  [m] = await wait;
  emit('in_location', { lat: m.location.latitude, lng: m.location.longitude, description: m.location.description || m.location.name });

  wait = next(client, 'message', fromPeer('vcard'), 5000, 'vcard');
  await phone('kinds', { kind: 'contacts', vcards: [VCARD] });
  [m] = await wait;
  emit('in_vcard', { vCards: m.vCards });

  wait = next(client, 'message', (x) => x.from === `${PEER}@c.us` && x.hasQuotedMsg, 5000, 'reply');
  await phone('kinds', { kind: 'location', latitude: 1.5, longitude: 2.5, quoted_id: sent.id.id });
  [m] = await wait;
  const quoted = await m.getQuotedMessage();
  emit('in_reply', { quotedId: quoted.id._serialized, quotedBody: quoted.body, fromMe: quoted.fromMe });

  wait = next(client, 'message_reaction', (r) => r.senderId === `${PEER}@c.us`, 5000, 'reaction');
  await phone('reactions', { target_id: sent.id.id, emoji: '👍' });
  const [r] = await wait;
  const reactions = await (await client.getMessageById(sent.id._serialized)).getReactions();
  emit('in_reaction', { reaction: r.reaction, msgId: r.msgId._serialized, reactions: (reactions || []).map((x) => x.aggregateEmoji) });
  wait = next(client, 'message_reaction', (x) => x.senderId === `${PEER}@c.us`, 5000, 'reaction removed');
  await phone('reactions', { target_id: sent.id.id, emoji: '' });
  const [removed] = await wait;
  emit('in_reaction_removed', { reaction: removed.reaction, msgId: removed.msgId._serialized });

  wait = next(client, 'message_revoke_everyone', () => true, 5000, 'revoke');
  await phone('revoke', { target_id: image.body.id });
  const [revoked, before] = await wait;
  emit('in_revoke', { type: revoked.type, id: revoked.id._serialized, beforeType: before ? before.type : null });

  wait = next(client, 'message', fromPeer('chat'), 5000, 'draft');
  const draft = await phone('messages', { body: 'see you at 5' });
  await wait;
  wait = next(client, 'message_edit', () => true, 5000, 'edit');
  await phone('edit', { target_id: draft.body.id, body: 'see you at 6' });
  const [edited, newBody, prevBody] = await wait;
  emit('in_edit', { id: edited.id._serialized, newBody, prevBody, body: edited.body });
};

// The library sends each kind through its own send path (processMediaData, Location, vCards, quotedMessageId,
// Message.react); the phone's inbox says what arrived (issue 13 proof, outbound).
const sendKinds = async (client, inbound) => {
  const peer = `${PEER}@c.us`;
  const landed = async (match, what) => {
    const pred = typeof match === 'function' ? match : (m) => m.id === match;
    for (let i = 0; i < 100; i++) {
      const r = await fetch(`${SIM}/_phone/${PEER}/inbox`);
      const entry = (await r.json()).messages.find(pred);
      if (entry) return entry;
      await sleep(50);
    }
    throw new Error('not in the phone inbox: ' + what);
  };
  const image = await client.sendMessage(peer, new MessageMedia('image/png', PNG_B64, 'dot.png'), { caption: 'from the library' });
  emit('out_image', await landed(image.id.id, 'image'));
  const doc = await client.sendMessage(peer, new MessageMedia('application/pdf', DOC_B64, 'invoice-42.pdf'), { sendMediaAsDocument: true, caption: 'invoice' });
  emit('out_document', await landed(doc.id.id, 'document'));
  const loc = await client.sendMessage(peer, new Location(52.52, 13.405, { name: 'Brandenburger Tor', address: 'Pariser Platz' }));
  emit('out_location', await landed(loc.id.id, 'location'));
  const card = await client.sendMessage(peer, VCARD);
  emit('out_vcard', await landed(card.id.id, 'vcard'));
  const reply = await client.sendMessage(peer, 'a reply', { quotedMessageId: inbound.id._serialized });
  emit('out_reply', await landed(reply.id.id, 'reply'));
  await inbound.react('🎉');
  emit('out_reaction', await landed((m) => m.type === 'reaction' && m.reaction && m.reaction.target_id === inbound.id.id, 'reaction'));
};

const makeClient = (extra = {}) => new Client({
  authStrategy: new LocalAuth({ dataPath: AUTH_DIR + (extra.pairWithPhoneNumber ? '-code' : '') }),
  webVersionCache: { type: 'none' },
  puppeteer: { executablePath: CHROMIUM, args: ['--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-quic', '--disable-background-networking'] },
  ...extra,
});

const getJson = async (path) => (await fetch(SIM + path)).json();
const poll = async (fn, what) => {
  for (let i = 0; i < 100; i++) {
    const v = await fn();
    if (v) return v;
    await sleep(50);
  }
  throw new Error('never happened: ' + what);
};

// The library's conversation calls against the seeded history (issue 14 proof).
const conversations = async (client, seeded) => {
  const chats = await client.getChats();
  const group = chats.find((c) => c.isGroup && c.participants && c.participants.length);
  const withLast = chats.filter((c) => c.lastMessage).length;
  emit('conv_chats', { count: chats.length, seededFound: seeded.chats.filter((id) => chats.some((c) => c.id._serialized === id)).length,
    withLast, group: group && { id: group.id._serialized, name: group.name, participants: group.participants.map((p) => p.id._serialized),
      lastMessage: group.lastMessage ? group.lastMessage.id._serialized : null } });

  const contacts = await client.getContacts();
  emit('conv_contacts', { count: contacts.length, myContacts: contacts.filter((c) => c.isMyContact).length,
    lids: contacts.filter((c) => c.id.server === 'lid').map((c) => c.id._serialized) });
  const saved = contacts.find((c) => c.isMyContact && c.name);
  const byId = await client.getContactById(saved.id._serialized);
  emit('conv_contact', { id: byId.id._serialized, name: byId.name, number: byId.number, same: byId.name === saved.name });

  const long = await client.getChatById(seeded.chats[1]);
  const fetched = await long.fetchMessages({ limit: 60 });
  const ts = fetched.map((m) => m.timestamp);
  emit('conv_fetch', { count: fetched.length, unique: new Set(fetched.map((m) => m.id._serialized)).size,
    ordered: ts.every((t, i) => i === 0 || ts[i - 1] <= t), fromMe: fetched.filter((m) => m.fromMe).length });

  emit('conv_registered', { peer: await client.isRegisteredUser(`${PEER}@c.us`), unknown: await client.isRegisteredUser(`${UNREGISTERED}@c.us`),
    numberId: (await client.getNumberId(PEER))?._serialized || null });

  const wait = next(client, 'message', (m) => m.from === `${PEER}@c.us` && m.body === 'read me', 5000, 'read me');
  const unread = await post(`/_phone/${PEER}/messages`, { to: ME, body: 'read me' });
  await wait;
  const peerChat = await client.getChatById(`${PEER}@c.us`);
  const seen = await peerChat.sendSeen();
  const read = await poll(async () => (await getJson(`/_phone/${PEER}/reads`)).reads.find((r) => r.ids.includes(unread.body.id)), 'read receipt');
  emit('conv_seen', { seen, chat: read.chat, by: read.by, unreadAfter: (await client.getChatById(`${PEER}@c.us`)).unreadCount });

  await peerChat.sendStateTyping();
  await peerChat.clearState();
  const states = await poll(async () => {
    const s = (await getJson(`/_phone/${PEER}/chatstates`)).states;
    return s.length >= 2 && s;
  }, 'chat states');
  emit('conv_states', { states: states.map((x) => x.state), chat: states[0].chat });

  emit('conv_pic', { url: await client.getProfilePicUrl(`${PEER}@c.us`), none: (await client.getProfilePicUrl(`${UNREGISTERED}@c.us`)) || null });

  const lidIds = await client.pupPage.evaluate(() => window.require('WAWebCollections').Contact.getModelsArray()
    .filter((c) => c.id.isLid()).map((c) => ({ lid: c.id._serialized, known: !!c.phoneNumber })));
  const known = lidIds.find((x) => x.known).lid;
  const unknown = lidIds.find((x) => !x.known).lid;
  emit('conv_lid', { known, unknown, pairs: await client.getContactLidAndPhone([known, unknown, `${PEER}@c.us`]) });
};

// A second client, never linked, asks for a pairing code; the phone enters it; the library gets ready.
const pairingCode = async () => {
  const client = makeClient({ pairWithPhoneNumber: { phoneNumber: ME2, showNotification: true } });
  try {
    let entered = false;
    client.on('qr', () => emit('code_unexpected_qr'));
    client.on('code', async (code) => {
      emit('code', { length: code.length });
      if (entered) return;
      entered = true;
      emit('code_entered', await post(`/_phone/${ME2}/pairing-code`, { code }));
    });
    const ready = new Promise((r) => client.once('ready', r));
    await client.initialize();
    await within(ready, 20000, 'ready after pairing code');
    emit('code_ready', { wid: client.info.wid._serialized });
  } finally {
    await client.destroy();
  }
};

(async () => {
  let client = makeClient();
  try {
    const seeded = await post(`/_phone/${ME}/history`, HISTORY);
    if (seeded.status !== 200) throw new Error('seeding failed: ' + JSON.stringify(seeded.body));
    let scanned = false;
    client.on('qr', async (qr) => {
      emit('qr', { parts: qr.split(',').length });
      if (scanned) return;
      scanned = true;
      emit('scan', await post(`/_phone/${ME}/scan`, { qr }));
    });
    client.on('authenticated', () => emit('authenticated'));
    client.on('message_ack', (m, ack) => emit('ack', { id: m.id._serialized, ack }));
    client.on('message', (m) => emit('message', { from: m.from, body: m.body, id: m.id._serialized, type: m.type }));
    const ready = new Promise((r) => client.once('ready', r));
    await client.initialize();
    await within(ready, 20000, 'ready');
    emit('ready', { wid: client.info.wid._serialized });

    const acked = new Promise((r) => client.on('message_ack', (_m, ack) => { if (ack === 3) r(); }));
    const sent = await client.sendMessage(`${PEER}@c.us`, 'hello from whatsapp-web.js');
    emit('sent', { id: sent.id._serialized });
    await within(acked, 5000, 'ack 3');

    const got = new Promise((r) => client.once('message', r));
    emit('inbound', await post(`/_phone/${PEER}/messages`, { to: ME, body: 'hello back' }));
    const hello = await within(got, 5000, 'message');
    await receiveKinds(client, sent);
    await sendKinds(client, hello);
    await conversations(client, seeded.body);
    await client.destroy();
    await pairingCode();

    client = makeClient();
    client.on('qr', () => emit('unexpected_qr'));
    const ready2 = new Promise((r) => client.once('ready', r));
    await client.initialize();
    await within(ready2, 20000, 'ready after restore');
    emit('ready_restored');

    const gone = new Promise((r) => client.once('disconnected', r));
    emit('unlink', await post(`/_phone/${ME}/unlink`, {}));
    emit('disconnected', { reason: await within(gone, 5000, 'disconnected') });
    await sleep(200);
    try { await client.destroy(); } catch (_) { /* already closed on disconnect */ }
    process.exit(0);
  } catch (err) {
    emit('error', { message: String(err && err.stack || err) });
    try { await client.destroy(); } catch (_) { /* best effort */ }
    process.exit(1);
  }
})();
