<?php

declare(strict_types=1);

namespace WaRay\Client\Tests\Laravel;

require_once __DIR__ . '/TestApplication.php';  // and through it Debian's Laravel

use GuzzleHttp\Psr7\Response as PsrResponse;
use Illuminate\Broadcasting\Channel;
use Illuminate\Broadcasting\PrivateChannel;
use Illuminate\Foundation\Application;
use PHPUnit\Framework\TestCase;
use Psr\Http\Client\ClientInterface;
use Psr\Http\Message\RequestInterface;
use Psr\Http\Message\ResponseInterface;
use Symfony\Component\HttpFoundation\Response;
use WaRay\Client\Client;
use WaRay\Client\Laravel\Events\WebhookReceived;
use WaRay\Client\Laravel\WaRayServiceProvider;
use WaRay\Client\WebhookVerifier;

/**
 * The Laravel integration in a real (minimal) Illuminate application of Debian's Laravel: the container,
 * config, events, bus, broadcasting and the HTTP kernel with its router. Deliveries go through the kernel to
 * the provider's route as an app would receive them; the broadcasts reach a recording broadcaster through
 * Laravel's own BroadcastManager (so channel, name and payload are what Echo would get).
 */
final class LaravelIntegrationTest extends TestCase
{
    private const SECRET = 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw';

    private TestApplication $laravel;
    /** @var list<WebhookReceived> */
    private array $received = [];
    /** @var list<array{channels: list<string>, classes: list<string>, event: string, payload: array}> */
    private array $broadcasts = [];
    private Application $app;

    /** @param array<string, mixed> $waRay */
    private function boot(array $waRay = []): void
    {
        $this->laravel = new TestApplication($waRay + ['webhook_secret' => self::SECRET]);
        $this->app = $this->laravel->app;
        $this->received = &$this->laravel->received;
        $this->broadcasts = &$this->laravel->broadcaster->log;
    }

    /** @param array<string, string> $headers */
    private function post(string $body, array $headers, string $uri = '/wa-ray/webhook'): Response
    {
        return $this->laravel->post($body, $headers, $uri);
    }

    /** @return array<string, string> the headers wa-ray sends with $body, signed now */
    private static function signed(string $id, string $body): array
    {
        $now = time();

        return ['webhook-id' => $id, 'webhook-timestamp' => (string) $now,
                'webhook-signature' => (new WebhookVerifier(self::SECRET))->signature($id, $now, $body)];
    }

    private static function event(string $id, string $type, array $data, string $ws = 'acme', ?string $sid = 's1'): array
    {
        return ['id' => $id, 'type' => $type, 'workspace_id' => $ws, 'session_id' => $sid, 'ts' => 1765000000.5, 'data' => $data];
    }

    public function testASignedQrEventIsDispatchedAndBroadcastOnTheWorkspaceChannel(): void
    {
        $this->boot();
        $event = self::event('1765000000500-0', 'session.qr', ['qr' => '2@abc,def==,ghi', 'seq' => 2, 'expires_in' => 20]);
        $body = json_encode($event);
        $response = $this->post($body, self::signed('1765000000500-0', $body));

        self::assertSame(204, $response->getStatusCode());
        self::assertCount(1, $this->received);
        self::assertSame(['session.qr', $event, '1765000000500-0'],
                         [$this->received[0]->type, $this->received[0]->event, $this->received[0]->deliveryId]);
        self::assertSame([[
            'channels' => ['private-workspace.acme'],
            'classes' => [PrivateChannel::class],
            'event' => 'qr-code-generated',
            'payload' => ['workspace_id' => 'acme', 'session_id' => 's1', 'qr' => '2@abc,def==,ghi', 'seq' => 2,
                          'expires_in' => 20, 'socket' => null],
        ]], $this->broadcasts);
    }

    public function testABatchDispatchesEachEventInOrderAndRelaysTheStatusChange(): void
    {
        $this->boot(['relay_private' => false]);
        $batch = [
            self::event('1765000000600-0', 'message.received', ['text' => 'hi'], 'acme', 's1'),
            self::event('1765000000601-0', 'session.status', ['state' => 'connected', 'previous' => 'authenticating',
                                                              'reason' => 'page synced'], 'beta', 's2'),
        ];
        $body = json_encode($batch);
        $response = $this->post($body, self::signed('bat_7', $body));

        self::assertSame(204, $response->getStatusCode());
        self::assertSame(['message.received', 'session.status'], array_map(static fn ($e) => $e->type, $this->received));
        self::assertSame($batch, array_map(static fn ($e) => $e->event, $this->received));
        self::assertSame(['bat_7', 'bat_7'], array_map(static fn ($e) => $e->deliveryId, $this->received));
        self::assertSame([[
            'channels' => ['workspace.beta'],
            'classes' => [Channel::class],
            'event' => 'session-status-changed',
            'payload' => ['workspace_id' => 'beta', 'session_id' => 's2', 'state' => 'connected',
                          'previous' => 'authenticating', 'reason' => 'page synced', 'socket' => null],
        ]], $this->broadcasts);
    }

    public function testAForgedDeliveryIs400AndDispatchesNothing(): void
    {
        $this->boot();
        $event = self::event('1765000000700-0', 'session.qr', ['qr' => 'attacker', 'seq' => 1, 'expires_in' => 60]);
        $body = json_encode($event);
        $headers = self::signed('1765000000700-0', $body);
        $forged = [
            'tampered body' => [str_replace('attacker', 'attackex', $body), $headers],
            'other secret' => [$body, ['webhook-signature' => (new WebhookVerifier('whsec_' . base64_encode(random_bytes(24))))
                ->signature('1765000000700-0', time(), $body)] + $headers],
            'stale' => [$body, ['webhook-timestamp' => (string) (time() - 301), 'webhook-signature' =>
                (new WebhookVerifier(self::SECRET))->signature('1765000000700-0', time() - 301, $body)] + $headers],
            'no signature' => [$body, ['webhook-id' => '1765000000700-0', 'webhook-timestamp' => (string) time()]],
        ];
        foreach ($forged as $what => [$b, $h]) {
            $response = $this->post($b, $h);
            self::assertSame(400, $response->getStatusCode(), $what);
            self::assertSame('', $response->getContent(), $what);
        }
        self::assertSame([], $this->received);
        self::assertSame([], $this->broadcasts);
    }

    public function testWithoutTheRelayNothingIsBroadcast(): void
    {
        $this->boot(['relay' => false]);
        $body = json_encode(self::event('1765000000800-0', 'session.status', ['state' => 'qr_required',
                                                                             'previous' => 'initializing', 'reason' => 'x']));
        self::assertSame(204, $this->post($body, self::signed('1765000000800-0', $body))->getStatusCode());
        self::assertCount(1, $this->received);
        self::assertSame([], $this->broadcasts);
    }

    public function testTheRouteFollowsTheConfiguredPath(): void
    {
        $this->boot(['webhook_path' => 'hooks/whatsapp']);
        $body = json_encode(self::event('1765000000900-0', 'message.received', ['text' => 'x']));
        self::assertSame(204, $this->post($body, self::signed('1765000000900-0', $body), '/hooks/whatsapp')->getStatusCode());
        self::assertSame(404, $this->post($body, self::signed('1765000000900-0', $body))->getStatusCode());
        $routes = $this->app['router']->getRoutes();
        $routes->refreshNameLookups();
        self::assertSame(['hooks/whatsapp', ['POST']], [$routes->getByName('wa-ray.webhook')->uri(),
                                                         $routes->getByName('wa-ray.webhook')->methods()]);
    }

    public function testTheClientComesFromConfigOverTheAppsTransport(): void
    {
        $this->boot();
        $transport = new class implements ClientInterface {
            public ?RequestInterface $sent = null;

            public function sendRequest(RequestInterface $request): ResponseInterface
            {
                $this->sent = $request;

                return new PsrResponse(200, [], '[]');
            }
        };
        $this->app->instance(ClientInterface::class, $transport);
        $client = $this->app->make(Client::class);

        self::assertSame($client, $this->app->make(Client::class), 'one client per app');
        self::assertSame([], $client->listSessions('acme'));
        self::assertSame('http://127.0.0.1:8000/v1/workspaces/acme/sessions', (string) $transport->sent->getUri());
        self::assertSame('k_laravel', $transport->sent->getHeaderLine('X-Key-Id'));
        self::assertSame(64, strlen($transport->sent->getHeaderLine('X-Signature')));
        self::assertSame(
            [WaRayServiceProvider::configFile() => $this->app->configPath('wa-ray.php')],
            WaRayServiceProvider::pathsToPublish(WaRayServiceProvider::class, 'wa-ray-config'),
        );
    }
}
