<?php

declare(strict_types=1);

namespace WaRay\Client\Tests;

use GuzzleHttp\Psr7\HttpFactory;
use GuzzleHttp\Psr7\Response;
use PHPUnit\Framework\TestCase;
use Psr\Http\Client\ClientInterface;
use Psr\Http\Message\RequestInterface;
use Psr\Http\Message\ResponseInterface;
use WaRay\Client\ApiException;
use WaRay\Client\Client;
use WaRay\Client\RequestSigner;

/**
 * The request each method builds and how each answer is read, over an in-memory PSR-18 transport (the
 * live service is exercised by tests/php/test_php_client.py).
 */
final class ClientTest extends TestCase
{
    private const SECRET = 'client-test-secret';

    /** @param list<ResponseInterface> $answers */
    private static function transport(array $answers): ClientInterface
    {
        return new class ($answers) implements ClientInterface {
            /** @var list<RequestInterface> */
            public array $sent = [];

            /** @param list<ResponseInterface> $answers */
            public function __construct(private array $answers)
            {
            }

            public function sendRequest(RequestInterface $request): ResponseInterface
            {
                $this->sent[] = $request;

                return array_shift($this->answers) ?? new Response(500);
            }
        };
    }

    private static function client(ClientInterface $transport): Client
    {
        $f = new HttpFactory();

        return new Client('http://127.0.0.1:8000/', 'k1', self::SECRET, $transport, $f, $f);
    }

    private static function assertSignedCorrectly(RequestInterface $r): void
    {
        $expected = RequestSigner::signature(
            self::SECRET,
            $r->getHeaderLine('X-Timestamp'),
            $r->getHeaderLine('X-Nonce'),
            $r->getMethod(),
            RequestSigner::pathQuery($r),
            hash('sha256', (string) $r->getBody()),
        );
        self::assertSame($expected, $r->getHeaderLine('X-Signature'));
        self::assertSame('k1', $r->getHeaderLine('X-Key-Id'));
    }

    public function testSendTextPostsTheBodyWithItsIdempotencyKey(): void
    {
        $t = self::transport([new Response(202, [], '{"message_id":"msg_1","status":"queued","provider":"webjs"}')]);
        $out = self::client($t)->sendText('acme', '15550001111', 'hi', 's1', 'order-42');

        self::assertSame('msg_1', $out['message_id']);
        $r = $t->sent[0];
        self::assertSame('POST', $r->getMethod());
        self::assertSame('/v1/workspaces/acme/messages', $r->getUri()->getPath());
        self::assertSame('order-42', $r->getHeaderLine('Idempotency-Key'));
        self::assertSame(['to' => '15550001111', 'text' => 'hi', 'session_id' => 's1'], json_decode((string) $r->getBody(), true));
        self::assertSignedCorrectly($r);
    }

    public function testIdsAreEncodedSoTheyCannotChangeTheRoute(): void
    {
        $t = self::transport([new Response(200, [], '{"state":"connected"}')]);
        self::client($t)->getSession('acme', '../x?y');

        self::assertSame('/v1/workspaces/acme/sessions/..%2Fx%3Fy', $t->sent[0]->getUri()->getPath());
        self::assertSame('', $t->sent[0]->getUri()->getQuery());
        self::assertSignedCorrectly($t->sent[0]);
    }

    public function testAnErrorAnswerBecomesAnApiException(): void
    {
        $body = '{"error":{"code":"no_qr","message":"session is not waiting for a QR scan","details":{"state":"connected"}}}';
        $t = self::transport([new Response(409, ['Content-Type' => 'application/json'], $body)]);
        try {
            self::client($t)->sessionQr('acme', 's1');
            self::fail('no exception');
        } catch (ApiException $e) {
            self::assertSame(409, $e->status);
            self::assertSame('no_qr', $e->errorCode);
            self::assertSame('session is not waiting for a QR scan', $e->getMessage());
            self::assertSame(['state' => 'connected'], $e->details);
        }
        self::assertSame('format=raw', $t->sent[0]->getUri()->getQuery());
        self::assertSignedCorrectly($t->sent[0]);
    }

    public function testAnErrorWithoutTheShapeStillThrows(): void
    {
        $t = self::transport([new Response(502, [], '<html>bad gateway</html>')]);
        $this->expectException(ApiException::class);
        $this->expectExceptionCode(502);
        self::client($t)->listSessions('acme');
    }

    public function testNoContentAnswersAndEmptyBodies(): void
    {
        $t = self::transport([new Response(204), new Response(204)]);
        $c = self::client($t);
        $c->deleteSession('acme', 's1');
        $c->putWebhook('acme', 'https://app.example/hooks/wa', 'whsec_' . base64_encode(random_bytes(24)));

        self::assertSame('DELETE', $t->sent[0]->getMethod());
        self::assertSame('', (string) $t->sent[0]->getBody());
        self::assertSame('PUT', $t->sent[1]->getMethod());
        self::assertSame('/v1/workspaces/acme/webhook', $t->sent[1]->getUri()->getPath());
        self::assertSignedCorrectly($t->sent[0]);
        self::assertSignedCorrectly($t->sent[1]);
    }
    public function testUploadMediaSendsOneSignedFilePart(): void
    {
        $png = "\x89PNG\r\n\x1a\n" . random_bytes(32);
        $t = self::transport([new Response(201, [], '{"media_id":"med_1","mimetype":"image/png","size":40}')]);
        $out = self::client($t)->uploadMedia('acme', $png, 'image/png', "a\"b\r\n.png");

        self::assertSame('med_1', $out['media_id']);
        $r = $t->sent[0];
        self::assertSame('/v1/workspaces/acme/media', $r->getUri()->getPath());
        self::assertSame(1, preg_match('/^multipart\/form-data; boundary=(wa-ray-[0-9a-f]{32})$/', $r->getHeaderLine('Content-Type'), $m));
        $body = (string) $r->getBody();
        self::assertSame(
            "--{$m[1]}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a%22b.png\"\r\n"
            . "Content-Type: image/png\r\n\r\n$png\r\n--{$m[1]}--\r\n",
            $body,
        );
        self::assertSame(hash('sha256', $body), $r->getHeaderLine('X-Content-SHA256'));
        self::assertSignedCorrectly($r);
    }

    public function testAMimetypeCannotInjectHeaders(): void
    {
        $this->expectException(\InvalidArgumentException::class);
        self::client(self::transport([]))->uploadMedia('acme', 'x', "image/png\r\nX-Evil: 1");
    }

    public function testListQueriesCarryOnlyTheParametersGiven(): void
    {
        $t = self::transport([new Response(200, [], '{"items":[],"next_cursor":null}'),
                              new Response(200, [], '{"items":[],"next_cursor":null}')]);
        $c = self::client($t);
        $c->listContacts('acme', 's1', 'Ada Lovelace & co');
        $c->listChats('acme', 's1');

        self::assertSame('/v1/workspaces/acme/sessions/s1/contacts', $t->sent[0]->getUri()->getPath());
        self::assertSame('q=Ada%20Lovelace%20%26%20co&limit=50', $t->sent[0]->getUri()->getQuery());
        self::assertSame('limit=50', $t->sent[1]->getUri()->getQuery());
        self::assertSignedCorrectly($t->sent[0]);
    }
}
