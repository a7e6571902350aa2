/*
 * The peer for `bench density` and `bench qr`: the unmodified npm whatsapp-web.js
 * (1.34.7), N clients in this one node process, each with its own Chromium
 * (the library's architecture) and LocalAuth, against the wa-ray simulator.
 *
 * Usage: SIM=http://127.0.0.1:PORT AUTH_DIR=/tmp/x NODE_PATH=<dir>/node_modules \
 *        CHROMIUM=/usr/lib/chromium/chromium node wwebjs_fleet.js
 * Commands on stdin, one JSON object per line; replies on stdout, one JSON object per line:
 *   {"cmd":"grow","n":N,"concurrency":C,"phone_prefix":"1555500"} -> {"ev":"grown","n":N,"link_s":[...]}
 *       clients 0..N-1 exist, each linked by scanning its QR through the phone API, each 'ready'
 *   {"cmd":"qr","n":N,"burst":B}  -> {"ev":"qr_sample","i":i,"ms":...} per client, then {"ev":"qr_done"}
 *       time from client.initialize() to the 'qr' event; the client is destroyed right after;
 *       B > 1 starts B clients at once
 *   {"cmd":"launch","n":N}        -> {"ev":"launch_sample","ms":...}: a bare puppeteer.launch + close
 *   {"cmd":"quit"}                -> destroys every client, {"ev":"stopped"}, exit 0
 */
'use strict';

const SIM = process.env.SIM;
const AUTH_DIR = process.env.AUTH_DIR;
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const ARGS = (process.env.CHROMIUM_ARGS || '--no-sandbox,--disable-gpu,--no-first-run,--disable-quic,--disable-background-networking')
  .split(',').filter(Boolean);

// Must happen before whatsapp-web.js itself is loaded: Client.js copies it.
require('whatsapp-web.js/src/util/Constants').WhatsWebURL = SIM + '/';
const { Client, LocalAuth } = require('whatsapp-web.js');
const puppeteer = require('puppeteer');
const readline = require('readline');
const { performance } = require('perf_hooks');

const emit = (ev, data = {}) => process.stdout.write(JSON.stringify({ ev, ...data }) + '\n');
const within = (p, ms, what) => Promise.race([p, new Promise((_, rej) => setTimeout(() => rej(new Error('timeout: ' + what)), ms))]);
const post = async (path, body) => {
  const r = await fetch(SIM + path, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  return { status: r.status, body: await r.json() };
};
const makeClient = (clientId) => new Client({
  authStrategy: new LocalAuth({ clientId, dataPath: AUTH_DIR }),
  webVersionCache: { type: 'none' },
  puppeteer: { executablePath: CHROMIUM, args: ARGS },
});

const clients = [];

async function linkOne(i, prefix) {
  const t0 = performance.now();
  const client = makeClient(`c${i}`);
  clients.push(client);
  const number = prefix + String(i).padStart(4, '0');
  const scanned = new Set();
  client.on('qr', async (qr) => {
    if (scanned.has(qr)) return;
    scanned.add(qr);
    const r = await post(`/_phone/${number}/scan`, { qr });
    if (r.status !== 200) emit('warn', { i, scan: r });
  });
  const ready = new Promise((r) => client.once('ready', r));
  await client.initialize();
  await within(ready, 180000, `ready ${i}`);
  return Math.round(performance.now() - t0) / 1000;
}

async function grow(n, concurrency, prefix) {
  const todo = [];
  for (let i = clients.length; i < n; i++) todo.push(i);
  const linkS = [];
  const worker = async () => {
    while (todo.length) {
      const i = todo.shift();
      const s = await linkOne(i, prefix);
      linkS.push(s);
      emit('linked', { i, s });
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, concurrency) }, worker));
  emit('grown', { n: clients.length, link_s: linkS, browser_pids: clients.map((c) => c.pupBrowser && c.pupBrowser.process() ? c.pupBrowser.process().pid : null) });
}

async function qrOne(i) {
  const client = makeClient(`q${i}`);
  const t0 = performance.now();
  const got = new Promise((r) => client.once('qr', () => r(performance.now() - t0)));
  const init = client.initialize().catch((e) => ({ error: String(e) }));
  const ms = await within(got, 120000, `qr ${i}`);
  await init;
  try { await client.destroy(); } catch (_) { /* closing anyway */ }
  return ms;
}

async function qr(n, burst) {
  let i = 0;
  while (i < n) {
    const group = [];
    for (let k = 0; k < Math.max(1, burst) && i < n; k++, i++) group.push(i);
    const ms = await Promise.all(group.map((j) => qrOne(j)));
    group.forEach((j, k) => emit('qr_sample', { i: j, ms: Math.round(ms[k] * 10) / 10, burst }));
  }
  emit('qr_done');
}

async function launch(n) {
  for (let i = 0; i < n; i++) {
    const t0 = performance.now();
    const browser = await puppeteer.launch({ executablePath: CHROMIUM, args: ARGS });
    const page = (await browser.pages())[0];
    await page.goto('about:blank');
    const ms = performance.now() - t0;
    await browser.close();
    emit('launch_sample', { ms: Math.round(ms * 10) / 10 });
  }
}

async function quit() {
  await Promise.all(clients.map(async (c) => { try { await c.destroy(); } catch (_) { /* gone */ } }));
  emit('stopped');
  process.exit(0);
}

const rl = readline.createInterface({ input: process.stdin });
let chain = Promise.resolve();
rl.on('line', (line) => {
  chain = chain.then(async () => {
    const cmd = JSON.parse(line);
    try {
      if (cmd.cmd === 'grow') await grow(cmd.n, cmd.concurrency || 4, cmd.phone_prefix || '1555500');
      else if (cmd.cmd === 'qr') await qr(cmd.n, cmd.burst || 1);
      else if (cmd.cmd === 'launch') await launch(cmd.n || 1);
      else if (cmd.cmd === 'quit') await quit();
    } catch (err) {
      emit('error', { message: String(err && err.stack || err).slice(0, 1000), n: clients.length });
    }
  });
});
rl.on('close', () => { chain.then(quit); });
emit('started', { node: process.version });
