<?php

/*
 * wa-ray for Laravel (WaRay\Client\Laravel\WaRayServiceProvider). Publish with
 * `php artisan vendor:publish --tag=wa-ray-config`. The keys are flat on purpose: Laravel merges a package's
 * defaults one level deep, so a published file that sets one key keeps the defaults of the others.
 */

return [
    // the service and the workspace key the app calls it with (`wa-ray keys create --role workspace ...`)
    'url' => env('WA_RAY_URL', 'http://127.0.0.1:8000'),
    'key_id' => env('WA_RAY_KEY_ID'),
    'secret' => env('WA_RAY_SECRET'),
    'timeout' => (float) env('WA_RAY_TIMEOUT', 10),

    // the webhook: `whsec_` + base64 of 24-64 random bytes, the same as given to putWebhook / an endpoint
    'webhook_secret' => env('WA_RAY_WEBHOOK_SECRET'),
    // where the provider mounts the receiving route (POST); null mounts none
    'webhook_path' => env('WA_RAY_WEBHOOK_PATH', 'wa-ray/webhook'),
    // the route's middleware: not `web` (no session, no CSRF: the signature is the authentication)
    'webhook_middleware' => [],

    // rebroadcast session.qr / session.status on `workspace.{workspace_id}` as `qr-code-generated` /
    // `session-status-changed` (Laravel broadcasting, e.g. Reverb or Pusher, for Laravel Echo)
    'relay' => (bool) env('WA_RAY_RELAY', false),
    // a private channel (authorize `workspace.{id}` in routes/channels.php): a QR code links a phone to the
    // workspace's number, so only the workspace's own users may see it
    'relay_private' => true,
];
