<?php

declare(strict_types=1);

namespace WaRay\Client\Laravel;

use Illuminate\Contracts\Container\Container;
use Illuminate\Contracts\Foundation\CachesRoutes;
use Illuminate\Support\ServiceProvider;
use Psr\Http\Client\ClientInterface;
use Psr\Http\Message\RequestFactoryInterface;
use Psr\Http\Message\StreamFactoryInterface;
use WaRay\Client\Client;
use WaRay\Client\Laravel\Events\WebhookReceived;
use WaRay\Client\WebhookVerifier;

/**
 * wa-ray in a Laravel app (8 and later): Client and WebhookVerifier as container singletons built from
 * config('wa-ray'), the config file to publish (tag `wa-ray-config`), the webhook route (POST
 * `wa-ray.webhook_path`, named `wa-ray.webhook`) and, when `wa-ray.relay` is on, the relay of session QR codes
 * and status changes to broadcasting.
 *
 * The HTTP transport is the app's own PSR-18 client and PSR-17 factories when the container binds them,
 * else Guzzle (which Laravel's HTTP client already requires). Nothing is resolved before it is used: a
 * missing key or secret fails when the Client or the verifier is first made, not at boot.
 */
final class WaRayServiceProvider extends ServiceProvider
{
    public function register(): void
    {
        $this->mergeConfigFrom(self::configFile(), 'wa-ray');
        $this->app->singleton(Client::class, static function (Container $app): Client {
            $config = $app->make('config');
            $http = $app->bound(ClientInterface::class) ? $app->make(ClientInterface::class)
                : new \GuzzleHttp\Client(['timeout' => (float) $config->get('wa-ray.timeout', 10)]);
            $requests = $app->bound(RequestFactoryInterface::class) ? $app->make(RequestFactoryInterface::class)
                : new \GuzzleHttp\Psr7\HttpFactory();
            $streams = $app->bound(StreamFactoryInterface::class) ? $app->make(StreamFactoryInterface::class)
                : new \GuzzleHttp\Psr7\HttpFactory();

            return new Client((string) $config->get('wa-ray.url'), (string) $config->get('wa-ray.key_id'),
                              (string) $config->get('wa-ray.secret'), $http, $requests, $streams);
        });
        $this->app->singleton(WebhookVerifier::class, static function (Container $app): WebhookVerifier {
            return new WebhookVerifier((string) $app->make('config')->get('wa-ray.webhook_secret'));
        });
    }

    public function boot(): void
    {
        if (method_exists($this->app, 'configPath')) {
            $this->publishes([self::configFile() => $this->app->configPath('wa-ray.php')], 'wa-ray-config');
        }
        $config = $this->app->make('config');
        $path = $config->get('wa-ray.webhook_path');
        if (is_string($path) && $path !== '' && !($this->app instanceof CachesRoutes && $this->app->routesAreCached())) {
            $this->app->make('router')->post($path, WebhookController::class)
                ->middleware((array) $config->get('wa-ray.webhook_middleware', []))
                ->name('wa-ray.webhook');
        }
        if ((bool) $config->get('wa-ray.relay', false)) {
            $this->app->make('events')->listen(WebhookReceived::class, [RelayToBroadcast::class, 'handle']);
        }
    }

    public static function configFile(): string
    {
        return dirname(__DIR__, 2) . '/config/wa-ray.php';
    }
}
