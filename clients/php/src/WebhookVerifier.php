<?php

declare(strict_types=1);

namespace WaRay\Client;

/**
 * Verifies a wa-ray webhook delivery per Standard Webhooks (https://www.standardwebhooks.com):
 * `webhook-signature` holds space-separated "v1,<base64 HMAC-SHA256 of '{webhook-id}.{webhook-timestamp}.{raw body}'>"
 * entries, one of which must match.
 *
 * Invariants: the raw body bytes are what is verified (never a re-encoded JSON), comparison is constant-time
 * (hash_equals), a timestamp further than the tolerance from now either way is refused (replay window), and
 * nothing is decoded before the signature holds. A `whsec_<base64>` secret keys the HMAC by its decoded bytes;
 * any other secret by its own bytes (the first form wa-ray accepted). Dedupe on `webhook-id`: a retry or a
 * replay keeps it.
 *
 * A delivery is one event (a JSON object) or, from an endpoint with batching, a batch: a JSON array of events
 * signed as one body, whose `webhook-id` names the batch. verifyEvents() reads both as a list; dedupe a batch's
 * events on each event's own `id`. verify() is for one-event deliveries and refuses a batch.
 */
final class WebhookVerifier
{
    public const TOLERANCE_S = 300;
    private const PREFIX = 'whsec_';

    private readonly string $key;
    /** @var \Closure(): int */
    private readonly \Closure $clock;

    /** @param (\Closure(): int)|null $clock unix seconds now (tests pin it) */
    public function __construct(
        #[\SensitiveParameter] string $secret,
        private readonly int $toleranceS = self::TOLERANCE_S,
        ?\Closure $clock = null,
    ) {
        $this->key = self::keyOf($secret);
        $this->clock = $clock ?? static fn (): int => time();
    }

    /**
     * The decoded event {id, type, workspace_id, session_id, ts, data} of a delivery that verifies.
     *
     * @param array<string, string|list<string>> $headers any case; a value may be a list (Symfony/Laravel's
     *                                                   `$request->headers->all()`, PSR-7's getHeaders())
     * @return array<string, mixed>
     * @throws WebhookVerificationException
     */
    public function verify(string $rawBody, array $headers): array
    {
        $decoded = $this->verified($rawBody, $headers);
        if (self::isBatch($rawBody)) {
            throw new WebhookVerificationException('the delivery is a batch of events: read it with verifyEvents()');
        }
        if (!is_array($decoded)) {
            throw new WebhookVerificationException('webhook body is not a JSON object');
        }

        return $decoded;
    }

    /**
     * The events of a delivery that verifies, in the order sent: a one-event delivery as a list of one, a
     * batch as its events. Every element is an event array {id, type, workspace_id, session_id, ts, data}.
     *
     * @param array<string, string|list<string>> $headers as for verify()
     * @return list<array<string, mixed>>
     * @throws WebhookVerificationException
     */
    public function verifyEvents(string $rawBody, array $headers): array
    {
        $decoded = $this->verified($rawBody, $headers);
        if (!is_array($decoded)) {
            throw new WebhookVerificationException('webhook body is neither an event nor a batch of events');
        }
        if (!self::isBatch($rawBody)) {
            return [$decoded];
        }
        foreach ($decoded as $event) {
            if (!is_array($event) || ($event !== [] && array_is_list($event))) {
                throw new WebhookVerificationException('a batch element is not an event object');
            }
        }

        return $decoded;
    }

    /** A JSON array at the top (a batch) rather than an object; only called on a body that decoded. */
    private static function isBatch(string $rawBody): bool
    {
        return str_starts_with(ltrim($rawBody, " \t\r\n"), '[');
    }

    /** The decoded body once the headers and the signature hold. */
    private function verified(string $rawBody, array $headers): mixed
    {
        $id = self::header($headers, 'webhook-id');
        $timestamp = self::header($headers, 'webhook-timestamp');
        $signatures = self::header($headers, 'webhook-signature');
        if ($id === null || $timestamp === null || $signatures === null) {
            throw new WebhookVerificationException('missing webhook-id, webhook-timestamp or webhook-signature');
        }
        if (preg_match('/^[0-9]{1,12}$/', $timestamp) !== 1) {
            throw new WebhookVerificationException('webhook-timestamp is not a unix time in seconds');
        }
        if (abs(($this->clock)() - (int) $timestamp) > $this->toleranceS) {
            throw new WebhookVerificationException('webhook-timestamp is outside the tolerance');
        }
        $expected = self::sign($this->key, $id, $timestamp, $rawBody);
        $matched = false;
        foreach (explode(' ', $signatures) as $entry) {
            [$version, $signature] = array_pad(explode(',', $entry, 2), 2, '');
            if ($version === 'v1' && hash_equals($expected, $signature)) {
                $matched = true;
            }
        }
        if (!$matched) {
            throw new WebhookVerificationException('no matching webhook signature');
        }
        try {
            $event = json_decode($rawBody, true, 64, JSON_THROW_ON_ERROR);
        } catch (\JsonException $e) {
            throw new WebhookVerificationException('webhook body is not JSON', 0, $e);
        }
        return $event;
    }

    /** "v1,<base64 signature>" for a body: what a sender puts in `webhook-signature` (tests, relays). */
    public function signature(string $id, int $timestamp, string $rawBody): string
    {
        return 'v1,' . self::sign($this->key, $id, (string) $timestamp, $rawBody);
    }

    private static function sign(string $key, string $id, string $timestamp, string $rawBody): string
    {
        return base64_encode(hash_hmac('sha256', $id . '.' . $timestamp . '.' . $rawBody, $key, true));
    }

    private static function keyOf(#[\SensitiveParameter] string $secret): string
    {
        if (!str_starts_with($secret, self::PREFIX)) {
            if ($secret === '') {
                throw new \InvalidArgumentException('webhook secret must not be empty');
            }

            return $secret;
        }
        $key = base64_decode(substr($secret, strlen(self::PREFIX)), true);
        if ($key === false || $key === '') {
            throw new \InvalidArgumentException('a whsec_ secret must be base64 after its prefix');
        }

        return $key;
    }

    /** @param array<string, string|list<string>> $headers */
    private static function header(array $headers, string $name): ?string
    {
        foreach ($headers as $key => $value) {
            if (strcasecmp((string) $key, $name) === 0) {
                $value = is_array($value) ? ($value[0] ?? null) : $value;

                return is_string($value) && $value !== '' ? $value : null;
            }
        }

        return null;
    }
}
