<?php

declare(strict_types=1);

namespace WaRay\Client\Laravel\Events;

use Illuminate\Broadcasting\Channel;
use Illuminate\Broadcasting\PrivateChannel;
use Illuminate\Contracts\Broadcasting\ShouldBroadcastNow;

/**
 * A wa-ray event rebroadcast to a workspace's browsers on `workspace.{workspace_id}` (a private channel unless
 * configured otherwise), at once rather than through a queue: a QR code is only good for about a minute.
 * Subclasses name the event (broadcastAs) and pick the fields the browser gets (broadcastWith).
 */
abstract class WorkspaceBroadcast implements ShouldBroadcastNow
{
    public function __construct(
        public readonly string $workspaceId,
        public readonly ?string $sessionId,
        public readonly bool $private = true,
    ) {
    }

    public function broadcastOn(): Channel
    {
        $name = 'workspace.' . $this->workspaceId;

        return $this->private ? new PrivateChannel($name) : new Channel($name);
    }

    abstract public function broadcastAs(): string;

    /** @return array<string, mixed> */
    abstract public function broadcastWith(): array;
}
