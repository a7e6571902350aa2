<?php

declare(strict_types=1);

/*
 * Verifies one recorded webhook delivery with WebhookVerifier, as a receiver would:
 *   php verify_webhook.php <delivery.json>     {"headers": {name: value}, "body_b64": "<raw body, base64>"}
 *   php verify_webhook.php <delivery.json> --events   verifyEvents(): {"events": [{id, type}, ...]} (a batch too)
 * Secret: WA_RAY_WEBHOOK_SECRET. Exit 0 and the event's id and type on stdout when it verifies;
 * exit 2 and the reason on stderr when it does not; 1 on anything else.
 */

require __DIR__ . '/../autoload.php';

use WaRay\Client\WebhookVerificationException;
use WaRay\Client\WebhookVerifier;

try {
    $delivery = json_decode((string) file_get_contents($argv[1] ?? ''), true, 16, JSON_THROW_ON_ERROR);
    $body = base64_decode($delivery['body_b64'], true);
    $secret = getenv('WA_RAY_WEBHOOK_SECRET');
    if ($body === false || !is_string($secret) || $secret === '') {
        throw new RuntimeException('need body_b64 and WA_RAY_WEBHOOK_SECRET');
    }
    $verifier = new WebhookVerifier($secret);
    if (($argv[2] ?? '') === '--events') {
        $events = array_map(static fn (array $e): array => ['id' => $e['id'] ?? null, 'type' => $e['type'] ?? null],
                            $verifier->verifyEvents($body, $delivery['headers']));
        echo json_encode(['events' => $events], JSON_THROW_ON_ERROR), "\n";
    } else {
        $event = $verifier->verify($body, $delivery['headers']);
        echo json_encode(['id' => $event['id'] ?? null, 'type' => $event['type'] ?? null], JSON_THROW_ON_ERROR), "\n";
    }
} catch (WebhookVerificationException $e) {
    fwrite(STDERR, 'refused: ' . $e->getMessage() . "\n");
    exit(2);
} catch (Throwable $e) {
    fwrite(STDERR, get_class($e) . ': ' . $e->getMessage() . "\n");
    exit(1);
}
