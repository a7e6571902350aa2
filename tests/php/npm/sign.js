// Signs a delivery with npm's `standardwebhooks` (the reference JavaScript implementation), for the PHP
// verifier to check: node sign.js <secret> <msg-id> <unix-seconds> < body  ->  {"webhook-signature": ..., "npm_verifies": true}
// It also verifies its own signature through the package's verify(), so a header it could not read back fails here.
"use strict";
const { Webhook } = require("standardwebhooks");

const [secret, msgId, ts] = process.argv.slice(2);
const chunks = [];
process.stdin.on("data", (c) => chunks.push(c));
process.stdin.on("end", () => {
  const body = Buffer.concat(chunks);
  const wh = new Webhook(secret);
  const signature = wh.sign(msgId, new Date(Number(ts) * 1000), body);
  const headers = { "webhook-id": msgId, "webhook-timestamp": ts, "webhook-signature": signature };
  wh.verify(body, headers);  // throws on a mismatch
  process.stdout.write(JSON.stringify({ "webhook-signature": signature, npm_verifies: true }) + "\n");
});
