<?php

declare(strict_types=1);

namespace WaRay\Client;

use Psr\Http\Message\RequestInterface;

/**
 * Signs a PSR-7 request the way wa-ray checks service callers (wa_ray/signing.py, byte for byte):
 * X-Signature = hex HMAC-SHA256, keyed by the secret's bytes, over
 * "{ts}\n{nonce}\n{METHOD}\n{path?query}\n{sha256hex(body)}".
 *
 * Invariants: the path and query are signed exactly as they go on the wire (the URI's encoded form), the
 * body digest is of the exact bytes sent, and X-Content-SHA256 carries that digest too (the server checks a
 * streamed upload's signature against it before reading the body). A nonce is never reused: the server
 * keeps each one for 600 s and answers a replay with 401.
 */
final class RequestSigner
{
    public function __construct(
        private readonly string $keyId,
        #[\SensitiveParameter] private readonly string $secret,
    ) {
        if ($keyId === '' || $secret === '') {
            throw new \InvalidArgumentException('key id and secret must not be empty');
        }
    }

    /** The signed copy of $request; $timestamp and $nonce are for tests (default: now, 12 random bytes hex). */
    public function sign(RequestInterface $request, ?int $timestamp = null, ?string $nonce = null): RequestInterface
    {
        $ts = (string) ($timestamp ?? time());
        $nonce ??= bin2hex(random_bytes(12));
        $body = $request->getBody();
        if ($body->isSeekable()) {
            $body->rewind();
        }
        $bytes = (string) $body;
        if ($body->isSeekable()) {
            $body->rewind();
        }
        $digest = hash('sha256', $bytes);
        $signature = self::signature($this->secret, $ts, $nonce, $request->getMethod(), self::pathQuery($request), $digest);

        return $request
            ->withHeader('X-Key-Id', $this->keyId)
            ->withHeader('X-Timestamp', $ts)
            ->withHeader('X-Nonce', $nonce)
            ->withHeader('X-Content-SHA256', $digest)
            ->withHeader('X-Signature', $signature);
    }

    /** "{ts}\n{nonce}\n{METHOD}\n{path?query}\n{body_sha256}" (wa_ray.signing.canonical_for_digest). */
    public static function canonical(string $ts, string $nonce, string $method, string $pathQuery, string $bodySha256): string
    {
        return $ts . "\n" . $nonce . "\n" . strtoupper($method) . "\n" . $pathQuery . "\n" . $bodySha256;
    }

    public static function signature(
        #[\SensitiveParameter] string $secret,
        string $ts,
        string $nonce,
        string $method,
        string $pathQuery,
        string $bodySha256,
    ): string {
        return hash_hmac('sha256', self::canonical($ts, $nonce, $method, $pathQuery, $bodySha256), $secret);
    }

    /** The request target as sent: the encoded path ("/" when empty) and "?query" when there is one. */
    public static function pathQuery(RequestInterface $request): string
    {
        $uri = $request->getUri();
        $path = $uri->getPath();
        if ($path === '') {
            $path = '/';
        } elseif ($path[0] !== '/') {
            $path = '/' . $path;
        }
        $query = $uri->getQuery();

        return $query === '' ? $path : $path . '?' . $query;
    }
}
