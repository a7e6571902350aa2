<?php

declare(strict_types=1);

namespace WaRay\Client\Laravel\Events;

/** `session-status-changed`: a wa-ray `session.status`, the state a session moved to and from, and why (for people). */
final class SessionStatusChanged extends WorkspaceBroadcast
{
    public function __construct(
        string $workspaceId,
        ?string $sessionId,
        public readonly string $state,
        public readonly ?string $previous,
        public readonly ?string $reason,
        bool $private = true,
    ) {
        parent::__construct($workspaceId, $sessionId, $private);
    }

    public function broadcastAs(): string
    {
        return 'session-status-changed';
    }

    public function broadcastWith(): array
    {
        return ['workspace_id' => $this->workspaceId, 'session_id' => $this->sessionId, 'state' => $this->state,
                'previous' => $this->previous, 'reason' => $this->reason];
    }
}
