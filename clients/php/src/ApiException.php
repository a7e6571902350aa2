<?php

declare(strict_types=1);

namespace WaRay\Client;

/**
 * A non-2xx answer of the wa-ray API, carrying its error shape {error: {code, message, details}} and the
 * HTTP status. `errorCode` is the stable machine-readable part to branch on (e.g. `no_qr`, `not_found`,
 * `idempotency_key_reused`); an answer without that shape gets the code `http_<status>`.
 */
final class ApiException extends \RuntimeException
{
    /** @param array<string, mixed> $details */
    public function __construct(
        public readonly int $status,
        public readonly string $errorCode,
        string $message,
        public readonly array $details = [],
    ) {
        parent::__construct($message, $status);
    }
}
