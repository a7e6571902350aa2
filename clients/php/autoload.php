<?php

declare(strict_types=1);

/*
 * Autoloader for installs without Composer (Debian packages): a PSR-4 loader for WaRay\Client\ over src/,
 * plus Debian's own autoloaders of the PSR interfaces and Guzzle when they are on the include path
 * (/usr/share/php). With Composer, use vendor/autoload.php instead; this file is then not needed.
 */

spl_autoload_register(static function (string $class): void {
    $prefix = 'WaRay\\Client\\';
    if (strncmp($class, $prefix, strlen($prefix)) !== 0) {
        return;
    }
    $file = __DIR__ . '/src/' . str_replace('\\', '/', substr($class, strlen($prefix))) . '.php';
    if (is_file($file)) {
        require $file;
    }
});

foreach ([
    'Psr/Http/Message/autoload.php',
    'Psr/Http/Message/factory-autoload.php',
    'Psr/Http/Client/autoload.php',
    'GuzzleHttp/Psr7/autoload.php',
    'GuzzleHttp/autoload.php',
] as $debianAutoload) {
    if (stream_resolve_include_path($debianAutoload) !== false) {
        require_once $debianAutoload;
    }
}
