<?php

declare(strict_types=1);

namespace WaRay\Client;

use Psr\Http\Client\ClientInterface;
use Psr\Http\Message\RequestFactoryInterface;
use Psr\Http\Message\ResponseInterface;
use Psr\Http\Message\StreamFactoryInterface;

/**
 * Typed calls to the wa-ray HTTP API (`/v1`), every request signed by RequestSigner.
 *
 * Bring any PSR-18 client and PSR-17 factories (Guzzle: `new \GuzzleHttp\Client()` and
 * `new \GuzzleHttp\Psr7\HttpFactory()` for both factories). Answers are decoded JSON arrays; a non-2xx answer
 * throws ApiException with the API's error code, message, details and the HTTP status. Transport failures
 * are the PSR-18 client's own exceptions (Psr\Http\Client\ClientExceptionInterface), left as they are.
 * Path segments (workspace, session, message ids) are URL-encoded, so an id can never change the route.
 */
final class Client
{
    private readonly string $baseUrl;
    private readonly RequestSigner $signer;

    public function __construct(
        string $baseUrl,
        string $keyId,
        #[\SensitiveParameter] string $secret,
        private readonly ClientInterface $http,
        private readonly RequestFactoryInterface $requests,
        private readonly StreamFactoryInterface $streams,
    ) {
        $this->baseUrl = rtrim($baseUrl, '/');
        $this->signer = new RequestSigner($keyId, $secret);
    }

    // --- sessions ------------------------------------------------------------------------------------

    /** Start a session (idempotent per session id): the registry record, state `initializing` at first. */
    public function createSession(string $ws, string $sessionId): array
    {
        return $this->call('POST', $this->ws($ws) . '/sessions', ['session_id' => $sessionId]);
    }

    public function getSession(string $ws, string $sessionId): array
    {
        return $this->call('GET', $this->session($ws, $sessionId));
    }

    /** @return list<array<string, mixed>> */
    public function listSessions(string $ws): array
    {
        return $this->call('GET', $this->ws($ws) . '/sessions');
    }

    /** Stop the session and forget it (its saved auth state is deleted). */
    public function deleteSession(string $ws, string $sessionId): void
    {
        $this->call('DELETE', $this->session($ws, $sessionId));
    }

    /** {qr, since}: the raw string to show as a QR code; ApiException 409 `no_qr` when not waiting for a scan. */
    public function sessionQr(string $ws, string $sessionId): array
    {
        return $this->call('GET', $this->session($ws, $sessionId) . '/qr?format=raw');
    }

    // --- messages ------------------------------------------------------------------------------------

    /**
     * Queue a text message: {message_id, status: "queued", provider}. Pass an idempotency key to make a retry
     * of this call safe (the same key and body answer the first message; another body is 409).
     */
    public function sendText(
        string $ws,
        string $to,
        string $text,
        ?string $sessionId = null,
        ?string $idempotencyKey = null,
    ): array {
        $body = ['to' => $to, 'text' => $text];
        if ($sessionId !== null) {
            $body['session_id'] = $sessionId;
        }

        return $this->sendMessage($ws, $body, $idempotencyKey);
    }

    /**
     * Queue a message of any kind: the body of POST /v1/workspaces/{ws}/messages as is, e.g.
     * ['type' => 'image', 'to' => '...', 'media' => ['url' => '...'], 'caption' => '...'].
     *
     * @param array<string, mixed> $body
     */
    public function sendMessage(string $ws, array $body, ?string $idempotencyKey = null): array
    {
        $headers = $idempotencyKey === null ? [] : ['Idempotency-Key' => $idempotencyKey];

        return $this->call('POST', $this->ws($ws) . '/messages', $body, $headers);
    }

    /** The message's record with its status history. */
    public function getMessage(string $ws, string $messageId): array
    {
        return $this->call('GET', $this->ws($ws) . '/messages/' . rawurlencode($messageId));
    }

    // --- media ---------------------------------------------------------------------------------------

    /**
     * Upload a file for later messages (`media: {media_id}` of an image, document, video, audio or sticker):
     * {media_id, mimetype, filename, size, sha256, expires_at}. Sent as multipart/form-data with one `file`
     * part; the signature covers the whole body through X-Content-SHA256, so the service stores the upload
     * only if it is exactly what was signed.
     */
    public function uploadMedia(string $ws, string $contents, string $mimetype, ?string $filename = null): array
    {
        if (preg_match('#^[A-Za-z0-9!\#$&^_.+-]+/[A-Za-z0-9!\#$&^_.+-]+$#', $mimetype) !== 1) {
            throw new \InvalidArgumentException('mimetype must be a plain type/subtype');
        }
        $boundary = 'wa-ray-' . bin2hex(random_bytes(16));
        // a name never breaks the part's header: no CR/LF, quotes percent-encoded as browsers do
        $name = $filename === null ? '' : '; filename="' . str_replace(['"', "\r", "\n"], ['%22', '', ''], $filename) . '"';
        $body = "--$boundary\r\n"
            . "Content-Disposition: form-data; name=\"file\"$name\r\n"
            . "Content-Type: $mimetype\r\n\r\n"
            . $contents . "\r\n--$boundary--\r\n";
        $request = $this->requests->createRequest('POST', $this->baseUrl . $this->ws($ws) . '/media')
            ->withHeader('Accept', 'application/json')
            ->withHeader('Content-Type', 'multipart/form-data; boundary=' . $boundary)
            ->withBody($this->streams->createStream($body));

        return $this->decode($this->http->sendRequest($this->signer->sign($request)));
    }

    /** A stored media file's bytes (uploaded, fetched or received), for this workspace only. */
    public function getMedia(string $ws, string $mediaId): string
    {
        $request = $this->requests->createRequest('GET', $this->baseUrl . $this->ws($ws) . '/media/' . rawurlencode($mediaId));
        $response = $this->http->sendRequest($this->signer->sign($request));
        if ($response->getStatusCode() !== 200) {
            $this->decode($response);  // throws the API's error
        }

        return (string) $response->getBody();
    }

    // --- conversations (a connected session's live page) ------------------------------------------

    /** {items, next_cursor}: the session's chats, newest activity first; pass next_cursor for the next page. */
    public function listChats(string $ws, string $sessionId, ?string $cursor = null, int $limit = 50): array
    {
        return $this->call('GET', $this->session($ws, $sessionId) . '/chats' . self::query(['cursor' => $cursor, 'limit' => $limit]));
    }

    /** {items, next_cursor}: the session's contacts; `q` searches name, push name and number. */
    public function listContacts(string $ws, string $sessionId, ?string $q = null, ?string $cursor = null, int $limit = 50): array
    {
        return $this->call('GET', $this->session($ws, $sessionId) . '/contacts'
            . self::query(['q' => $q, 'cursor' => $cursor, 'limit' => $limit]));
    }

    /** {number, exists, id}: whether a number (digits, no +) is on WhatsApp; rate limited per session (429). */
    public function numberExists(string $ws, string $sessionId, string $number): array
    {
        return $this->call('GET', $this->session($ws, $sessionId) . '/contacts/' . rawurlencode($number) . '/exists');
    }

    // --- workspace -----------------------------------------------------------------------------------

    /** The workspace's provider settings (priority, manual override, Cloud API state; secrets never returned). */
    public function getProvider(string $ws): array
    {
        return $this->call('GET', $this->ws($ws) . '/provider');
    }

    /**
     * Change the provider settings: the body of PUT /v1/workspaces/{ws}/provider as is.
     *
     * @param array<string, mixed> $settings
     */
    public function putProvider(string $ws, array $settings): array
    {
        return $this->call('PUT', $this->ws($ws) . '/provider', $settings);
    }

    /**
     * {token, expires_at, workspace_id, session_id}: a short-lived token a browser passes as ?token= to
     * GET /v1/workspaces/{ws}/events (SSE), so the key's secret never reaches the browser.
     */
    public function createStreamToken(string $ws, int $ttlS = 300, ?string $sessionId = null): array
    {
        $body = ['ttl_s' => $ttlS];
        if ($sessionId !== null) {
            $body['session_id'] = $sessionId;
        }

        return $this->call('POST', $this->ws($ws) . '/stream-tokens', $body);
    }

    /** Where the workspace's signed webhooks go; `secret` preferably `whsec_<base64 of 24-64 random bytes>`. */
    public function putWebhook(string $ws, string $url, #[\SensitiveParameter] string $secret): void
    {
        $this->call('PUT', $this->ws($ws) . '/webhook', ['url' => $url, 'secret' => $secret]);
    }

    // --- plumbing ------------------------------------------------------------------------------------

    private function ws(string $ws): string
    {
        return '/v1/workspaces/' . rawurlencode($ws);
    }

    /** "?a=1&b=2" of the parameters that are set ("" when none), RFC 3986 encoded. */
    private static function query(array $params): string
    {
        $set = array_filter($params, static fn ($v): bool => $v !== null);
        $set = array_map(static fn ($v) => is_bool($v) ? ($v ? 'true' : 'false') : $v, $set);

        return $set === [] ? '' : '?' . http_build_query($set, '', '&', PHP_QUERY_RFC3986);
    }

    private function session(string $ws, string $sessionId): string
    {
        return $this->ws($ws) . '/sessions/' . rawurlencode($sessionId);
    }

    /**
     * @param array<string, mixed>|null $json
     * @param array<string, string> $headers
     * @return array<mixed>
     */
    private function call(string $method, string $path, ?array $json = null, array $headers = []): array
    {
        $request = $this->requests->createRequest($method, $this->baseUrl . $path)
            ->withHeader('Accept', 'application/json');
        if ($json !== null) {
            $payload = json_encode($json, JSON_THROW_ON_ERROR | JSON_UNESCAPED_SLASHES | JSON_UNESCAPED_UNICODE);
            $request = $request->withHeader('Content-Type', 'application/json')
                ->withBody($this->streams->createStream($payload));
        }
        foreach ($headers as $name => $value) {
            $request = $request->withHeader($name, $value);
        }
        $response = $this->http->sendRequest($this->signer->sign($request));

        return $this->decode($response);
    }

    /** @return array<mixed> */
    private function decode(ResponseInterface $response): array
    {
        $status = $response->getStatusCode();
        $raw = (string) $response->getBody();
        $decoded = null;
        if ($raw !== '') {
            try {
                $decoded = json_decode($raw, true, 512, JSON_THROW_ON_ERROR);
            } catch (\JsonException) {
                $decoded = null;
            }
        }
        if ($status < 200 || $status > 299) {
            $error = is_array($decoded) && is_array($decoded['error'] ?? null) ? $decoded['error'] : [];
            throw new ApiException(
                $status,
                is_string($error['code'] ?? null) ? $error['code'] : 'http_' . $status,
                is_string($error['message'] ?? null) ? $error['message'] : 'HTTP ' . $status,
                is_array($error['details'] ?? null) ? $error['details'] : [],
            );
        }
        if ($raw === '') {
            return [];  // 204
        }
        if (!is_array($decoded)) {
            throw new ApiException($status, 'invalid_response', 'the API answered with something other than JSON');
        }

        return $decoded;
    }
}
