<?php

declare(strict_types=1);

/*
 * The PHP client against a running wa-ray, one step per invocation (tests/php/test_php_client.py drives it):
 *   php e2e.php create <sid>                     createSession; prints the record
 *   php e2e.php qr <sid>                         sessionQr; prints {qr, since}
 *   php e2e.php send <sid> <to> <text> <idem>    waits for `connected`, sends the text twice under one
 *                                                idempotency key, waits for a final status; prints a summary
 *   php e2e.php media <sid> <to>                 uploads a PNG, reads it back, sends it as an image, waits for
 *                                                a final status; lists chats, checks the number, reads the provider
 *   php e2e.php extras <sid> <to>                a connected session's chat messages, read, presence and groups;
 *                                                the webhook policy and dead letters; a draft campaign's life
 *                                                (recipients as CSV, a bad CSV, a refused pause, cancel, delete)
 *   php e2e.php endpoint <url>                   createWebhookEndpoint (message.* events, batches of up to 5, a
 *                                                header), list, update, get; prints them with the generated secret
 *   php e2e.php endpoint-end <id>                the endpoint's dead letters and replay, delete, then get is 404
 *   php e2e.php delete <sid>                     deleteSession, then getSession must be 404 `not_found`
 *   php e2e.php webhook <url> <secret>           putWebhook
 * Environment: WA_RAY_URL, WA_RAY_KEY_ID, WA_RAY_SECRET, WA_RAY_WS. Output: one JSON document on stdout.
 * Exit 0 on success; 3 on an ApiException (its status and code printed); 1 on any other failure.
 */

require __DIR__ . '/../autoload.php';

use GuzzleHttp\Psr7\HttpFactory;
use WaRay\Client\ApiException;
use WaRay\Client\Client;

function env(string $name): string
{
    $value = getenv($name);
    if ($value === false || $value === '') {
        throw new RuntimeException("$name is not set");
    }

    return $value;
}

function out(mixed $value): void
{
    echo json_encode($value, JSON_THROW_ON_ERROR | JSON_UNESCAPED_SLASHES), "\n";
}

function check(bool $ok, string $what): void
{
    if (!$ok) {
        throw new RuntimeException("check failed: $what");
    }
}

/** @return array<string, mixed> */
function waitFor(Client $api, string $ws, string $sid, string $state, float $timeoutS): array
{
    $deadline = microtime(true) + $timeoutS;
    do {
        $record = $api->getSession($ws, $sid);
        if ($record['state'] === $state) {
            return $record;
        }
        usleep(200_000);
    } while (microtime(true) < $deadline);
    throw new RuntimeException("session $sid never reached $state; last: " . json_encode($record));
}

/** @return array<string, mixed> the message once its status is final (or the last seen after 60 s) */
function waitMessage(Client $api, string $ws, string $messageId): array
{
    $deadline = microtime(true) + 60;
    do {
        $message = $api->getMessage($ws, $messageId);
        if (in_array($message['status'], ['sent', 'delivered', 'read', 'failed'], true)) {
            break;
        }
        usleep(200_000);
    } while (microtime(true) < $deadline);

    return $message;
}

/** @return array{status: int, code: string, details: array}|null the ApiException a call threw, null if none */
function errorOf(Closure $call): ?array
{
    try {
        $call();
    } catch (ApiException $e) {
        return ['status' => $e->status, 'code' => $e->errorCode, 'details' => $e->details];
    }

    return null;
}

function run(array $argv): void
{
    $factory = new HttpFactory();
    $http = new GuzzleHttp\Client(['timeout' => 30]);
    $api = new Client(env('WA_RAY_URL'), env('WA_RAY_KEY_ID'), env('WA_RAY_SECRET'), $http, $factory, $factory);
    $ws = env('WA_RAY_WS');
    $step = $argv[1] ?? '';

    switch ($step) {
        case 'create':
            out($api->createSession($ws, $argv[2]));
            break;

        case 'qr':
            out($api->sessionQr($ws, $argv[2]));
            break;

        case 'send':
            [, , $sid, $to, $text, $idem] = $argv;
            $connected = waitFor($api, $ws, $sid, 'connected', 60);
            $first = $api->sendText($ws, $to, $text, $sid, $idem);
            $again = $api->sendText($ws, $to, $text, $sid, $idem);  // a retry: the same message, not a second
            check($first['message_id'] === $again['message_id'], 'an idempotent retry answers the first message');
            $batch = $api->sendBatch($ws, [['to' => $to, 'text' => "$text (batch)", 'session_id' => $sid,
                                             'idempotency_key' => "$idem-batch"], ['to' => 'x', 'text' => 'bad']]);
            check(array_column($batch['results'], 'status') === [202, 422], 'a batch answers each item');
            $message = waitMessage($api, $ws, $first['message_id']);
            $listed = array_column($api->listSessions($ws), 'session_id');
            try {
                $api->sessionQr($ws, $sid);
                $qrError = null;
            } catch (ApiException $e) {
                $qrError = ['status' => $e->status, 'code' => $e->errorCode];
            }
            try {
                $api->getMessage($ws, 'msg_does_not_exist');
                $missing = null;
            } catch (ApiException $e) {
                $missing = ['status' => $e->status, 'code' => $e->errorCode];
            }
            $token = $api->createStreamToken($ws, 60, $sid);
            out([
                'me' => $connected['me'] ?? null,
                'message_id' => $first['message_id'],
                'accepted' => $first['status'],
                'status' => $message['status'],
                'message' => $message,
                'listed' => $listed,
                'qr_error' => $qrError,
                'missing_message' => $missing,
                'stream_token' => ['workspace_id' => $token['workspace_id'], 'session_id' => $token['session_id'],
                                   'has_token' => is_string($token['token']) && $token['token'] !== '',
                                   'expires_at' => $token['expires_at']],
            ]);
            break;

        case 'media':
            [, , $sid, $to] = $argv;
            $png = hex2bin('89504e470d0a1a0a0000000d4948445200000001000000010806000000'
                . '1f15c4890000000d49444154789c6360000002000001e221bc330000000049454e44ae426082');
            $media = $api->uploadMedia($ws, $png, 'image/png', 'pixel.png');
            check($media['sha256'] === hash('sha256', $png) && $media['size'] === strlen($png), 'the upload is stored as sent');
            check($api->getMedia($ws, $media['media_id']) === $png, 'the media reads back byte for byte');
            $accepted = $api->sendImage($ws, $to, $media['media_id'], 'from php', ['session_id' => $sid]);
            $message = waitMessage($api, $ws, $accepted['message_id']);
            out([
                'media' => $media,
                'message' => $message,
                'chats' => array_column($api->listChats($ws, $sid)['items'], 'id'),
                'contacts_page' => array_keys($api->listContacts($ws, $sid, limit: 5)),
                'exists' => $api->numberExists($ws, $sid, $to),
                'provider' => $api->getProvider($ws),
            ]);
            break;

        case 'extras':
            [, , $sid, $to] = $argv;
            $chat = $to . '@c.us';
            $page = $api->listChatMessages($ws, $sid, $chat, limit: 5);
            $policy = $api->putWebhookPolicy($ws, maxAttempts: 4, baseDelayS: 0.5);
            $campaign = $api->createCampaign($ws, ['name' => 'php draft', 'draft' => true,
                                                   'message' => ['type' => 'text', 'text' => 'Hi {{name}}']]);
            $cid = $campaign['campaign_id'];
            $added = $api->addCampaignRecipients($ws, $cid, "phone,name\n{$to},Ada\n");
            out([
                'messages' => ['keys' => array_keys($page), 'texts' => array_column($page['items'], 'text')],
                'read' => $api->markChatRead($ws, $sid, $chat),
                'presence' => $api->setPresence($ws, $sid, $chat, 'typing'),
                'groups' => array_keys($api->listGroups($ws, $sid)),
                'policy' => $policy,
                'policy_read' => $api->getWebhookPolicy($ws),
                'dead_letters' => $api->listDeadLetters($ws, 0, 10),
                'replayed' => $api->replayDeadLetters($ws),
                'campaign' => ['status' => $campaign['status'], 'added' => $added,
                               'bad_csv' => errorOf(static fn () => $api->addCampaignRecipients($ws, $cid, "phone\nnot-a-phone\n")),
                               'pause' => errorOf(static fn () => $api->pauseCampaign($ws, $cid)),
                               'read' => $api->getCampaign($ws, $cid)['totals']['recipients'],
                               'listed' => in_array($cid, array_column($api->listCampaigns($ws), 'campaign_id'), true),
                               'cancelled' => $api->cancelCampaign($ws, $cid)['status']],
            ]);
            $api->deleteCampaign($ws, $cid);
            check(errorOf(static fn () => $api->getCampaign($ws, $cid))['status'] === 404, 'the deleted campaign is gone');
            break;

        case 'endpoint':
            $created = $api->createWebhookEndpoint($ws, $argv[2], events: ['message.*'], headers: ['X-Tenant' => 'php'],
                                                   batch: ['max_events' => 5, 'max_wait_ms' => 200], description: 'from php');
            out([
                'created' => $created,
                'listed' => array_column($api->listWebhookEndpoints($ws), 'id'),
                'updated' => $api->updateWebhookEndpoint($ws, $created['id'], ['description' => 'from php, updated']),
                'read' => $api->getWebhookEndpoint($ws, $created['id']),
            ]);
            break;

        case 'endpoint-end':
            $id = $argv[2];
            $deadLetters = $api->listWebhookEndpointDeadLetters($ws, $id, 0, 10);
            $replayed = $api->replayWebhookEndpointDeadLetters($ws, $id);
            $api->deleteWebhookEndpoint($ws, $id);
            out([
                'dead_letters' => $deadLetters,
                'replayed' => $replayed,
                'after' => errorOf(static fn () => $api->getWebhookEndpoint($ws, $id)),
                'unknown_replay' => errorOf(static fn () => $api->replayWebhookEndpointDeadLetters($ws, $id, ['1-0'])),
            ]);
            break;

        case 'delete':
            $api->deleteSession($ws, $argv[2]);
            try {
                $api->getSession($ws, $argv[2]);
                throw new RuntimeException('the deleted session is still there');
            } catch (ApiException $e) {
                out(['deleted' => true, 'after' => ['status' => $e->status, 'code' => $e->errorCode]]);
            }
            break;

        case 'webhook':
            $api->putWebhook($ws, $argv[2], $argv[3]);
            out(['webhook' => 'set']);
            break;

        default:
            throw new RuntimeException("unknown step '$step'");
    }
}

try {
    run($argv);
} catch (ApiException $e) {
    out(['error' => ['status' => $e->status, 'code' => $e->errorCode, 'message' => $e->getMessage()]]);
    exit(3);
} catch (Throwable $e) {
    fwrite(STDERR, get_class($e) . ': ' . $e->getMessage() . "\n");
    exit(1);
}
