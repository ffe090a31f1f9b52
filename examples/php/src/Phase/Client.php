<?php

declare(strict_types=1);

namespace Phase;

/**
 * A client of a Phase node's local HTTP API (docs/spec-api.md).
 *
 *     $c = new Phase\Client('127.0.0.1:4748');
 *     $res = $c->run(file_get_contents('hello.wasm'), ['Hello, World']);
 *     echo $res->stdout; // verified: the receipt was checked here, with sodium
 *
 * Plain PHP streams (no curl). Every request has a timeout; failures raise
 * ApiError (transport, HTTP status, error body) or CheckFailed (a response
 * or receipt that does not verify).
 */
final class Client
{
    private string $base;
    private ?array $nodeInfo = null;
    private ?string $token = null;

    /** The token file's name in the node's data directory (spec-api API-34). */
    public const TOKEN_FILE = 'api.token';

    /**
     * @param string      $address   host:port, [v6]:port or an http:// URL
     * @param float       $timeout   seconds for each request other than a job submission
     * @param string|null $token     the API's bearer token (spec-api API-33), sent on every request
     * @param string|null $tokenFile a file holding it; must exist. With neither, the token is read from
     *                               $PLASMD_API_TOKEN_FILE, else api.token in $PLASMD_DATA_DIR or ~/.plasmd,
     *                               when that file exists (API-35)
     */
    public function __construct(string $address = '127.0.0.1:4748', private float $timeout = 10.0, ?string $token = null, ?string $tokenFile = null)
    {
        if ($token !== null && $tokenFile !== null) {
            throw new \InvalidArgumentException('give token or tokenFile, not both');
        }
        if ($token === null) {
            $token = self::readToken($tokenFile);
        }
        if ($token !== null && preg_match('/^[\x21-\x7e]+$/', $token) !== 1) {
            throw new \InvalidArgumentException('API token: want printable ASCII without spaces');
        }
        $this->token = $token;
        $address = rtrim(trim($address), '/');
        if ($address === '') {
            throw new \InvalidArgumentException('API address is empty (want host:port, e.g. 127.0.0.1:4748)');
        }
        if (str_starts_with($address, 'https://')) {
            throw new \InvalidArgumentException('the node API speaks plain HTTP on loopback; https is not supported: ' . $address);
        }
        if (!str_starts_with($address, 'http://')) {
            $address = 'http://' . $address;
        }
        if (parse_url($address, PHP_URL_HOST) === null || parse_url($address, PHP_URL_PORT) === null) {
            throw new \InvalidArgumentException(sprintf('API address %s: want host:port, e.g. 127.0.0.1:4748', Json::quote($address)));
        }
        $this->base = $address;
    }

    /**
     * The token from $file (which must exist), or from the default places
     * when $file is null; null when no default file exists.
     */
    public static function readToken(?string $file): ?string
    {
        $explicit = $file !== null;
        if (!$explicit) {
            $file = getenv('PLASMD_API_TOKEN_FILE') ?: null;
            $explicit = $file !== null;
        }
        if (!$explicit) {
            $dir = getenv('PLASMD_DATA_DIR') ?: ((getenv('HOME') ?: '') !== '' ? getenv('HOME') . '/.plasmd' : null);
            if ($dir === null) {
                return null;
            }
            $file = $dir . '/' . self::TOKEN_FILE;
            if (!is_file($file)) {
                return null;
            }
        }
        $text = @file_get_contents($file);
        if ($text === false) {
            throw new \InvalidArgumentException(sprintf('API token file %s: cannot read it', $file));
        }
        $token = trim($text);
        if ($token === '') {
            throw new \InvalidArgumentException(sprintf('API token file %s is empty', $file));
        }
        return $token;
    }

    public function baseUrl(): string
    {
        return $this->base;
    }

    /** GET /healthz: true when the node answers {"status":"ok"}. */
    public function healthy(): bool
    {
        try {
            $b = $this->json('GET', '/healthz', null, $this->timeout);
        } catch (ApiError) {
            return false;
        }
        return is_array($b) && ($b['status'] ?? null) === 'ok';
    }

    /**
     * GET /v1/node: peer_id, public_key (hex), addrs, version, peers,
     * routing_table_size, uptime_seconds, record. The public key is checked
     * against the peer ID.
     *
     * @return array<string, mixed>
     */
    public function node(): array
    {
        $b = $this->json('GET', '/v1/node', null, $this->timeout);
        if (!is_array($b) || !is_string($b['peer_id'] ?? null) || !is_string($b['public_key'] ?? null)) {
            throw new ApiError('GET /v1/node: response lacks peer_id or public_key', 200);
        }
        try {
            $key = PeerId::toPublicKey($b['peer_id']);
        } catch (\InvalidArgumentException $e) {
            throw new ApiError('GET /v1/node: ' . $e->getMessage(), 200);
        }
        if (bin2hex($key) !== $b['public_key']) {
            throw new ApiError(sprintf('GET /v1/node: public_key %s is not the key of peer ID %s', $b['public_key'], $b['peer_id']), 200);
        }
        return $this->nodeInfo = $b;
    }

    /** @return list<array<string, mixed>> GET /v1/peers */
    public function peers(): array
    {
        return $this->json('GET', '/v1/peers', null, $this->timeout);
    }

    /**
     * GET /v1/find: nodes that can run a job with these requirements
     * (runtime, abi, arch, require_arch, min_memory_mb, min_cores,
     * module_bytes, timeout_seconds, max_load, limit).
     *
     * @param array<string, scalar> $query
     * @return list<array<string, mixed>>
     */
    public function find(array $query = [], ?float $timeout = null): array
    {
        foreach ($query as $k => $v) {
            if (is_bool($v)) {
                $query[$k] = $v ? 'true' : 'false';
            }
        }
        $qs = $query === [] ? '' : '?' . http_build_query($query, '', '&', PHP_QUERY_RFC3986);
        return $this->json('GET', '/v1/find' . $qs, null, $timeout ?? max($this->timeout, 35.0));
    }

    /** GET /metrics, Prometheus text format. */
    public function metrics(): string
    {
        [$status, $body] = $this->request('GET', '/metrics', null, $this->timeout);
        if ($status !== 200) {
            throw new ApiError(sprintf('GET /metrics: HTTP %d', $status), $status, [], $body);
        }
        return $body;
    }

    /**
     * POST /v1/jobs without verification: see run().
     *
     * @param list<string> $args
     * @param array{memory_mb?: int, timeout_seconds?: int, cpu_cores?: int, arch?: string, require_arch?: bool,
     *              attempts?: int, replicas?: int, deterministic?: bool, seed?: int, http_timeout?: float} $options
     * @throws ApiError for a 4xx/5xx answer (with the daemon's error text and attempts) or no answer
     * @throws CheckFailed ("response") for a 200 answer of the wrong shape
     */
    public function submit(string $module, array $args = [], string $stdin = '', array $options = []): JobResult
    {
        $req = ['module' => base64_encode($module), 'args' => array_values($args), 'stdin' => base64_encode($stdin)];
        foreach ($args as $i => $a) {
            if (!is_string($a) || preg_match('//u', $a) !== 1) {
                throw new \InvalidArgumentException(sprintf('args[%s]: must be a valid UTF-8 string', $i));
            }
        }
        $known = ['memory_mb' => 'is_int', 'timeout_seconds' => 'is_int', 'cpu_cores' => 'is_int', 'arch' => 'is_string',
            'require_arch' => 'is_bool', 'attempts' => 'is_int', 'replicas' => 'is_int', 'deterministic' => 'is_bool', 'seed' => 'is_int'];
        $httpTimeout = $options['http_timeout'] ?? null;
        unset($options['http_timeout']);
        foreach ($options as $k => $v) {
            if (!isset($known[$k])) {
                throw new \InvalidArgumentException(sprintf('unknown job option %s (known: %s, http_timeout)', Json::quote((string) $k), implode(', ', array_keys($known))));
            }
            if (!$known[$k]($v)) {
                throw new \InvalidArgumentException(sprintf('job option %s: wrong type %s', $k, get_debug_type($v)));
            }
            $req[$k] = $v;
        }
        // The daemon retries on other nodes within its own deadline (docs/spec-api.md §4.3); outwait it.
        $perAttempt = max(1, min(3600, ($options['timeout_seconds'] ?? 0) ?: 30)) + 30;
        $replicas = max(1, $options['replicas'] ?? 1);
        $attempts = ($options['attempts'] ?? 0) ?: max(5, $replicas + 2);
        $wait = (float) ($httpTimeout ?? min($perAttempt * $attempts, max(600, 2 * $perAttempt)) + 15);
        $body = json_encode($req, JSON_UNESCAPED_SLASHES | JSON_THROW_ON_ERROR);
        [$status, $text] = $this->request('POST', '/v1/jobs', $body, $wait);
        if ($status !== 200) {
            throw $this->errorFrom('POST /v1/jobs', $status, $text);
        }
        try {
            $decoded = Json::decode($text, false, true);
        } catch (JsonError $e) {
            throw new CheckFailed('response', 'job response is not valid JSON: ' . $e->getMessage());
        }
        return JobResult::fromResponse($decoded);
    }

    /**
     * Submits a job and verifies its receipt here: signed by the key in the
     * peer ID of the node that ran it, for this module, these args and
     * stdin, and the output bytes returned, requested by the API node itself.
     *
     * @param list<string> $args
     * @param array<string, mixed> $options see submit()
     * @throws ApiError|CheckFailed
     */
    public function run(string $module, array $args = [], string $stdin = '', array $options = []): JobResult
    {
        $requester = ($this->nodeInfo ?? $this->node())['peer_id'];
        $res = $this->submit($module, $args, $stdin, $options);
        $res->verify($module, array_values($args), $stdin, $requester);
        return $res;
    }

    private function errorFrom(string $what, int $status, string $text): ApiError
    {
        $msg = null;
        $attempts = [];
        try {
            $b = Json::decode($text, true, true);
            if (is_array($b) && is_string($b['error'] ?? null)) {
                $msg = $b['error'];
                $attempts = is_array($b['attempts'] ?? null) ? $b['attempts'] : [];
            }
        } catch (JsonError) {
        }
        $msg ??= trim(substr($text, 0, 200)) ?: '(empty body)';
        return new ApiError(sprintf('%s: HTTP %d: %s', $what, $status, $msg), $status, $attempts, $text);
    }

    private function json(string $method, string $path, ?string $body, float $timeout): mixed
    {
        [$status, $text] = $this->request($method, $path, $body, $timeout);
        if ($status !== 200) {
            throw $this->errorFrom("$method $path", $status, $text);
        }
        try {
            return Json::decode($text, true, true);
        } catch (JsonError $e) {
            throw new ApiError(sprintf('%s %s: response is not valid JSON: %s', $method, $path, $e->getMessage()), $status, [], $text);
        }
    }

    /** @return array{int, string} HTTP status and body */
    private function request(string $method, string $path, ?string $body, float $timeout): array
    {
        $headers = "Accept: application/json\r\nConnection: close\r\n";
        if ($body !== null) {
            $headers .= "Content-Type: application/json\r\n";
        }
        if ($this->token !== null) {
            $headers .= "Authorization: Bearer {$this->token}\r\n";
        }
        $ctx = stream_context_create(['http' => [
            'method' => $method,
            'header' => $headers,
            'content' => $body ?? '',
            'timeout' => $timeout, // connect and each read
            'ignore_errors' => true, // read 4xx/5xx bodies too
            'follow_location' => 0,
            'protocol_version' => 1.1,
        ]]);
        $url = $this->base . $path;
        $err = null;
        set_error_handler(static function (int $no, string $msg) use (&$err): bool {
            $err = $msg;
            return true;
        });
        try {
            $started = microtime(true);
            $text = file_get_contents($url, false, $ctx);
            $headersSeen = function_exists('http_get_last_response_headers') ? http_get_last_response_headers() : ($http_response_header ?? null);
        } finally {
            restore_error_handler();
        }
        if ($text === false || !is_array($headersSeen) || $headersSeen === []) {
            $why = $err !== null ? preg_replace('/^file_get_contents\([^)]*\): /', '', $err) : 'no response';
            if (microtime(true) - $started >= $timeout - 0.05) {
                $why = sprintf('no answer within %.0f s (%s)', $timeout, $why);
            }
            throw new ApiError(sprintf('%s %s: %s', $method, $url, $why));
        }
        if (preg_match('#^HTTP/\S+\s+(\d{3})#', $headersSeen[0], $m) !== 1) {
            throw new ApiError(sprintf('%s %s: malformed status line %s', $method, $url, Json::quote($headersSeen[0])));
        }
        return [(int) $m[1], $text];
    }
}
