<?php

declare(strict_types=1);

namespace WaRay\Client\Tests;

use GuzzleHttp\Psr7\HttpFactory;
use PHPUnit\Framework\TestCase;
use WaRay\Client\RequestSigner;

/**
 * Vectors produced by the Python side (wa_ray.signing.HmacAuth on an httpx request, its own timestamp and
 * nonce read back from the headers it set): the PHP signer must give the same X-Signature byte for byte.
 */
final class RequestSignerTest extends TestCase
{
    private const KEY_ID = 'k_vector';
    private const SECRET = 's3cr3t-for-the-php-vector';
    private const TS = 1796583513;
    // {"to": "15550001111", "text": "héllo / wörld ✓"} as httpx sent it (UTF-8, spaces after separators)
    private const BODY_HEX = '7b22746f223a20223135353530303031313131222c202274657874223a202268c3a96c6c6f202f2077c3b6726c6420e29c93227d';

    public function testPostWithAUtf8BodyMatchesHmacAuth(): void
    {
        $f = new HttpFactory();
        $request = $f->createRequest('post', 'http://127.0.0.1:8000/v1/workspaces/acme/messages')
            ->withBody($f->createStream(hex2bin(self::BODY_HEX)));
        $signed = (new RequestSigner(self::KEY_ID, self::SECRET))->sign($request, self::TS, 'e2d81d7303cf3c1f962f5da2');

        self::assertSame('16ad43c6143064f0b75b746995fd9e79340dbde8b16f6bcf6cdaf3933e6feead', $signed->getHeaderLine('X-Signature'));
        self::assertSame('f285098d2d99f57733f6d6d0555016b083964acebb70fa87be00f8704f4d23a7', $signed->getHeaderLine('X-Content-SHA256'));
        self::assertSame(self::KEY_ID, $signed->getHeaderLine('X-Key-Id'));
        self::assertSame((string) self::TS, $signed->getHeaderLine('X-Timestamp'));
        self::assertSame('e2d81d7303cf3c1f962f5da2', $signed->getHeaderLine('X-Nonce'));
        self::assertSame(hex2bin(self::BODY_HEX), (string) $signed->getBody(), 'signing must not consume the body');
    }

    public function testGetWithAnEncodedQueryMatchesHmacAuth(): void
    {
        $request = (new HttpFactory())->createRequest('GET', 'http://127.0.0.1:8000/v1/workspaces/acme/sessions/s1/qr?format=raw&x=a%20b');
        $signed = (new RequestSigner(self::KEY_ID, self::SECRET))->sign($request, self::TS, '4d066de7152257cf97ff5772');

        self::assertSame('51fb5fded3c0bdd91dce54c2826aef75bc3160fffce89ae301f7129394d1f7f5', $signed->getHeaderLine('X-Signature'));
        self::assertSame(hash('sha256', ''), $signed->getHeaderLine('X-Content-SHA256'));
    }

    public function testCanonicalStringLayout(): void
    {
        self::assertSame(
            "1796583513\nn1\nPOST\n/v1/workspaces/acme/messages?a=1\n" . hash('sha256', 'x'),
            RequestSigner::canonical('1796583513', 'n1', 'post', '/v1/workspaces/acme/messages?a=1', hash('sha256', 'x')),
        );
    }

    public function testEveryRequestGetsAFreshNonceAndTheCurrentTime(): void
    {
        $signer = new RequestSigner(self::KEY_ID, self::SECRET);
        $request = (new HttpFactory())->createRequest('GET', 'http://127.0.0.1/v1/workspaces');
        $a = $signer->sign($request);
        $b = $signer->sign($request);

        self::assertNotSame($a->getHeaderLine('X-Nonce'), $b->getHeaderLine('X-Nonce'));
        self::assertMatchesRegularExpression('/^[0-9a-f]{24}$/', $a->getHeaderLine('X-Nonce'));
        self::assertEqualsWithDelta(time(), (int) $a->getHeaderLine('X-Timestamp'), 2);
    }
}
