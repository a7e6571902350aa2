<?php

declare(strict_types=1);

namespace WaRay\Client\Tests\Laravel;

require_once 'Illuminate/autoload.php';  // Debian's php-laravel-framework, from /usr/share/php

use Illuminate\Broadcasting\BroadcastManager;
use Illuminate\Broadcasting\BroadcastServiceProvider;
use Illuminate\Broadcasting\Broadcasters\Broadcaster;
use Illuminate\Bus\BusServiceProvider;
use Illuminate\Config\Repository;
use Illuminate\Contracts\Debug\ExceptionHandler;
use Illuminate\Contracts\Http\Kernel as KernelContract;
use Illuminate\Filesystem\FilesystemServiceProvider;
use Illuminate\Foundation\Application;
use Illuminate\Foundation\Http\Kernel;
use Illuminate\Http\Request;
use Symfony\Component\HttpFoundation\Response;
use WaRay\Client\Laravel\Events\WebhookReceived;
use WaRay\Client\Laravel\WaRayServiceProvider;

/**
 * A minimal real Laravel application for the integration's tests (LaravelIntegrationTest, laravel_webhook.php):
 * Debian's Illuminate container, config, events, filesystem, bus, broadcasting and HTTP kernel, with
 * WaRayServiceProvider registered as an app would. Broadcasts go through Laravel's BroadcastManager to a
 * recording broadcaster (what a Reverb/Pusher connection would be sent); WebhookReceived events are collected.
 */
final class TestApplication
{
    public readonly Application $app;
    public readonly RecordingBroadcaster $broadcaster;
    /** @var list<WebhookReceived> */
    public array $received = [];

    /** @param array<string, mixed> $waRay config('wa-ray') over test defaults (relay on) */
    public function __construct(array $waRay)
    {
        $app = new Application(sys_get_temp_dir());
        $app->instance('config', new Repository([
            'app' => ['debug' => false],
            'broadcasting' => ['default' => 'recording', 'connections' => ['recording' => ['driver' => 'recording']]],
            'wa-ray' => $waRay + ['relay' => true, 'url' => 'http://127.0.0.1:8000', 'key_id' => 'k_laravel',
                                  'secret' => 'laravel-test-secret'],
        ]));
        $app->singleton(ExceptionHandler::class, RethrowingHandler::class);
        $app->singleton(KernelContract::class, BareKernel::class);
        $app->register(FilesystemServiceProvider::class);
        $app->register(BusServiceProvider::class);
        $app->register(BroadcastServiceProvider::class);
        $broadcaster = new RecordingBroadcaster();
        $app->make(BroadcastManager::class)->extend('recording', static fn () => $broadcaster);
        $app->register(WaRayServiceProvider::class);
        $app['events']->listen(WebhookReceived::class, function (WebhookReceived $e): void {
            $this->received[] = $e;
        });
        $app->boot();
        $this->app = $app;
        $this->broadcaster = $broadcaster;
    }

    /** POST a delivery through the HTTP kernel, as the app's web server would hand it over. */
    public function post(string $body, array $headers, string $uri = '/wa-ray/webhook'): Response
    {
        $server = ['CONTENT_TYPE' => 'application/json'];
        foreach ($headers as $name => $value) {
            $server['HTTP_' . strtoupper(str_replace('-', '_', (string) $name))] = is_array($value) ? $value[0] : $value;
        }
        $kernel = $this->app->make(KernelContract::class);
        $request = Request::create($uri, 'POST', [], [], [], $server, $body);
        $response = $kernel->handle($request);
        $kernel->terminate($request, $response);

        return $response;
    }
}

/** Laravel's broadcaster contract, recording what a Pusher/Reverb connection would be sent. */
final class RecordingBroadcaster extends Broadcaster
{
    /** @var list<array{channels: list<string>, classes: list<string>, event: string, payload: array}> */
    public array $log = [];

    public function auth($request)
    {
    }

    public function validAuthenticationResponse($request, $result)
    {
    }

    public function broadcast(array $channels, $event, array $payload = [])
    {
        $this->log[] = ['channels' => array_map('strval', $channels), 'classes' => array_map('get_class', $channels),
                        'event' => $event, 'payload' => $payload];
    }
}

/** The HTTP kernel without the app bootstrappers (no .env, no config files): the test set the config itself. */
final class BareKernel extends Kernel
{
    protected $bootstrappers = [];
}

/** No rendering stack in this app: an exception fails the test with its own message. */
final class RethrowingHandler implements ExceptionHandler
{
    public function report(\Throwable $e)
    {
    }

    public function shouldReport(\Throwable $e)
    {
        return false;
    }

    public function render($request, \Throwable $e)
    {
        if ($e instanceof \Symfony\Component\HttpKernel\Exception\HttpExceptionInterface) {
            return new \Illuminate\Http\Response('', $e->getStatusCode());
        }
        throw $e;
    }

    public function renderForConsole($output, \Throwable $e)
    {
        throw $e;
    }
}
