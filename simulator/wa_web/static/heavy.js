/*
 * WhatsApp Web simulator: the heavy page (SimConfig.page_cost = "heavy", PUT /_sim/config).
 *
 * The light page costs less per message than WhatsApp Web: no Signal encryption, no IndexedDB writes,
 * almost no rendering. Benchmarks that report CPU per message run in both modes, so this file adds, per
 * message, what the real page does and the light one does not:
 *   - a send is encrypted once per recipient device (`heavy_devices`): a message key from HKDF,
 *     AES-CBC of the padded payload, HMAC-SHA256 over the ciphertext (the Signal message layout), all
 *     in WebCrypto; a received message is decrypted the same way, once;
 *   - a write to IndexedDB (`model-storage`, store `message`) per message sent or received, and a
 *     read-modify-write per ack;
 *   - a synchronous re-render of the chat list with a forced layout, where the light page coalesces
 *     renders into one per task.
 * Sends stay in order: each waits on the one before it, as the real page's send queue does.
 *
 * It adds no module to window.require: nothing here is a surface whatsapp-web.js or our bridge reads.
 * Registers with app.js through window.__waSimExtensions (loaded before it).
 */
(() => {
  'use strict';

  const enc = new TextEncoder();
  let cfg = { page_cost: 'light', heavy_devices: 3 };
  const heavy = () => cfg.page_cost === 'heavy';

  // --------------------------------------------------------------- crypto
  let keys = null; // {chain: HKDF base key, mac: HMAC key}
  const cryptoKeys = async () => {
    if (keys) return keys;
    const raw = crypto.getRandomValues(new Uint8Array(32));
    const chain = await crypto.subtle.importKey('raw', raw, 'HKDF', false, ['deriveBits']);
    const mac = await crypto.subtle.importKey('raw', crypto.getRandomValues(new Uint8Array(32)),
      { name: 'HMAC', hash: 'SHA-256' }, false, ['sign']);
    keys = { chain, mac };
    return keys;
  };

  // One Signal-style message per device: 80 bytes of key material (cipher key, mac key, iv) from HKDF,
  // AES-CBC of the payload, HMAC-SHA256 of the ciphertext.
  const sealPerDevice = async (bytes, devices) => {
    const { chain, mac } = await cryptoKeys();
    for (let i = 0; i < devices; i++) {
      const info = enc.encode(`WhisperMessageKeys:${i}:${Date.now()}`);
      const bits = new Uint8Array(await crypto.subtle.deriveBits(
        { name: 'HKDF', hash: 'SHA-256', salt: new Uint8Array(32), info }, chain, 640));
      const aes = await crypto.subtle.importKey('raw', bits.slice(0, 32), 'AES-CBC', false, ['encrypt']);
      const ct = await crypto.subtle.encrypt({ name: 'AES-CBC', iv: bits.slice(64, 80) }, aes, bytes);
      await crypto.subtle.sign('HMAC', mac, ct);
    }
  };

  // ------------------------------------------------------------ indexedDB
  let dbPromise = null;
  const db = () => {
    dbPromise = dbPromise || new Promise((resolve, reject) => {
      const req = indexedDB.open('model-storage', 1);
      req.onupgradeneeded = () => { req.result.createObjectStore('message', { keyPath: 'id' }); };
      req.onsuccess = () => resolve(req.result);
      req.onerror = () => reject(req.error);
    });
    return dbPromise;
  };
  const write = async (fn) => {
    const conn = await db();
    await new Promise((resolve, reject) => {
      const tx = conn.transaction('message', 'readwrite');
      fn(tx.objectStore('message'));
      tx.oncomplete = () => resolve();
      tx.onerror = () => reject(tx.error);
    });
  };
  const putMessage = (row) => write((store) => store.put(row));
  const putAck = (id, ack) => write((store) => {
    const req = store.get(id);
    req.onsuccess = () => { if (req.result) store.put({ ...req.result, ack }); };
  });

  // ---------------------------------------------------------------- hooks
  (window.__waSimExtensions = window.__waSimExtensions || []).push((internals) => {
    const { transport, handlers, renderNow } = internals;
    const renderSync = () => { renderNow(); void document.body.offsetHeight; };

    const readConfig = (original) => (d) => {
      cfg = { ...cfg, ...(d.config || {}) };
      return original(d);
    };
    handlers.welcome = readConfig(handlers.welcome);
    handlers.config = readConfig(handlers.config);

    // Sends: in order, each paying its encryption and its write before it reaches the wire. A payload
    // paid for once (then queued in the outbox while offline) is not paid for again when flushed.
    const plainSend = transport.sendMsg.bind(transport);
    const paid = new WeakSet();
    let sends = Promise.resolve();
    let pendingSends = 0;
    transport.sendMsg = (payload) => {
      if (pendingSends === 0 && (!heavy() || paid.has(payload))) { plainSend(payload); return; }
      pendingSends += 1;
      sends = sends.then(async () => {
        if (heavy() && !paid.has(payload)) {
          paid.add(payload);
          const bytes = enc.encode(JSON.stringify(payload).padEnd(128));
          await sealPerDevice(bytes, cfg.heavy_devices);
          await putMessage({ id: payload.key, to: payload.to, body: payload.body, type: payload.type, t: payload.t, ack: 0 });
          renderSync();
        }
      }).catch((err) => console.error('heavy send', err)).then(() => {
        pendingSends -= 1;
        plainSend(payload);
      });
    };

    // Received messages: decrypted (once), stored and rendered, in the order they came.
    const plainMsg = handlers.msg;
    let received = Promise.resolve();
    handlers.msg = (d) => {
      if (!heavy()) return plainMsg(d);
      received = received.then(async () => {
        await sealPerDevice(enc.encode(JSON.stringify(d.msg).padEnd(128)), 1);
        plainMsg(d);
        await putMessage({ id: `false_${d.msg.from}_${d.msg.id}`, from: d.msg.from, body: d.msg.body, t: d.msg.t, ack: 1 });
        renderSync();
      }).catch((err) => console.error('heavy receive', err));
      return received;
    };

    // Acks: applied at once (a send's result waits on them), then written and rendered.
    const plainAck = handlers.ack;
    handlers.ack = (d) => {
      const out = plainAck(d);
      if (heavy()) {
        putAck(d.key, d.ack).then(renderSync).catch((err) => console.error('heavy ack', err));
      }
      return out;
    };
    return {};
  });
})();
