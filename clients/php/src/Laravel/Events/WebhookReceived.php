<?php

declare(strict_types=1);

namespace WaRay\Client\Laravel\Events;

/**
 * One verified wa-ray event, dispatched by the webhook route once per event of a delivery (a batch gives one
 * per element, in order). Listen for it (`Event::listen(WebhookReceived::class, ...)`) and branch on $type.
 *
 * Delivery is at least once: dedupe on $event['id'] (a retry or a replay keeps it). $deliveryId is the
 * delivery's `webhook-id`: the event's id for a single event, the batch's id for a batch.
 */
final class WebhookReceived
{
    /** @param array<string, mixed> $event {id, type, workspace_id, session_id, ts, data} */
    public function __construct(
        public readonly string $type,
        public readonly array $event,
        public readonly string $deliveryId,
    ) {
    }

    public function workspaceId(): ?string
    {
        return is_string($this->event['workspace_id'] ?? null) ? $this->event['workspace_id'] : null;
    }

    /** @return array<string, mixed> */
    public function data(): array
    {
        return is_array($this->event['data'] ?? null) ? $this->event['data'] : [];
    }
}
