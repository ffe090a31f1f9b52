<?php

declare(strict_types=1);

// Loads the Phase client library (no composer needed): require this file.
spl_autoload_register(static function (string $class): void {
    if (str_starts_with($class, 'Phase\\')) {
        $file = __DIR__ . '/Phase/' . substr($class, 6) . '.php';
        if (is_file($file)) {
            require $file;
        }
    }
});

if (!extension_loaded('sodium')) {
    fwrite(STDERR, "phase: the sodium extension is required (Debian: php-cli ships it; or install php-sodium)\n");
    exit(2);
}
