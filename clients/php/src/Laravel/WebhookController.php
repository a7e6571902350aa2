<?php

declare(strict_types=1);

namespace WaRay\Client\Laravel;

use Illuminate\Contracts\Events\Dispatcher;
use Illuminate\Http\Request;
use Illuminate\Http\Response;
use WaRay\Client\Laravel\Events\WebhookReceived;
use WaRay\Client\WebhookVerificationException;
use WaRay\Client\WebhookVerifier;

/**
 * The webhook route: verifies the raw body (never a re-encoded one) and dispatches one WebhookReceived per
 * event, in order. 204 once every listener ran; 400 (empty body, nothing dispatched) when the delivery does
 * not verify. A listener's exception propagates (a 5xx), so wa-ray retries the delivery later: listeners
 * must therefore be idempotent per event id.
 */
final class WebhookController
{
    public function __invoke(Request $request, WebhookVerifier $verifier, Dispatcher $events): Response
    {
        try {
            $delivered = $verifier->verifyEvents($request->getContent(), $request->headers->all());
        } catch (WebhookVerificationException) {
            return new Response('', 400);
        }
        $deliveryId = (string) $request->headers->get('webhook-id', '');
        foreach ($delivered as $event) {
            $type = is_string($event['type'] ?? null) ? $event['type'] : '';
            $events->dispatch(new WebhookReceived($type, $event, $deliveryId));
        }

        return new Response('', 204);
    }
}
