/*
 * WhatsApp Web simulator: the media modules whatsapp-web.js 1.34.x reads to send media
 * (src/util/Injected/Utils.js processMediaData / processStickerData): WAWebMediaOpaqueData,
 * WAWebPrepRawMedia, WAWebMediaStorage, WAWebMmsMediaTypes, WAWebMediaDataUtils,
 * WAWebMediaInMemoryBlobCache, WAWebMediaMmsV4Upload, WAWebUploadManager, WAWebStartMediaUploadQpl.
 *
 * Registers with app.js through window.__waSimExtensions (loaded before it). The upload goes to the
 * simulator's mms endpoint (/_sim/mms/upload) as the blob itself: a disk-backed File is streamed by
 * the browser, never copied into a string. The sent message names the upload by its directPath,
 * which the phone side resolves to mimetype, size and sha256.
 */
(() => {
  'use strict';

  const b64 = (bytes) => {
    let s = '';
    for (let i = 0; i < bytes.length; i++) s += String.fromCharCode(bytes[i]);
    return btoa(s);
  };
  const sha256B64 = async (blob) => b64(new Uint8Array(await crypto.subtle.digest('SHA-256', await blob.arrayBuffer())));

  class OpaqueData {
    constructor(blob) { this._blob = blob; this._url = null; }
    static async createFromData(data, mimetype) {
      const blob = data instanceof Blob && (!mimetype || data.type === mimetype) ? data : new Blob([data], { type: mimetype });
      return new OpaqueData(blob);
    }
    get type() { return this._blob.type; }
    get size() { return this._blob.size; }
    url() { return this._url || (this._url = URL.createObjectURL(this._blob)); }
    autorelease() { const url = this._url; if (url) setTimeout(() => URL.revokeObjectURL(url), 0); this._url = null; }
    formData() { const fd = new FormData(); fd.append('file', this._blob); return fd; }
  }

  // What prep makes of the raw media: the message's media fields (own properties, spread by the
  // sender) plus toJSON()/set() as on the real model.
  class MediaData {
    constructor(attrs) { Object.assign(this, attrs); }
    toJSON() { const out = { ...this }; return out; }
    set(attrs) { Object.assign(this, attrs); return this; }
  }

  const typeOf = (mimetype, { asSticker, asGif, isPtt, asDocument }) => {
    const major = String(mimetype || '').split('/')[0];
    if (asDocument) return 'document';
    if (asSticker || mimetype === 'image/webp') return 'sticker';
    if (major === 'image') return 'image';
    if (major === 'video') return 'video';
    if (major === 'audio') return isPtt ? 'ptt' : 'audio';
    return 'document';
  };

  const prepRawMedia = (opaque, params = {}) => ({
    waitForPrep: async () => {
      const blob = opaque._blob;
      return new MediaData({
        type: typeOf(blob.type, params),
        mimetype: blob.type,
        filehash: await sha256B64(blob),
        size: blob.size,
        filename: blob.name || undefined,
        isGif: !!params.asGif,
        mediaBlob: opaque,
      });
    },
  });

  // One media object per file hash, as the real media storage keeps them.
  const mediaObjects = new Map();
  class MediaObject {
    constructor(filehash) { this.filehash = filehash; this.contentInfo = {}; this.type = undefined; this.size = 0; this.mediaBlob = undefined; }
    consolidate(json) {
      for (const k of ['type', 'size', 'mimetype', 'mediaBlob', 'filename']) if (json[k] !== undefined) this[k] = json[k];
    }
  }
  const getOrCreateMediaObject = (filehash) => {
    let obj = mediaObjects.get(filehash);
    if (!obj) { obj = new MediaObject(filehash); mediaObjects.set(filehash, obj); }
    return obj;
  };

  const MEDIA_TYPES = { image: 'image', video: 'video', audio: 'audio', ptt: 'ptt', document: 'document', sticker: 'sticker' };
  const msgToMediaType = ({ type, isGif }) => (isGif ? 'gif' : MEDIA_TYPES[type] || 'document');

  // The mms server: the blob as the request body, the answer names where it lives.
  const upload = async (blob, mediaType) => {
    const res = await fetch(`/_sim/mms/upload?type=${encodeURIComponent(mediaType)}`, {
      method: 'POST', body: blob, headers: { 'content-type': blob.type || 'application/octet-stream' },
    });
    if (!res.ok) throw new Error(`media upload failed: ${res.status}`);
    return res.json();
  };

  const uploadMedia = async ({ mimetype, mediaObject, mediaType }) => {
    const blob = mediaObject.mediaBlob instanceof OpaqueData ? mediaObject.mediaBlob._blob : mediaObject.mediaBlob;
    if (!blob) return { mediaEntry: null };
    const up = await upload(blob.type ? blob : new Blob([blob], { type: mimetype }), mediaType);
    mediaObject.mediaBlob = undefined; // uploaded: the page keeps no second copy of the bytes
    return {
      mediaEntry: {
        mmsUrl: up.url, deprecatedMms3Url: up.url, directPath: up.direct_path, mediaKey: up.media_key,
        mediaKeyTimestamp: Math.floor(Date.now() / 1000), encFilehash: up.enc_filehash, uploadHash: up.enc_filehash,
        sidecar: undefined, firstFrameSidecar: undefined, handle: null,
      },
    };
  };

  const encryptAndUpload = async ({ blob, type, mediaKey }) => {
    const up = await upload(blob, type);
    return { url: up.url, directPath: up.direct_path, encFilehash: up.enc_filehash, mediaKey: up.media_key || mediaKey,
      mediaKeyTimestamp: Math.floor(Date.now() / 1000) };
  };

  // Kind fields of a media message on the wire to the server.
  const wireMedia = (m) => {
    if (!m.directPath) return {};
    return { directPath: m.directPath, caption: m.caption, filename: m.filename, mimetype: m.mimetype,
      filehash: m.filehash, size: m.size, isGif: !!m.isGif };
  };

  (window.__waSimExtensions = window.__waSimExtensions || []).push(({ wireHooks }) => {
    wireHooks.push(wireMedia);
    return {
      WAWebMediaOpaqueData: OpaqueData,
      WAWebPrepRawMedia: { prepRawMedia },
      WAWebMediaStorage: { getOrCreateMediaObject },
      WAWebMmsMediaTypes: { msgToMediaType, castToV4: (t) => t },
      WAWebMediaDataUtils: { shouldUseMediaCache: () => false },
      WAWebMediaInMemoryBlobCache: { InMemoryMediaBlobCache: { put: () => undefined } },
      WAWebMediaMmsV4Upload: { uploadMedia, uploadUnencryptedMedia: uploadMedia },
      WAWebUploadManager: { encryptAndUpload },
      WAWebStartMediaUploadQpl: { startMediaUploadQpl: () => ({}) },
    };
  });
})();
