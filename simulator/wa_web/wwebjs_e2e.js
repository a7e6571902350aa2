/*
 * End-to-end check of the simulator with the unmodified whatsapp-web.js
 * library as the client: QR -> authenticated -> ready, send + acks, inbound
 * message, restore from LocalAuth without QR, phone-side unlink -> disconnected.
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

// Must happen before whatsapp-web.js itself is loaded: Client.js copies it.
require('whatsapp-web.js/src/util/Constants').WhatsWebURL = SIM + '/';
const { Client, LocalAuth } = require('whatsapp-web.js');

const emit = (ev, data = {}) => console.log(JSON.stringify({ ev, ...data }));
const post = async (path, body) => {
  const r = await fetch(SIM + path, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  return { status: r.status, body: await r.json() };
};
const within = (p, ms, what) => Promise.race([p, new Promise((_, rej) => setTimeout(() => rej(new Error('timeout: ' + what)), ms))]);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

const makeClient = () => new Client({
  authStrategy: new LocalAuth({ dataPath: AUTH_DIR }),
  webVersionCache: { type: 'none' },
  puppeteer: { executablePath: CHROMIUM, args: ['--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-quic', '--disable-background-networking'] },
});

(async () => {
  let client = makeClient();
  try {
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
    await within(got, 5000, 'message');
    await client.destroy();

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
