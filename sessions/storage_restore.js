// Restore one origin of a Playwright storage_state (indexed_db=True) into the current page.
// Playwright's own restore (new_context(storage_state=...)) opens and closes a page of its own per
// context to do this; that page's renderer start doubled the browser process's CPU per reopened
// session, and the browser process is what reopening many sessions at once waits on. This runs the
// same steps in the session's own page instead. Record encoding (`valueEncoded`, `keyEncoded`) is
// Playwright's evaluation serializer format, decoded as Playwright's parseEvaluationResultValue does.
async (origin) => {
  const typed = {
    i8: Int8Array, ui8: Uint8Array, ui8c: Uint8ClampedArray, i16: Int16Array, ui16: Uint16Array,
    i32: Int32Array, ui32: Uint32Array, f32: Float32Array, f64: Float64Array,
    bi64: BigInt64Array, bui64: BigUint64Array,
  };
  const bytes = (b64) => Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
  const special = { undefined: undefined, null: null, NaN: NaN, Infinity: Infinity, '-Infinity': -Infinity, '-0': -0 };
  const parse = (value, refs = new Map()) => {
    if (typeof value !== 'object' || value === null) return value;
    if ('ref' in value) return refs.get(value.ref);
    if ('v' in value) return special[value.v];
    if ('d' in value) return new Date(value.d);
    if ('u' in value) return new URL(value.u);
    if ('bi' in value) return BigInt(value.bi);
    if ('e' in value) { const e = new Error(value.e.m); e.name = value.e.n; e.stack = value.e.s; return e; }
    if ('r' in value) return new RegExp(value.r.p, value.r.f);
    if ('a' in value) { const out = []; refs.set(value.id, out); for (const a of value.a) out.push(parse(a, refs)); return out; }
    if ('o' in value) {
      const out = {}; refs.set(value.id, out);
      for (const { k, v } of value.o) if (k !== '__proto__') out[k] = parse(v, refs);
      return out;
    }
    if ('m' in value) { const out = new Map(); refs.set(value.id, out); for (const { k, v } of value.m) out.set(parse(k, refs), parse(v, refs)); return out; }
    if ('s' in value) { const out = new Set(); refs.set(value.id, out); for (const x of value.s) out.add(parse(x, refs)); return out; }
    if ('ta' in value) return new typed[value.ta.k](bytes(value.ta.b).buffer);
    if ('ab' in value) return bytes(value.ab.b).buffer;
    return value;
  };
  const done = (req) => new Promise((resolve, reject) => {
    req.onsuccess = () => resolve(req.result);
    req.onerror = () => reject(req.error);
  });
  const restoreDb = async (info) => {
    const open = indexedDB.open(info.name, info.version);
    open.onupgradeneeded = () => {
      for (const store of info.stores) {
        const os = open.result.createObjectStore(store.name, {
          autoIncrement: store.autoIncrement, keyPath: store.keyPathArray ?? store.keyPath,
        });
        for (const index of store.indexes || []) {
          os.createIndex(index.name, index.keyPathArray ?? index.keyPath, { unique: index.unique, multiEntry: index.multiEntry });
        }
      }
    };
    const db = await done(open);
    try {
      if (db.objectStoreNames.length === 0) return;
      const tx = db.transaction(db.objectStoreNames, 'readwrite');
      const committed = new Promise((resolve, reject) => { tx.oncomplete = resolve; tx.onerror = () => reject(tx.error); tx.onabort = () => reject(tx.error); });
      for (const store of info.stores) {
        const os = tx.objectStore(store.name);
        for (const r of store.records) {
          const value = 'value' in r ? r.value : parse(r.valueEncoded);
          if ('key' in r || 'keyEncoded' in r) os.add(value, 'key' in r ? r.key : parse(r.keyEncoded));
          else os.add(value);
        }
      }
      await committed;
    } finally {
      db.close();
    }
  };
  await Promise.all((origin.indexedDB || []).map(restoreDb));
  for (const { name, value } of origin.localStorage || []) localStorage.setItem(name, value);
}
