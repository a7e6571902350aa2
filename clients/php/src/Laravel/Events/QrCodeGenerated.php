<?php

declare(strict_types=1);

namespace WaRay\Client\Laravel\Events;

/** `qr-code-generated`: a wa-ray `session.qr`, the code to render and scan (a new one each expires_in seconds). */
final class QrCodeGenerated extends WorkspaceBroadcast
{
    public function __construct(
        string $workspaceId,
        ?string $sessionId,
        public readonly string $qr,
        public readonly int $seq,
        public readonly int $expiresIn,
        bool $private = true,
    ) {
        parent::__construct($workspaceId, $sessionId, $private);
    }

    public function broadcastAs(): string
    {
        return 'qr-code-generated';
    }

    public function broadcastWith(): array
    {
        return ['workspace_id' => $this->workspaceId, 'session_id' => $this->sessionId, 'qr' => $this->qr,
                'seq' => $this->seq, 'expires_in' => $this->expiresIn];
    }
}
