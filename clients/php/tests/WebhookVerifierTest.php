<?php

declare(strict_types=1);

namespace WaRay\Client\Tests;

use PHPUnit\Framework\TestCase;
use WaRay\Client\WebhookVerificationException;
use WaRay\Client\WebhookVerifier;

/**
 * A delivery signed by the Python `standardwebhooks` package (the reference verifier's own signer) at a fixed
 * time, verified with the clock pinned there; then every part of it altered in turn.
 */
final class WebhookVerifierTest extends TestCase
{
    private const SECRET = 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw';
    private const ID = '1796583513000-0';
    private const TS = 1796583513;
    private const BODY = '{"id":"1796583513000-0","type":"message.received","workspace_id":"acme","session_id":"s1","ts":1796583513.0,"data":{"text":"héllo"}}';
    private const SIGNATURE = 'v1,Ab0jCWuaRPcmPvYVjYxTiF9iPAALzz3FRXvKZJq5CUQ=';

    private static function verifier(string $secret = self::SECRET, int $now = self::TS): WebhookVerifier
    {
        return new WebhookVerifier($secret, clock: static fn (): int => $now);
    }

    /** @return array<string, string> */
    private static function headers(string $id = self::ID, int|string $ts = self::TS, string $sig = self::SIGNATURE): array
    {
        return ['webhook-id' => $id, 'webhook-timestamp' => (string) $ts, 'webhook-signature' => $sig];
    }

    public function testAValidDeliveryReturnsTheEvent(): void
    {
        $event = self::verifier()->verify(self::BODY, self::headers());
        self::assertSame(self::ID, $event['id']);
        self::assertSame('message.received', $event['type']);
        self::assertSame('héllo', $event['data']['text']);
    }

    public function testHeaderCaseAndListValuesAsLaravelGivesThem(): void
    {
        $headers = [];
        foreach (self::headers() as $name => $value) {
            $headers[ucwords($name, '-')] = [$value];
        }
        self::assertSame(self::ID, self::verifier()->verify(self::BODY, $headers)['id']);
    }

    public function testOneMatchAmongSeveralSignaturesIsEnough(): void
    {
        $sig = 'v1,bm90LXRoaXMtb25l v2,' . substr(self::SIGNATURE, 3) . ' ' . self::SIGNATURE;
        self::assertSame(self::ID, self::verifier()->verify(self::BODY, self::headers(sig: $sig))['id']);
    }

    public function testWithinTheToleranceEitherWay(): void
    {
        self::assertSame(self::ID, self::verifier(now: self::TS + 300)->verify(self::BODY, self::headers())['id']);
        self::assertSame(self::ID, self::verifier(now: self::TS - 300)->verify(self::BODY, self::headers())['id']);
    }

    public function testATamperedBodyIsRefused(): void
    {
        $this->refused(self::verifier(), str_replace('héllo', 'hello', self::BODY), self::headers());
    }

    public function testATamperedIdIsRefused(): void
    {
        $this->refused(self::verifier(), self::BODY, self::headers(id: '1796583513000-1'));
    }

    public function testATamperedTimestampIsRefused(): void
    {
        $this->refused(self::verifier(), self::BODY, self::headers(ts: self::TS + 1));
    }

    public function testAWrongSecretIsRefused(): void
    {
        $this->refused(self::verifier('whsec_' . base64_encode(random_bytes(24))), self::BODY, self::headers());
        // the same bytes used raw (without decoding the whsec_ form) are a different key
        $this->refused(self::verifier(substr(self::SECRET, 6)), self::BODY, self::headers());
    }

    public function testStaleAndFutureTimestampsAreRefused(): void
    {
        $this->refused(self::verifier(now: self::TS + 301), self::BODY, self::headers());
        $this->refused(self::verifier(now: self::TS - 301), self::BODY, self::headers());
    }

    public function testMissingOrMalformedHeadersAreRefused(): void
    {
        $this->refused(self::verifier(), self::BODY, []);
        $this->refused(self::verifier(), self::BODY, self::headers(sig: ''));
        $this->refused(self::verifier(), self::BODY, self::headers(sig: substr(self::SIGNATURE, 3)));
        $this->refused(self::verifier(), self::BODY, self::headers(sig: 'v2,' . substr(self::SIGNATURE, 3)));
        $this->refused(self::verifier(), self::BODY, self::headers(ts: '1796583513.5'));
    }

    public function testARawSecretKeysByItsOwnBytes(): void
    {
        $secret = 'an-older-secret-0123456789';
        $sig = 'v1,' . base64_encode(hash_hmac('sha256', self::ID . '.' . self::TS . '.' . self::BODY, $secret, true));
        self::assertSame(self::ID, self::verifier($secret)->verify(self::BODY, self::headers(sig: $sig))['id']);
        // and the whsec_ form of it, as the README tells a receiver to pass it, is the same key
        $whsec = 'whsec_' . base64_encode($secret);
        self::assertSame(self::ID, self::verifier($whsec)->verify(self::BODY, self::headers(sig: $sig))['id']);
    }

    public function testSignatureHelperMatchesTheReferenceSigner(): void
    {
        self::assertSame(self::SIGNATURE, self::verifier()->signature(self::ID, self::TS, self::BODY));
    }

    public function testAMalformedWhsecSecretIsRejectedUpFront(): void
    {
        $this->expectException(\InvalidArgumentException::class);
        new WebhookVerifier('whsec_!!!not-base64!!!');
    }

    // a batched delivery: a JSON array of events signed as one body under the batch's own webhook-id
    private const BATCH_ID = 'bat_01J9Z';
    private const BATCH = '[{"id":"1796583513000-0","type":"message.received","workspace_id":"acme","session_id":"s1","ts":1796583513.0,"data":{"text":"one"}},{"id":"1796583513001-0","type":"session.status","workspace_id":"acme","session_id":"s1","ts":1796583513.1,"data":{"state":"connected","previous":"authenticating","reason":"page synced"}}]';
    private const BATCH_SIGNATURE = 'v1,RnQwwMecR5XUK8tXmqIabNU+YCzAAyMSM/yseEraPLk=';  // Python standardwebhooks

    public function testVerifyEventsReadsABatchInOrder(): void
    {
        $events = self::verifier()->verifyEvents(self::BATCH, self::headers(self::BATCH_ID, sig: self::BATCH_SIGNATURE));
        self::assertSame(['1796583513000-0', '1796583513001-0'], array_column($events, 'id'));
        self::assertSame(['message.received', 'session.status'], array_column($events, 'type'));
        self::assertSame('connected', $events[1]['data']['state']);
    }

    public function testVerifyEventsReadsOneEventAsAListOfOne(): void
    {
        $events = self::verifier()->verifyEvents(self::BODY, self::headers());
        self::assertCount(1, $events);
        self::assertSame(self::ID, $events[0]['id']);
    }

    public function testABatchIsCheckedLikeOneEvent(): void
    {
        $headers = self::headers(self::BATCH_ID, sig: self::BATCH_SIGNATURE);
        $this->refusedEvents(self::verifier(), str_replace('"one"', '"One"', self::BATCH), $headers);
        $this->refusedEvents(self::verifier(), self::BATCH, self::headers('1796583513000-0', sig: self::BATCH_SIGNATURE));
        $this->refusedEvents(self::verifier(now: self::TS + 301), self::BATCH, $headers);
        // a batch is never read as one event by verify(), even when it verifies
        $this->refused(self::verifier(), self::BATCH, $headers);
    }

    public function testABatchOfNonEventsIsRefused(): void
    {
        $verifier = self::verifier();
        foreach (['[1,2]', '[["a"]]', '"text"', '42'] as $body) {
            $headers = self::headers(sig: $verifier->signature(self::ID, self::TS, $body));
            $this->refusedEvents($verifier, $body, $headers);
        }
    }

    /** @param array<string, string> $headers */
    private function refusedEvents(WebhookVerifier $verifier, string $body, array $headers): void
    {
        try {
            $verifier->verifyEvents($body, $headers);
        } catch (WebhookVerificationException) {
            $this->addToAssertionCount(1);

            return;
        }
        self::fail('the delivery was accepted');
    }

    /** @param array<string, string> $headers */
    private function refused(WebhookVerifier $verifier, string $body, array $headers): void
    {
        try {
            $verifier->verify($body, $headers);
        } catch (WebhookVerificationException) {
            $this->addToAssertionCount(1);

            return;
        }
        self::fail('the delivery was accepted');
    }
}
