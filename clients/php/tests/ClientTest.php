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

    public function testEachKindHasATypedMethodThatPostsItsBody(): void
    {
        $accepted = '{"message_id":"msg_1","status":"queued","provider":"webjs"}';
        $t = self::transport(array_fill(0, 11, new Response(202, [], $accepted)));
        $c = self::client($t);
        $to = '15550001111';
        $c->sendImage('acme', $to, 'med_0123456789abcdef01234567', 'look', ['session_id' => 's1']);
        $c->sendVideo('acme', $to, 'https://cdn.example.com/v.mp4');
        $c->sendAudio('acme', $to, 'med_a');
        $c->sendVoice('acme', $to, 'med_v', ['priority' => 'high'], 'voice-1');
        $c->sendDocument('acme', $to, 'med_d', 'invoice.pdf', 'your invoice');
        $c->sendSticker('acme', $to, 'med_s');
        $c->sendLocation('acme', $to, 52.52, 13.405, 'Office', 'Main St 1');
        $c->sendContacts('acme', $to, [['name' => ['formatted_name' => 'Ana'], 'phones' => [['phone' => '+1555']]]]);
        $c->sendReaction('acme', $to, 'msg_1', "\u{1F44D}");
        $c->sendPoll('acme', $to, 'Lunch?', ['yes', 'no'], true, ['reply_to' => 'msg_1']);
        $c->sendTemplate('acme', $to, 'hello_world', 'en_US');

        $bodies = array_map(static fn ($r) => json_decode((string) $r->getBody(), true), $t->sent);
        self::assertSame(['image', 'video', 'audio', 'voice', 'document', 'sticker', 'location', 'contacts',
                          'reaction', 'poll', 'template'], array_column($bodies, 'type'));
        self::assertSame(['type' => 'image', 'to' => $to, 'media' => ['media_id' => 'med_0123456789abcdef01234567'],
                          'caption' => 'look', 'session_id' => 's1'], $bodies[0]);
        self::assertSame(['type' => 'video', 'to' => $to, 'media' => ['url' => 'https://cdn.example.com/v.mp4']],
                         $bodies[1], 'a null field is left out');
        self::assertSame('voice-1', $t->sent[3]->getHeaderLine('Idempotency-Key'));
        self::assertSame('high', $bodies[3]['priority']);
        self::assertSame(['invoice.pdf', 'your invoice'], [$bodies[4]['filename'], $bodies[4]['caption']]);
        self::assertSame([52.52, 13.405, 'Office', 'Main St 1'],
                         [$bodies[6]['latitude'], $bodies[6]['longitude'], $bodies[6]['name'], $bodies[6]['address']]);
        self::assertSame('Ana', $bodies[7]['contacts'][0]['name']['formatted_name']);
        self::assertSame(['msg_1', "\u{1F44D}"], [$bodies[8]['message_id'], $bodies[8]['emoji']]);
        self::assertSame([['yes', 'no'], true, 'msg_1'],
                         [$bodies[9]['options'], $bodies[9]['allow_multiple'], $bodies[9]['reply_to']]);
        self::assertSame(['hello_world', 'en_US', []],
                         [$bodies[10]['name'], $bodies[10]['language'], $bodies[10]['components']]);
        foreach ($t->sent as $r) {
            self::assertSame('/v1/workspaces/acme/messages', $r->getUri()->getPath());
            self::assertSignedCorrectly($r);
        }
    }

    public function testSendBatchPostsTheItemsAndReadsEachResult(): void
    {
        $answer = '{"accepted":1,"refused":1,"results":[{"index":0,"status":202,"message_id":"msg_1",'
            . '"provider":"webjs"},{"index":1,"status":422,"error":{"code":"validation_error","message":"m",'
            . '"details":{}}}]}';
        $t = self::transport([new Response(200, [], $answer)]);
        $out = self::client($t)->sendBatch('acme', [
            ['to' => '15550001111', 'text' => 'one', 'idempotency_key' => 'k-1'],
            ['to' => 'bad', 'text' => 'two'],
        ]);

        self::assertSame([202, 422], array_column($out['results'], 'status'));
        $r = $t->sent[0];
        self::assertSame('/v1/workspaces/acme/messages:batch', $r->getUri()->getPath());
        self::assertSame('k-1', json_decode((string) $r->getBody(), true)['messages'][0]['idempotency_key']);
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

    public function testCampaignCreateAndListReadTheirAnswers(): void
    {
        $t = self::transport([new Response(201, [], '{"campaign_id":"cmp_1","status":"running"}'),
                              new Response(200, [], '{"campaigns":[{"campaign_id":"cmp_1"}]}'),
                              new Response(200, [], '{"campaign_id":"cmp_1","status":"running"}')]);
        $c = self::client($t);
        $body = ['name' => 'Spring', 'message' => ['type' => 'text', 'text' => 'Hi {{name}}'],
                 'recipients' => [['to' => '15550001111', 'variables' => ['name' => 'Ada']]]];
        self::assertSame('cmp_1', $c->createCampaign('acme', $body)['campaign_id']);
        self::assertSame([['campaign_id' => 'cmp_1']], $c->listCampaigns('acme', 10));
        self::assertSame('running', $c->getCampaign('acme', 'cmp_1')['status']);

        self::assertSame(['POST', '/v1/workspaces/acme/campaigns'], [$t->sent[0]->getMethod(), $t->sent[0]->getUri()->getPath()]);
        self::assertSame($body, json_decode((string) $t->sent[0]->getBody(), true));
        self::assertSame('application/json', $t->sent[0]->getHeaderLine('Content-Type'));
        self::assertSame('limit=10', $t->sent[1]->getUri()->getQuery());
        self::assertSame('/v1/workspaces/acme/campaigns/cmp_1', $t->sent[2]->getUri()->getPath());
        foreach ($t->sent as $r) {
            self::assertSignedCorrectly($r);
        }
    }

    public function testCampaignLifecycleCallsAreBodilessPosts(): void
    {
        $answers = array_map(static fn () => new Response(200, [], '{"status":"x"}'), range(1, 4));
        $t = self::transport([...$answers, new Response(204)]);
        $c = self::client($t);
        $c->startCampaign('acme', 'cmp/1');
        $c->pauseCampaign('acme', 'cmp/1');
        $c->resumeCampaign('acme', 'cmp/1');
        $c->cancelCampaign('acme', 'cmp/1');
        $c->deleteCampaign('acme', 'cmp/1');

        $seen = array_map(static fn (RequestInterface $r): string => $r->getMethod() . ' ' . $r->getUri()->getPath(), $t->sent);
        self::assertSame([
            'POST /v1/workspaces/acme/campaigns/cmp%2F1/start',
            'POST /v1/workspaces/acme/campaigns/cmp%2F1/pause',
            'POST /v1/workspaces/acme/campaigns/cmp%2F1/resume',
            'POST /v1/workspaces/acme/campaigns/cmp%2F1/cancel',
            'DELETE /v1/workspaces/acme/campaigns/cmp%2F1',
        ], $seen);
        foreach ($t->sent as $r) {
            self::assertSame('', (string) $r->getBody());
            self::assertSignedCorrectly($r);
        }
    }

    public function testCampaignRecipientsGoAsSignedCsv(): void
    {
        $csv = "phone,name\n15550001111,Ada\n15550002222,Grace\n";
        $t = self::transport([new Response(200, [], '{"added":2,"recipients":2}')]);
        self::assertSame(['added' => 2, 'recipients' => 2], self::client($t)->addCampaignRecipients('acme', 'cmp_1', $csv));

        $r = $t->sent[0];
        self::assertSame('/v1/workspaces/acme/campaigns/cmp_1/recipients', $r->getUri()->getPath());
        self::assertSame('text/csv; charset=utf-8', $r->getHeaderLine('Content-Type'));
        self::assertSame($csv, (string) $r->getBody());
        self::assertSame(hash('sha256', $csv), $r->getHeaderLine('X-Content-SHA256'));
        self::assertSignedCorrectly($r);
    }

    public function testChatRoutesEncodeTheChatIdAndCarryTheirBodies(): void
    {
        $t = self::transport([new Response(200, [], '{"items":[],"has_more":false,"before_cursor":null,"after_cursor":null}'),
                              new Response(200, [], '{"chat_id":"15550001111@c.us"}'),
                              new Response(200, [], '{"chat_id":"15550001111@c.us","state":"typing"}'),
                              new Response(200, [], '{"group_id":"1203@g.us","items":[]}')]);
        $c = self::client($t);
        $c->listChatMessages('acme', 's1', '15550001111@c.us', before: 'abc_-', limit: 20);
        $c->markChatRead('acme', 's1', '15550001111@c.us');
        self::assertSame('typing', $c->setPresence('acme', 's1', '15550001111@c.us', 'typing')['state']);
        $c->groupParticipants('acme', 's1', '1203@g.us');

        self::assertSame('/v1/workspaces/acme/sessions/s1/chats/15550001111%40c.us/messages', $t->sent[0]->getUri()->getPath());
        self::assertSame('before=abc_-&limit=20', $t->sent[0]->getUri()->getQuery());
        self::assertSame(['POST', '/v1/workspaces/acme/sessions/s1/chats/15550001111%40c.us/read', ''],
                         [$t->sent[1]->getMethod(), $t->sent[1]->getUri()->getPath(), (string) $t->sent[1]->getBody()]);
        self::assertSame('/v1/workspaces/acme/sessions/s1/chats/15550001111%40c.us/presence', $t->sent[2]->getUri()->getPath());
        self::assertSame('{"state":"typing"}', (string) $t->sent[2]->getBody());
        self::assertSame('/v1/workspaces/acme/sessions/s1/groups/1203%40g.us/participants', $t->sent[3]->getUri()->getPath());
        foreach ($t->sent as $r) {
            self::assertSignedCorrectly($r);
        }
    }

    public function testWebhookPolicyDeadLettersAndReplay(): void
    {
        $t = self::transport([new Response(200, [], '{"max_attempts":5,"base_delay_s":1.0,"max_delay_s":60.0}'),
                              new Response(200, [], '{"total":0,"items":[]}'),
                              new Response(200, [], '{"replayed":3}'),
                              new Response(200, [], '{"replayed":1}')]);
        $c = self::client($t);
        self::assertSame(5, $c->putWebhookPolicy('acme', maxAttempts: 5)['max_attempts']);
        $c->listDeadLetters('acme', offset: 10, limit: 5);
        self::assertSame(3, $c->replayDeadLetters('acme')['replayed']);
        $c->replayDeadLetters('acme', ['1700000000000-0']);

        self::assertSame(['PUT', '/v1/workspaces/acme/webhook/policy', '{"max_attempts":5}'],
                         [$t->sent[0]->getMethod(), $t->sent[0]->getUri()->getPath(), (string) $t->sent[0]->getBody()]);
        self::assertSame('offset=10&limit=5', $t->sent[1]->getUri()->getQuery());
        self::assertSame('/v1/workspaces/acme/webhook/dead-letters/replay', $t->sent[2]->getUri()->getPath());
        self::assertSame('{}', (string) $t->sent[2]->getBody(), 'replay all: an empty object, not []');
        self::assertSame('{"event_ids":["1700000000000-0"]}', (string) $t->sent[3]->getBody());
        foreach ($t->sent as $r) {
            self::assertSignedCorrectly($r);
        }
    }

    public function testWebhookEndpointsCrud(): void
    {
        $endpoint = '{"id":"whe_1","url":"https://app.example/hooks","events":["message.*"],"header_names":["X-Tenant"],'
            . '"batch":{"max_events":50,"max_wait_ms":500},"description":"crm","created_at":1765000000.0,"secret":"whsec_AAAA"}';
        $t = self::transport([new Response(201, [], $endpoint), new Response(200, [], '{"items":[' . $endpoint . ']}'),
                              new Response(200, [], $endpoint), new Response(200, [], $endpoint), new Response(204)]);
        $c = self::client($t);
        $created = $c->createWebhookEndpoint('acme', 'https://app.example/hooks', events: ['message.*'],
            headers: ['X-Tenant' => 't1'], batch: ['max_events' => 50, 'max_wait_ms' => 500], description: 'crm');
        self::assertSame('whsec_AAAA', $created['secret']);
        self::assertSame(['whe_1'], array_column($c->listWebhookEndpoints('acme'), 'id'));
        $c->getWebhookEndpoint('acme', 'whe_1');
        $c->updateWebhookEndpoint('acme', 'whe_1', ['headers' => [], 'batch' => null]);
        $c->deleteWebhookEndpoint('acme', 'whe_1');

        self::assertSame(['POST', '/v1/workspaces/acme/webhooks'], [$t->sent[0]->getMethod(), $t->sent[0]->getUri()->getPath()]);
        self::assertSame(['url' => 'https://app.example/hooks', 'events' => ['message.*'], 'headers' => ['X-Tenant' => 't1'],
                          'batch' => ['max_events' => 50, 'max_wait_ms' => 500], 'description' => 'crm'],
                         json_decode((string) $t->sent[0]->getBody(), true), 'no secret: the service makes one');
        self::assertSame(['GET', '/v1/workspaces/acme/webhooks'], [$t->sent[1]->getMethod(), $t->sent[1]->getUri()->getPath()]);
        self::assertSame(['GET', '/v1/workspaces/acme/webhooks/whe_1'], [$t->sent[2]->getMethod(), $t->sent[2]->getUri()->getPath()]);
        self::assertSame('PATCH', $t->sent[3]->getMethod());
        self::assertSame('{"headers":{},"batch":null}', (string) $t->sent[3]->getBody(), 'emptied headers stay an object');
        self::assertSame(['DELETE', '/v1/workspaces/acme/webhooks/whe_1'], [$t->sent[4]->getMethod(), $t->sent[4]->getUri()->getPath()]);
        foreach ($t->sent as $r) {
            self::assertSignedCorrectly($r);
        }
    }

    public function testWebhookEndpointSecretAndItsDeadLetters(): void
    {
        $t = self::transport([new Response(201, [], '{"id":"whe_2"}'), new Response(200, [], '{"total":1,"items":[]}'),
                              new Response(200, [], '{"replayed":0}'), new Response(404, [], '{"error":{"code":"not_found","message":"no such endpoint","details":{}}}')]);
        $c = self::client($t);
        $secret = 'whsec_' . base64_encode(random_bytes(32));
        $c->createWebhookEndpoint('acme', 'https://app.example/h', $secret);
        self::assertSame(1, $c->listWebhookEndpointDeadLetters('acme', 'whe_2', 0, 10)['total']);
        $c->replayWebhookEndpointDeadLetters('acme', 'whe_2');
        try {
            $c->replayWebhookEndpointDeadLetters('acme', 'whe_x', ['1-0']);
            self::fail('no exception');
        } catch (ApiException $e) {
            self::assertSame([404, 'not_found'], [$e->status, $e->errorCode]);
        }

        self::assertSame(['url' => 'https://app.example/h', 'secret' => $secret], json_decode((string) $t->sent[0]->getBody(), true));
        self::assertSame('/v1/workspaces/acme/webhooks/whe_2/dead-letters', $t->sent[1]->getUri()->getPath());
        self::assertSame('offset=0&limit=10', $t->sent[1]->getUri()->getQuery());
        self::assertSame(['/v1/workspaces/acme/webhooks/whe_2/dead-letters/replay', '{}'],
                         [$t->sent[2]->getUri()->getPath(), (string) $t->sent[2]->getBody()]);
        self::assertSame('{"event_ids":["1-0"]}', (string) $t->sent[3]->getBody());
        foreach ($t->sent as $r) {
            self::assertSignedCorrectly($r);
        }
    }
}
