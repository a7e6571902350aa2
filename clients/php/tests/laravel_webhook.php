<?php

declare(strict_types=1);

/*
 * Posts recorded webhook deliveries through the Laravel integration's route in a minimal Laravel app
 * (Laravel/TestApplication.php, relay on, private channels), as a receiving app would get them:
 *   php laravel_webhook.php <delivery.json>...   each {"headers": {name: value}, "body_b64": "<raw body, base64>"}
 * Secret: WA_RAY_WEBHOOK_SECRET. Prints one JSON document: per delivery the HTTP status, the WebhookReceived
 * events (type, id, deliveryId) and the broadcasts (channels, event, payload). Exit 0 unless something broke.
 */

require __DIR__ . '/../autoload.php';
require __DIR__ . '/Laravel/TestApplication.php';

use WaRay\Client\Tests\Laravel\TestApplication;

try {
    $secret = getenv('WA_RAY_WEBHOOK_SECRET');
    if (!is_string($secret) || $secret === '') {
        throw new RuntimeException('WA_RAY_WEBHOOK_SECRET is not set');
    }
    $results = [];
    foreach (array_slice($argv, 1) as $file) {
        $delivery = json_decode((string) file_get_contents($file), true, 16, JSON_THROW_ON_ERROR);
        $laravel = new TestApplication(['webhook_secret' => $secret]);
        $response = $laravel->post((string) base64_decode($delivery['body_b64'], true), $delivery['headers']);
        $results[] = [
            'status' => $response->getStatusCode(),
            'received' => array_map(static fn ($e): array => ['type' => $e->type, 'id' => $e->event['id'] ?? null,
                                                             'delivery_id' => $e->deliveryId], $laravel->received),
            'broadcasts' => array_map(static fn (array $b): array => ['channels' => $b['channels'], 'event' => $b['event'],
                                                                      'payload' => $b['payload']], $laravel->broadcaster->log),
        ];
    }
    echo json_encode($results, JSON_THROW_ON_ERROR | JSON_UNESCAPED_SLASHES), "\n";
} catch (Throwable $e) {
    fwrite(STDERR, get_class($e) . ': ' . $e->getMessage() . "\n");
    exit(1);
}
