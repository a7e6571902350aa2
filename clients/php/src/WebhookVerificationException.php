<?php

declare(strict_types=1);

namespace WaRay\Client;

/** A webhook delivery that must not be trusted: answer it with a 4xx and do not act on it. */
final class WebhookVerificationException extends \RuntimeException
{
}
