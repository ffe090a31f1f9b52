<?php

// Maps the conformance suite's API-client contract (docs/conformance-clients.md)
// onto the PHP client of examples/php: the job comes from PHASE_* variables,
// Phase\Client::run() submits it to the API at PHASE_API and verifies the
// answer, and one verdict line goes to stdout.
//
// PHASE_PHP_SRC overrides where the library is (default: examples/php/src of
// this repository). PHASE_MUTANT=no-verify uses submit() instead of run(),
// taking the answer without any check: the suite must catch that.

declare(strict_types=1);

require (getenv('PHASE_PHP_SRC') ?: __DIR__ . '/../../examples/php/src') . '/autoload.php';

use Phase\ApiError;
use Phase\CheckFailed;
use Phase\Client;

function verdict(array $v): never
{
    echo json_encode($v, JSON_UNESCAPED_SLASHES | JSON_UNESCAPED_UNICODE | JSON_INVALID_UTF8_SUBSTITUTE), "\n";
    exit(0);
}

$api = (string) getenv('PHASE_API');
$modulePath = (string) getenv('PHASE_MODULE');
if ($api === '' || $modulePath === '') {
    verdict(['verdict' => 'error', 'detail' => 'contract: PHASE_API and PHASE_MODULE are required']);
}
try {
    $module = file_get_contents($modulePath);
    $args = json_decode(getenv('PHASE_ARGS') ?: '[]', true, 16, JSON_THROW_ON_ERROR);
    if (!is_array($args) || !array_is_list($args)) {
        throw new InvalidArgumentException('PHASE_ARGS is not a JSON array');
    }
    $stdinPath = (string) getenv('PHASE_STDIN');
    $stdin = $stdinPath === '' ? '' : file_get_contents($stdinPath);
    if ($module === false || $stdin === false) {
        throw new InvalidArgumentException('cannot read PHASE_MODULE or PHASE_STDIN');
    }
    $timeout = (int) (getenv('PHASE_TIMEOUT_SECONDS') ?: 30);
    // The whole run must end within the deadline: every request gets what is left of it.
    $deadline = (float) (getenv('PHASE_DEADLINE_SECONDS') ?: $timeout + 60);
    $opts = ['timeout_seconds' => $timeout, 'memory_mb' => (int) (getenv('PHASE_MEMORY_MB') ?: 64),
        'http_timeout' => max(1.0, $deadline - 1.5)];
    if (getenv('PHASE_DETERMINISTIC') === '1') {
        $opts['deterministic'] = true;
    }
    $client = new Client($api, min(10.0, $deadline / 2));
    $res = getenv('PHASE_MUTANT') === 'no-verify'
        ? $client->submit($module, $args, $stdin, $opts)
        : $client->run($module, $args, $stdin, $opts);
    verdict(['verdict' => 'accepted', 'node' => $res->node, 'outcome' => $res->outcome,
        'stdout_base64' => base64_encode($res->stdout), 'exit_code' => $res->exitCode]);
} catch (CheckFailed $e) {
    verdict(['verdict' => 'refused', 'detail' => $e->getMessage()]);
} catch (ApiError $e) {
    verdict(['verdict' => 'error', 'detail' => $e->getMessage()]);
} catch (Throwable $e) {
    verdict(['verdict' => 'error', 'detail' => get_class($e) . ': ' . $e->getMessage()]);
}
