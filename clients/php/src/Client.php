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

    // --- a typed method per message kind: each is sendMessage() with the kind's body; $options carries what
    // every kind shares: session_id, priority (urgent|high|normal|bulk), strict, reply_to -------------------

    /**
     * @param string $media a media_id from uploadMedia(), or an http(s) URL the service fetches
     * @param array{session_id?: string, priority?: string, strict?: bool, reply_to?: string} $options
     */
    public function sendImage(string $ws, string $to, string $media, ?string $caption = null, array $options = [],
                              ?string $idempotencyKey = null): array
    {
        return $this->sendKind($ws, 'image', $to, ['media' => self::media($media), 'caption' => $caption], $options,
                               $idempotencyKey);
    }

    /** @param array{session_id?: string, priority?: string, strict?: bool, reply_to?: string} $options */
    public function sendVideo(string $ws, string $to, string $media, ?string $caption = null, array $options = [],
                              ?string $idempotencyKey = null): array
    {
        return $this->sendKind($ws, 'video', $to, ['media' => self::media($media), 'caption' => $caption], $options,
                               $idempotencyKey);
    }

    /** @param array{session_id?: string, priority?: string, strict?: bool, reply_to?: string} $options */
    public function sendAudio(string $ws, string $to, string $media, array $options = [],
                              ?string $idempotencyKey = null): array
    {
        return $this->sendKind($ws, 'audio', $to, ['media' => self::media($media)], $options, $idempotencyKey);
    }

    /**
     * A voice note (push to talk).
     *
     * @param array{session_id?: string, priority?: string, strict?: bool, reply_to?: string} $options
     */
    public function sendVoice(string $ws, string $to, string $media, array $options = [],
                              ?string $idempotencyKey = null): array
    {
        return $this->sendKind($ws, 'voice', $to, ['media' => self::media($media)], $options, $idempotencyKey);
    }

    /** @param array{session_id?: string, priority?: string, strict?: bool, reply_to?: string} $options */
    public function sendDocument(string $ws, string $to, string $media, ?string $filename = null,
                                 ?string $caption = null, array $options = [], ?string $idempotencyKey = null): array
    {
        return $this->sendKind($ws, 'document', $to, ['media' => self::media($media), 'filename' => $filename,
                                                      'caption' => $caption], $options, $idempotencyKey);
    }

    /** @param array{session_id?: string, priority?: string, strict?: bool, reply_to?: string} $options */
    public function sendSticker(string $ws, string $to, string $media, array $options = [],
                                ?string $idempotencyKey = null): array
    {
        return $this->sendKind($ws, 'sticker', $to, ['media' => self::media($media)], $options, $idempotencyKey);
    }

    /** @param array{session_id?: string, priority?: string, strict?: bool, reply_to?: string} $options */
    public function sendLocation(string $ws, string $to, float $latitude, float $longitude, ?string $name = null,
                                 ?string $address = null, array $options = [], ?string $idempotencyKey = null): array
    {
        return $this->sendKind($ws, 'location', $to, ['latitude' => $latitude, 'longitude' => $longitude,
                                                      'name' => $name, 'address' => $address], $options,
                               $idempotencyKey);
    }

    /**
     * @param list<array<string, mixed>> $contacts 1-20 contact cards as the API takes them
     * @param array{session_id?: string, priority?: string, strict?: bool, reply_to?: string} $options
     */
    public function sendContacts(string $ws, string $to, array $contacts, array $options = [],
                                 ?string $idempotencyKey = null): array
    {
        return $this->sendKind($ws, 'contacts', $to, ['contacts' => $contacts], $options, $idempotencyKey);
    }

    /**
     * React to a message (ours, msg_..., or an inbound WhatsApp id); "" removes our reaction.
     *
     * @param array{session_id?: string, priority?: string, strict?: bool} $options
     */
    public function sendReaction(string $ws, string $to, string $messageId, string $emoji, array $options = [],
                                 ?string $idempotencyKey = null): array
    {
        return $this->sendKind($ws, 'reaction', $to, ['message_id' => $messageId, 'emoji' => $emoji], $options,
                               $idempotencyKey);
    }

    /**
     * @param list<string> $choices 2-12 distinct options
     * @param array{session_id?: string, priority?: string, strict?: bool, reply_to?: string} $options
     */
    public function sendPoll(string $ws, string $to, string $name, array $choices, bool $allowMultiple = false,
                             array $options = [], ?string $idempotencyKey = null): array
    {
        return $this->sendKind($ws, 'poll', $to, ['name' => $name, 'options' => $choices,
                                                  'allow_multiple' => $allowMultiple], $options, $idempotencyKey);
    }

    /**
     * A Cloud API template (sent by the Cloud API, whatever the session).
     *
     * @param list<array<string, mixed>> $components the template's components as the API takes them
     * @param array{session_id?: string, priority?: string, strict?: bool, reply_to?: string} $options
     */
    public function sendTemplate(string $ws, string $to, string $name, string $language, array $components = [],
                                 array $options = [], ?string $idempotencyKey = null): array
    {
        return $this->sendKind($ws, 'template', $to, ['name' => $name, 'language' => $language,
                                                      'components' => $components], $options, $idempotencyKey);
    }

    /**
     * @param array<string, mixed> $fields the kind's own fields (a null one is left out)
     * @param array<string, mixed> $options
     */
    private function sendKind(string $ws, string $kind, string $to, array $fields, array $options,
                              ?string $idempotencyKey): array
    {
        $body = ['type' => $kind, 'to' => $to] + array_filter($fields, static fn ($v) => $v !== null)
            + array_filter($options, static fn ($v) => $v !== null);

        return $this->sendMessage($ws, $body, $idempotencyKey);
    }

    /** @return array{url: string}|array{media_id: string} */
    private static function media(string $media): array
    {
        return preg_match('#^https?://#i', $media) === 1 ? ['url' => $media] : ['media_id' => $media];
    }

    /**
     * Up to 1,000 messages in one call, each a body of sendMessage() plus its own optional `idempotency_key`:
     * {accepted, refused, results: [{index, status, message_id?, provider?, error?}]} in the items' order. Each
     * item is accepted or refused (its own 4xx `status` and `error`) as a call of its own would be.
     *
     * @param list<array<string, mixed>> $messages
     */
    public function sendBatch(string $ws, array $messages): array
    {
        return $this->call('POST', $this->ws($ws) . '/messages:batch', ['messages' => $messages]);
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
    public function listChats(string $ws, string $sessionId, ?string $cursor = null, int $limit = 50, ?bool $archived = null): array
    {
        return $this->call('GET', $this->session($ws, $sessionId) . '/chats'
            . self::query(['cursor' => $cursor, 'limit' => $limit, 'archived' => $archived]));
    }

    /**
     * {items, has_more, before_cursor, after_cursor}: a chat's messages, oldest to newest; the latest page, or
     * the older page before `before_cursor` / the newer page after `after_cursor` of an earlier page (one of them).
     */
    public function listChatMessages(
        string $ws,
        string $sessionId,
        string $chatId,
        ?string $before = null,
        ?string $after = null,
        int $limit = 50,
    ): array {
        return $this->call('GET', $this->chat($ws, $sessionId, $chatId) . '/messages'
            . self::query(['before' => $before, 'after' => $after, 'limit' => $limit]));
    }

    /** {chat_id}: the chat's unread count clears and its senders see read receipts. */
    public function markChatRead(string $ws, string $sessionId, string $chatId): array
    {
        return $this->call('POST', $this->chat($ws, $sessionId, $chatId) . '/read');
    }

    /** {chat_id, state}: show `typing` or `recording` in a chat (WhatsApp clears it after ~25 s), `paused` clears it. */
    public function setPresence(string $ws, string $sessionId, string $chatId, string $state): array
    {
        return $this->call('POST', $this->chat($ws, $sessionId, $chatId) . '/presence', ['state' => $state]);
    }

    /** One contact (`<number>@c.us` or `<n>@lid`): names, business or not, profile picture URL. */
    public function getContact(string $ws, string $sessionId, string $contactId): array
    {
        return $this->call('GET', $this->session($ws, $sessionId) . '/contacts/' . rawurlencode($contactId));
    }

    /** {items, next_cursor}: the session's group chats with their participant counts. */
    public function listGroups(string $ws, string $sessionId, ?string $cursor = null, int $limit = 50): array
    {
        return $this->call('GET', $this->session($ws, $sessionId) . '/groups' . self::query(['cursor' => $cursor, 'limit' => $limit]));
    }

    /** {group_id, items}: a group's (`<id>@g.us`) participants. */
    public function groupParticipants(string $ws, string $sessionId, string $groupId): array
    {
        return $this->call('GET', $this->session($ws, $sessionId) . '/groups/' . rawurlencode($groupId) . '/participants');
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

    /** {max_attempts, base_delay_s, max_delay_s}: how often and how far apart a failed delivery is retried. */
    public function getWebhookPolicy(string $ws): array
    {
        return $this->call('GET', $this->ws($ws) . '/webhook/policy');
    }

    /** Change the retry policy; an argument left null keeps the service's default. Answers the policy now in force. */
    public function putWebhookPolicy(string $ws, ?int $maxAttempts = null, ?float $baseDelayS = null, ?float $maxDelayS = null): array
    {
        return $this->call('PUT', $this->ws($ws) . '/webhook/policy', self::set([
            'max_attempts' => $maxAttempts, 'base_delay_s' => $baseDelayS, 'max_delay_s' => $maxDelayS]));
    }

    /** {total, items: [{event, reason, attempts, status_class, ts}]}: deliveries given up on, oldest first. */
    public function listDeadLetters(string $ws, int $offset = 0, int $limit = 100): array
    {
        return $this->call('GET', $this->ws($ws) . '/webhook/dead-letters' . self::query(['offset' => $offset, 'limit' => $limit]));
    }

    /**
     * {replayed}: deliver dead letters again (these event ids, or all when null), each with its own webhook-id,
     * so a receiver that dedupes on it stays idempotent.
     *
     * @param list<string>|null $eventIds
     */
    public function replayDeadLetters(string $ws, ?array $eventIds = null): array
    {
        return $this->call('POST', $this->ws($ws) . '/webhook/dead-letters/replay', self::set(['event_ids' => $eventIds]));
    }

    // --- webhook endpoints (several per workspace, each with its own secret, filter and batching) -----

    /**
     * Add an endpoint: 201 {id, url, events, header_names, batch, description, created_at}, plus `secret` only
     * when the service generated it (no $secret given): keep it then, it is never shown again.
     *
     * @param list<string>|null $events event types, "prefix.*" or "*" (null: the service's default, every event)
     * @param array<string, string>|null $headers sent with every delivery; only their names are ever read back
     * @param array{max_events?: int, max_wait_ms?: int}|null $batch deliver up to max_events per POST as a JSON
     *                                                              array (WebhookVerifier::verifyEvents reads both)
     */
    public function createWebhookEndpoint(
        string $ws,
        string $url,
        #[\SensitiveParameter] ?string $secret = null,
        ?array $events = null,
        ?array $headers = null,
        ?array $batch = null,
        ?string $description = null,
    ): array {
        return $this->call('POST', $this->ws($ws) . '/webhooks', self::set([
            'url' => $url, 'secret' => $secret, 'events' => $events,
            'headers' => $headers === null ? null : (object) $headers, 'batch' => $batch, 'description' => $description]));
    }

    /** @return list<array<string, mixed>> the workspace's endpoints (secrets never included) */
    public function listWebhookEndpoints(string $ws): array
    {
        return $this->call('GET', $this->ws($ws) . '/webhooks')['items'] ?? [];
    }

    public function getWebhookEndpoint(string $ws, string $endpointId): array
    {
        return $this->call('GET', $this->endpoint($ws, $endpointId));
    }

    /**
     * Change an endpoint: the PATCH body as is, only the fields to change (url, secret, events, headers, batch,
     * description), e.g. ['events' => ['message.*'], 'batch' => null]. Answers the endpoint.
     *
     * @param array<string, mixed> $changes
     */
    public function updateWebhookEndpoint(string $ws, string $endpointId, array $changes): array
    {
        if (isset($changes['headers']) && is_array($changes['headers'])) {
            $changes['headers'] = (object) $changes['headers'];  // {} rather than [] when it is emptied
        }

        return $this->call('PATCH', $this->endpoint($ws, $endpointId), $changes);
    }

    public function deleteWebhookEndpoint(string $ws, string $endpointId): void
    {
        $this->call('DELETE', $this->endpoint($ws, $endpointId));
    }

    /** {total, items}: the endpoint's dead letters, oldest first. */
    public function listWebhookEndpointDeadLetters(string $ws, string $endpointId, int $offset = 0, int $limit = 100): array
    {
        return $this->call('GET', $this->endpoint($ws, $endpointId) . '/dead-letters'
            . self::query(['offset' => $offset, 'limit' => $limit]));
    }

    /**
     * {replayed}: deliver the endpoint's dead letters again (these event ids, or all when null).
     *
     * @param list<string>|null $eventIds
     */
    public function replayWebhookEndpointDeadLetters(string $ws, string $endpointId, ?array $eventIds = null): array
    {
        return $this->call('POST', $this->endpoint($ws, $endpointId) . '/dead-letters/replay',
            self::set(['event_ids' => $eventIds]));
    }

    // --- campaigns -----------------------------------------------------------------------------------

    /**
     * Create a campaign: the body of POST /v1/workspaces/{ws}/campaigns as is ({name, message, recipients?,
     * numbers?, schedule?, priority?, fallback_template?, draft?}). 201 with the campaign; it starts at once
     * unless `draft` is true (then add recipients as CSV and call startCampaign).
     *
     * @param array<string, mixed> $campaign
     */
    public function createCampaign(string $ws, array $campaign): array
    {
        return $this->call('POST', $this->ws($ws) . '/campaigns', $campaign);
    }

    /**
     * {added, recipients}: add a draft's recipients as CSV (header `phone,<var>,...`, one recipient per row).
     * Bad rows are ApiException 422 `csv_invalid` with details.errors [{row, column, code}].
     */
    public function addCampaignRecipients(string $ws, string $campaignId, string $csv): array
    {
        return $this->send('POST', $this->campaign($ws, $campaignId) . '/recipients', $csv, 'text/csv; charset=utf-8');
    }

    /** @return list<array<string, mixed>> the workspace's campaigns, newest first */
    public function listCampaigns(string $ws, int $limit = 50): array
    {
        return $this->call('GET', $this->ws($ws) . '/campaigns' . self::query(['limit' => $limit]))['campaigns'] ?? [];
    }

    /** The campaign with its status, totals and progress. */
    public function getCampaign(string $ws, string $campaignId): array
    {
        return $this->call('GET', $this->campaign($ws, $campaignId));
    }

    /** Start a draft (running, or scheduled until its window opens); 409 `campaign_state` otherwise. */
    public function startCampaign(string $ws, string $campaignId): array
    {
        return $this->call('POST', $this->campaign($ws, $campaignId) . '/start');
    }

    public function pauseCampaign(string $ws, string $campaignId): array
    {
        return $this->call('POST', $this->campaign($ws, $campaignId) . '/pause');
    }

    public function resumeCampaign(string $ws, string $campaignId): array
    {
        return $this->call('POST', $this->campaign($ws, $campaignId) . '/resume');
    }

    /** Cancel: its queued messages are withdrawn; it can be deleted once it has stopped. */
    public function cancelCampaign(string $ws, string $campaignId): array
    {
        return $this->call('POST', $this->campaign($ws, $campaignId) . '/cancel');
    }

    /** Delete a draft, completed or cancelled (and stopped) campaign; 409 `campaign_state` otherwise. */
    public function deleteCampaign(string $ws, string $campaignId): void
    {
        $this->call('DELETE', $this->campaign($ws, $campaignId));
    }

    // --- plumbing ------------------------------------------------------------------------------------

    /** The entries that are not null: an absent field keeps the service's default. */
    private static function set(array $fields): array
    {
        return array_filter($fields, static fn ($v): bool => $v !== null);
    }

    private function chat(string $ws, string $sessionId, string $chatId): string
    {
        return $this->session($ws, $sessionId) . '/chats/' . rawurlencode($chatId);
    }

    private function endpoint(string $ws, string $endpointId): string
    {
        return $this->ws($ws) . '/webhooks/' . rawurlencode($endpointId);
    }

    private function campaign(string $ws, string $campaignId): string
    {
        return $this->ws($ws) . '/campaigns/' . rawurlencode($campaignId);
    }

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
        // a body is always a JSON object: an empty one is {} (json_encode would make it [])
        $payload = $json === null ? null
            : json_encode($json === [] ? new \stdClass() : $json, JSON_THROW_ON_ERROR | JSON_UNESCAPED_SLASHES | JSON_UNESCAPED_UNICODE);

        return $this->send($method, $path, $payload, 'application/json', $headers);
    }

    /**
     * @param array<string, string> $headers
     * @return array<mixed>
     */
    private function send(string $method, string $path, ?string $body, string $contentType, array $headers = []): array
    {
        $request = $this->requests->createRequest($method, $this->baseUrl . $path)
            ->withHeader('Accept', 'application/json');
        if ($body !== null) {
            $request = $request->withHeader('Content-Type', $contentType)
                ->withBody($this->streams->createStream($body));
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
