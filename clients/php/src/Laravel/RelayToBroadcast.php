<?php

declare(strict_types=1);

namespace WaRay\Client\Laravel;

use Illuminate\Contracts\Config\Repository;
use Illuminate\Contracts\Events\Dispatcher;
use WaRay\Client\Laravel\Events\QrCodeGenerated;
use WaRay\Client\Laravel\Events\SessionStatusChanged;
use WaRay\Client\Laravel\Events\WebhookReceived;

/**
 * Listener of WebhookReceived (registered when `wa-ray.relay` is on): turns `session.qr` and `session.status`
 * into QrCodeGenerated / SessionStatusChanged broadcasts, so a Laravel Echo page listening on
 * `workspace.{id}` for `.qr-code-generated` and `.session-status-changed` follows a session live.
 * Other event types, and events without the fields a broadcast needs, are left alone.
 */
final class RelayToBroadcast
{
    public function __construct(private readonly Dispatcher $events, private readonly Repository $config)
    {
    }

    public function handle(WebhookReceived $received): void
    {
        $ws = $received->workspaceId();
        if ($ws === null || $ws === '') {
            return;
        }
        $sid = is_string($received->event['session_id'] ?? null) ? $received->event['session_id'] : null;
        $private = (bool) $this->config->get('wa-ray.relay_private', true);
        $data = $received->data();
        $broadcast = match ($received->type) {
            'session.qr' => is_string($data['qr'] ?? null)
                ? new QrCodeGenerated($ws, $sid, $data['qr'], (int) ($data['seq'] ?? 1), (int) ($data['expires_in'] ?? 0), $private)
                : null,
            'session.status' => is_string($data['state'] ?? null)
                ? new SessionStatusChanged($ws, $sid, $data['state'], self::text($data['previous'] ?? null),
                                           self::text($data['reason'] ?? null), $private)
                : null,
            default => null,
        };
        if ($broadcast !== null) {
            $this->events->dispatch($broadcast);
        }
    }

    private static function text(mixed $value): ?string
    {
        return is_string($value) ? $value : null;
    }
}
